"""Networks as CNI configuration lists: pure builders and the record pallet keeps beside them.

A pallet network is one ``<name>.conflist`` file: the standard CNI list that is
fed to the plugins, with pallet's own metadata (id, labels, creation time) under
the top-level key ``"pallet"``, which CNI runtimes ignore.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pallet.errors import InvalidArgument

CNI_VERSION = "1.0.0"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MAX_IFNAME = 15


@dataclass(frozen=True)
class Network:
    name: str
    id: str
    driver: str = "bridge"
    bridge: str = ""
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""
    builtin: bool = False  # the default network
    user_conflist: bool = False  # supplied by the user, run as written

    def meta(self) -> dict[str, Any]:
        return {
            "id": self.id, "driver": self.driver, "bridge": self.bridge, "subnet": self.subnet,
            "gateway": self.gateway, "ipRange": self.ip_range, "internal": self.internal,
            "labels": dict(self.labels), "options": dict(self.options), "created": self.created,
            "builtin": self.builtin,
        }


def check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise InvalidArgument(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')


def check_ifname(name: str) -> None:
    import re

    if not 0 < len(name) <= MAX_IFNAME or not re.fullmatch(r"[a-zA-Z0-9_.-]+", name):
        raise InvalidArgument(f"invalid bridge name: {name}")


def plan_subnet(subnet: str, gateway: str = "", ip_range: str = "") -> tuple[str, str, str]:
    """Normalized (subnet, gateway, ip_range); the gateway defaults to the first host address."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {subnet}: invalid CIDR address: {subnet}") from None
    if net.version != 4:
        raise InvalidArgument(f"invalid subnet {subnet}: only IPv4 subnets are supported")
    if net.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {subnet}: too small for containers")
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            raise InvalidArgument(f"invalid gateway address {gateway}") from None
        if gw not in net:
            raise InvalidArgument(f"no matching subnet for gateway {gateway}")
    else:
        gw = next(net.hosts())
    if ip_range:
        try:
            rng = ipaddress.ip_network(ip_range, strict=False)
        except ValueError:
            raise InvalidArgument(f"invalid ip-range {ip_range}: invalid CIDR address") from None
        if not rng.subnet_of(net):  # type: ignore[arg-type]
            raise InvalidArgument(f"no matching subnet for range {ip_range}")
        ip_range = str(rng)
    return str(net), str(gw), ip_range


def pick_subnet(pool: str, used: Iterable[str], prefix: int = 24) -> str:
    """The first ``/prefix`` of ``pool`` that overlaps none of ``used``."""
    taken = [ipaddress.ip_network(u, strict=False) for u in used]
    for cand in ipaddress.ip_network(pool, strict=False).subnets(new_prefix=prefix):
        if not any(cand.overlaps(t) for t in taken):
            return str(cand)
    raise InvalidArgument("could not find an available, non-overlapping IPv4 address pool among the defaults "
                          "to assign to the network")


def ipam_conf(net: Network, ipam_dir: str) -> dict[str, Any]:
    rng: dict[str, Any] = {"subnet": net.subnet, "gateway": net.gateway}
    if net.ip_range:
        r = ipaddress.ip_network(net.ip_range)
        hosts = list(r.hosts()) if r.num_addresses <= 65536 else []
        if hosts:
            rng["rangeStart"], rng["rangeEnd"] = str(hosts[0]), str(hosts[-1])
    conf: dict[str, Any] = {"type": "host-local", "ranges": [[rng]], "dataDir": ipam_dir}
    if not net.internal:
        conf["routes"] = [{"dst": "0.0.0.0/0"}]
    return conf


def build_conflist(net: Network, ipam_dir: str) -> dict[str, Any]:
    """The CNI list for a bridge network (bridge + host-local, portmap, firewall)."""
    bridge: dict[str, Any] = {
        "type": "bridge",
        "bridge": net.bridge,
        "isGateway": not net.internal,
        "ipMasq": not net.internal,
        "hairpinMode": True,
        "ipam": ipam_conf(net, ipam_dir),
    }
    plugins: list[dict[str, Any]] = [bridge]
    if not net.internal:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    plugins.append({"type": "firewall", "backend": "iptables"})
    return {"cniVersion": CNI_VERSION, "name": net.name, "plugins": plugins, "pallet": net.meta()}


def from_conflist(doc: dict[str, Any]) -> Network:
    """A network record from a conflist (pallet's own, or a user's: then derived from the plugins)."""
    name = str(doc.get("name") or "")
    meta = doc.get("pallet")
    if isinstance(meta, dict):
        return Network(
            name=name, id=str(meta.get("id", "")), driver=str(meta.get("driver", "bridge")),
            bridge=str(meta.get("bridge", "")), subnet=str(meta.get("subnet", "")),
            gateway=str(meta.get("gateway", "")), ip_range=str(meta.get("ipRange", "")),
            internal=bool(meta.get("internal")), labels=dict(meta.get("labels") or {}),
            options=dict(meta.get("options") or {}), created=str(meta.get("created", "")),
            builtin=bool(meta.get("builtin")),
        )
    import hashlib

    plugins = doc.get("plugins") or ([doc] if doc.get("type") else [])
    first = plugins[0] if plugins else {}
    subnet = gateway = ""
    ranges = (first.get("ipam") or {}).get("ranges") or []
    if ranges and ranges[0]:
        subnet = str(ranges[0][0].get("subnet", ""))
        gateway = str(ranges[0][0].get("gateway", ""))
    elif (first.get("ipam") or {}).get("subnet"):
        subnet = str(first["ipam"]["subnet"])
    return Network(
        name=name, id=hashlib.sha256(("cni:" + name).encode()).hexdigest(), driver=str(first.get("type", "")),
        bridge=str(first.get("bridge", "")), subnet=subnet, gateway=gateway, user_conflist=True,
    )


def plugin_list(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The plugins of a conflist (a single-plugin .conf counts as a list of one)."""
    if "plugins" in doc:
        return [dict(p) for p in doc["plugins"]]
    return [{k: v for k, v in doc.items() if k not in ("cniVersion", "name")}]


def inspect_doc(net: Network, containers: dict[str, dict[str, str]]) -> dict[str, Any]:
    """``network inspect``: Docker's fields."""
    cfg = [{"Subnet": net.subnet, "Gateway": net.gateway, **({"IPRange": net.ip_range} if net.ip_range else {})}]
    opts = dict(net.options)
    if net.bridge and net.driver == "bridge":
        opts.setdefault(BRIDGE_NAME_OPTION, net.bridge)
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": cfg if net.subnet else []},
        "Internal": net.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": opts,
        "Labels": dict(net.labels),
    }
