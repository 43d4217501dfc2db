"""The engine's side of networking: what ``start``, ``stop``, ``rm``, ``inspect`` and builds call.

A container on a bridge network gets a network namespace of its own (bind-mounted
under the run root, named by the container's id), which the OCI runtime joins
through the spec's ``linux.namespaces`` path; the CNI lists of its networks run
on it (ADD at start, DEL at stop, CHECK on demand).  ``none`` and ``host`` need
nothing here; ``container:NAME`` shares another container's namespace.

The hosts and resolv.conf files are written by :mod:`pallet.engine.network_names`;
network-wide operations (``network inspect``/``rm``, ``reconcile`` after a crash) are
in :mod:`pallet.engine.network_ops`, whose names this module offers too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet.config import Config
from pallet.engine.network_names import (
    refresh_peers,
    resolv_conf,
    spec_extra,
    write_hosts,
    write_hosts_of,
)
from pallet.errors import (
    Conflict,
    InvalidArgument,
    NetworkNotFound,
    NotFound,
    RuntimeFailure,
)
from pallet.network import cni, endpoints, firewall, netns, ports, registry
from pallet.network.conflist import Network
from pallet.network.endpoints import Attached, Endpoint
from pallet.network.registry import DEFAULT_NETWORK

if TYPE_CHECKING:
    from pallet.engine.network_ops import destroy_default as destroy_default
    from pallet.engine.network_ops import network_inspect as network_inspect
    from pallet.engine.network_ops import network_users as network_users
    from pallet.engine.network_ops import reconcile as reconcile
    from pallet.engine.network_ops import referenced as referenced
    from pallet.engine.network_ops import remove_network as remove_network
    from pallet.engine.state import Container

__all__ = [
    "DEFAULT_NETWORK", "SetupResult", "setup", "teardown", "write_hosts", "settings", "connect", "disconnect",
    "reconcile", "create_netns", "remove_netns", "parse_network_mode", "build_network", "resolv_conf",
]


@dataclass(frozen=True)
class SetupResult:
    netns_path: str | None
    ip: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


def parse_network_mode(value: str) -> tuple[str, str]:
    """``none|host|bridge|NAME|container:NAME`` -> (kind, name); kind is none, host, container or network."""
    v = value or DEFAULT_NETWORK
    if v == "default":
        v = DEFAULT_NETWORK
    if v in ("none", "host"):
        return v, v
    if v.startswith("container:"):
        name = v.partition(":")[2]
        if not name:
            raise InvalidArgument("invalid network mode: container: needs a container name")
        return "container", name
    return "network", v


def create_netns(config: Config, container_id: str) -> Path:
    d = endpoints.netns_dir(config)
    path = d / container_id
    if path.exists():
        netns.remove(path)
    try:
        return netns.create(d, container_id)
    except OSError as e:
        raise RuntimeFailure(f"failed to create a network namespace: {e}") from None


def remove_netns(path: Path | str) -> None:
    netns.remove(Path(path))


def _ip_forward() -> None:
    p = Path("/proc/sys/net/ipv4/ip_forward")
    with contextlib.suppress(OSError):
        if p.read_text().strip() != "1":
            p.write_text("1\n")


def _conflist_for(config: Config, network: str) -> tuple[Network, dict[str, Any]]:
    try:
        net, doc = registry.lookup(config, network)
    except NetworkNotFound:
        raise NotFound(f"network {network} not found") from None
    return net, dict(doc)


def _in_use_ports(config: Config, except_id: str, wanted: list[ports.PortBinding]) -> list[ports.PortBinding]:
    mine = [p for ep in endpoints.all_endpoints(config) if ep.container_id != except_id for p in ep.ports]
    if wanted:
        mine += ports.forwarded_ports()
    return mine


def _attach(config: Config, ep: Endpoint, network: str, aliases: tuple[str, ...], ip: str,
            port_bindings: tuple[ports.PortBinding, ...]) -> Endpoint:
    net, doc = _conflist_for(config, network)
    if net.driver in ("host", "null"):
        raise InvalidArgument(f"container cannot be connected to network {network}")
    if ep.on(net.name):
        raise Conflict(f"endpoint with name {ep.name} already exists in network {net.name}")
    _user_defined_only(net, aliases, ip)
    if ip:
        doc = _whole_subnet(doc)  # --ip may lie outside --ip-range, as in Docker
    used = {a.ifname for a in ep.attached}
    ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
    att = Attached(net.name, ifname, doc, None, aliases, ip, net.builtin, net.id)
    ep = ep.with_attached(att)
    endpoints.save(config, ep)  # before ADD: a crash still leaves what DEL needs
    if net.bridge and not net.user_conflist:
        firewall.setup_network(net.bridge, net.internal)
        if not net.internal:
            _ip_forward()
    rc: dict[str, Any] = {}
    if port_bindings:
        rc["portMappings"] = ports.portmap_entries(port_bindings)
    args = {"IP": ip} if ip else {}
    result = cni.add_list(doc, cni.Attachment(ep.container_id, ep.netns, ifname, args, rc),
                          registry.cni_path(config))
    if net.bridge and not net.user_conflist:
        firewall.ensure_first_jump()
    ep = ep.with_attached(replace(att, result=result))
    endpoints.save(config, ep)
    return ep


def _user_defined_only(net: Network, aliases: tuple[str, ...], ip: str) -> None:
    """Aliases and a fixed address need a user-defined network (Docker's wording)."""
    if (aliases or ip) and net.builtin:
        raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks"
                              if aliases else "user specified IP address is supported on user defined networks only")


def _whole_subnet(doc: dict[str, Any]) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(doc)
    for plugin in out.get("plugins") or []:
        for rs in (plugin.get("ipam") or {}).get("ranges") or []:
            for r in rs:
                r.pop("rangeStart", None)
                r.pop("rangeEnd", None)
    return out


def _detach(config: Config, ep: Endpoint, a: Attached) -> list[cni.CniError]:
    rc: dict[str, Any] = {}
    if ep.ports and a is ep.attached[0]:
        rc["portMappings"] = ports.portmap_entries(ep.ports)
    args = {"IP": a.requested_ip} if a.requested_ip else {}
    return cni.del_list(a.conflist, cni.Attachment(ep.container_id, ep.netns, a.ifname, args, rc),
                        registry.cni_path(config), a.result)


def setup(config: Config, c: Container) -> SetupResult:
    """Before the runtime creates the container: its namespace, its addresses, its ports."""
    from pallet.engine.lifecycle import hostname_of

    kind, name = parse_network_mode(c.spec.network_mode)
    if kind in ("none", "host"):
        return SetupResult(None)
    if kind == "container":
        other = _other_container(config, name)
        ep = endpoints.load(config, other.id)
        if ep is None or not Path(ep.netns).exists():
            raise Conflict(f"cannot join network of a non running container: {name}")
        return SetupResult(ep.netns, "")
    teardown(config, c)  # whatever a crash left
    aliases = tuple(spec_extra(c, "aliases", ()))
    ip = str(spec_extra(c, "ip", ""))
    publish_all = bool(spec_extra(c, "publish_all", False))
    wanted = ports.parse_all(c.spec.port_bindings, c.spec.exposed_ports, publish_all)
    with registry.locked(config):
        bound = tuple(ports.allocate(wanted, _in_use_ports(config, c.id, wanted)))
        path = create_netns(config, c.id)
        ep = Endpoint(c.id, c.name, str(path), hostname_of(c), str(c.dir / "hosts"), bound, (), time.time())
        endpoints.save(config, ep)
    try:
        conns = endpoints.connections(config, c.id)
        todo = [] if conns.get(name, {}).get("disconnected") else [(name, aliases, ip)]
        todo += [(n, tuple(v.get("aliases") or ()), str(v.get("ip") or "")) for n, v in conns.items()
                 if n != name and not v.get("disconnected")]
        for i, (net, al, addr) in enumerate(todo):
            # published ports go with the first network (the primary one unless disconnected)
            ep = _attach(config, ep, net, al, addr, bound if i == 0 else ())
    except BaseException:
        teardown(config, c)
        raise
    addr = cni.result_ip(ep.attached[0].result or {})[0] if ep.attached else ""
    return SetupResult(str(path), addr, _settings(ep, c.spec.exposed_ports))


def _other_container(config: Config, ref: str) -> Container:
    from pallet.engine.containers import ContainerService

    return ContainerService(config).get(ref)


def teardown(config: Config, c: Container | str) -> list[str]:
    """DEL every network in reverse order, drop the namespace and the record; the errors, if any."""
    cid = c if isinstance(c, str) else c.id
    ep = endpoints.load(config, cid)
    errors: list[str] = []
    if ep is not None:
        for a in reversed(ep.attached):
            errors += [str(e) for e in _detach(config, ep, a)]
        netns.remove(Path(ep.netns))
        endpoints.delete(config, cid)
        refresh_peers(config, ep, exclude=cid)
    path = endpoints.netns_dir(config) / cid
    if path.exists():
        netns.remove(path)
    return errors


# -- inspect ------------------------------------------------------------------------------


def _settings(ep: Endpoint | None, exposed: tuple[str, ...] = (), check: dict[str, str] | None = None
              ) -> dict[str, Any]:
    nets: dict[str, Any] = {}
    first: dict[str, Any] = {}
    for a in (ep.attached if ep else ()):
        addr, plen, gw, mac = cni.result_ip(a.result or {})
        d = {
            "IPAMConfig": {"IPv4Address": a.requested_ip} if a.requested_ip else None,
            "Links": None,
            "Aliases": [*a.aliases, ep.container_id[:12]] if (ep and not a.builtin) else None,
            "MacAddress": mac,
            "NetworkID": a.network_id,
            "EndpointID": a.ifname and f"{ep.container_id[:12]}-{a.ifname}" if ep else "",
            "Gateway": gw,
            "IPAddress": addr,
            "IPPrefixLen": plen,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": [ep.name, *a.aliases, ep.container_id[:12]] if (ep and not a.builtin) else None,
        }
        if check is not None and a.network in check:
            d["Check"] = check[a.network]
        nets[a.network] = d
        first = first or d
    return {
        "Bridge": "",
        "SandboxID": ep.container_id if ep else "",
        "SandboxKey": ep.netns if ep else "",
        "Ports": ports.docker_ports(ep.ports if ep else (), exposed),
        "Gateway": first.get("Gateway", ""),
        "IPAddress": first.get("IPAddress", ""),
        "IPPrefixLen": first.get("IPPrefixLen", 0),
        "MacAddress": first.get("MacAddress", ""),
        "Networks": nets,
    }


def settings(config: Config, c: Container, check: bool = False) -> dict[str, Any]:
    """NetworkSettings for ``inspect``; with ``check``, CNI CHECK of each network says ok or why not."""
    ep = endpoints.load(config, c.id)
    kind, name = parse_network_mode(c.spec.network_mode)
    if ep is None or kind != "network":
        out = _settings(None, c.spec.exposed_ports)
        if kind in ("none", "host"):
            net = registry.lookup(config, kind)[0]
            out["Networks"] = {kind: {"NetworkID": net.id, "IPAddress": "", "Gateway": "", "MacAddress": "",
                                      "Aliases": None, "IPPrefixLen": 0, "EndpointID": ""}}
        else:
            out["Networks"] = {name: {"NetworkID": "", "IPAddress": "", "Gateway": "", "MacAddress": "",
                                      "Aliases": None, "IPPrefixLen": 0, "EndpointID": ""}}
        return out
    results: dict[str, str] | None = None
    if check:
        results = {}
        for a in ep.attached:
            try:
                cni.check_list(a.conflist, cni.Attachment(c.id, ep.netns, a.ifname), registry.cni_path(config),
                               a.result or {})
                results[a.network] = "ok"
            except cni.CniError as e:
                results[a.network] = str(e)
    return _settings(ep, c.spec.exposed_ports, results)


def published(config: Config, c: Container) -> list[ports.PortBinding]:
    """The host ports a running container's ports are published on (``pallet port``)."""
    ep = endpoints.load(config, c.id)
    return list(ep.ports) if ep else []


# -- connect / disconnect -------------------------------------------------------------------


def connect(config: Config, c: Container, network: str, aliases: tuple[str, ...] = (), ip: str = "") -> None:
    net, _ = _conflist_for(config, network)
    kind, primary = parse_network_mode(c.spec.network_mode)
    if kind in ("none", "host", "container"):
        raise InvalidArgument("container sharing network namespace with another container or host cannot be "
                              "connected to any other network" if kind != "none" else
                              "container cannot be connected to multiple networks with one of the networks "
                              "in private (none) mode")
    conns = endpoints.connections(config, c.id)
    gone = bool(conns.get(net.name, {}).get("disconnected"))
    if (net.name == primary or net.name in conns) and not gone:
        raise Conflict(f"endpoint with name {c.name} already exists in network {net.name}")
    ep = endpoints.load(config, c.id)
    if ep is not None and c.state.running:
        ep = _attach(config, ep, net.name, aliases, ip, ())
        write_hosts(config, c)
    if net.name == primary:
        conns.pop(net.name, None)
    else:
        conns[net.name] = {"aliases": list(aliases), "ip": ip}
    endpoints.save_connections(config, c.id, conns)


def disconnect(config: Config, c: Container, network: str, force: bool = False) -> None:
    net, _ = _conflist_for(config, network)
    conns = endpoints.connections(config, c.id)
    kind, primary = parse_network_mode(c.spec.network_mode)
    ep = endpoints.load(config, c.id)
    a = ep.on(net.name) if ep else None
    del force
    recorded = net.name in conns and not conns[net.name].get("disconnected")
    primary_on = net.name == primary and not conns.get(primary, {}).get("disconnected")
    if a is None and not recorded and not primary_on:
        raise NotFound(f"container {c.id[:12]} is not connected to network {net.name}")
    if ep is not None and a is not None:
        _detach(config, ep, a)
        ep = ep.without(net.name)
        endpoints.save(config, ep)
        refresh_peers(config, replace(ep, attached=(a,)))
        write_hosts_of(config, ep, tuple(ep.extra.get("extra_hosts") or ()))
    if net.name == primary:
        conns[net.name] = {"disconnected": True}
    else:
        conns.pop(net.name, None)
    endpoints.save_connections(config, c.id, conns)


def forget(config: Config, container_id: str) -> None:
    """When a container is removed: what ``connect`` recorded for it."""
    endpoints.save_connections(config, container_id, {})


# -- network-wide operations (pallet.engine.network_ops) -----------------------------------

_OPS = frozenset({"network_users", "referenced", "network_inspect", "remove_network", "destroy_default",
                  "reconcile"})


def __getattr__(name: str) -> Any:
    if name in _OPS:
        from pallet.engine import network_ops

        return getattr(network_ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- builds ---------------------------------------------------------------------------------


@contextlib.contextmanager
def build_network(config: Config, key: str, network: str = "") -> Iterator[str | None]:
    """A namespace on ``network`` (default: the default network) for one build step.

    Yields the namespace path for the runtime spec (None for ``host``; ``none``
    yields a namespace with only loopback)."""
    kind, name = parse_network_mode(network)
    if kind == "host":
        yield None
        return
    cid = f"build-{key}"
    path = create_netns(config, cid)
    ep = Endpoint(cid, cid, str(path), created=time.time())
    try:
        if kind == "network":
            endpoints.save(config, ep)
            _attach(config, ep, name, (), "", ())
        elif kind != "none":
            raise InvalidArgument(f"network mode {network} is not supported for builds")
        yield str(path)
    finally:
        teardown(config, cid)
        netns.remove(path)


def validate(config: Config, network_mode: str, publish: tuple[str, ...] = (), aliases: tuple[str, ...] = (),
             ip: str = "") -> None:
    """At ``create``: the network exists, the ``-p`` specs parse, ``--ip``/aliases fit the network."""
    kind, name = parse_network_mode(network_mode)
    ports.parse_all(publish)
    if kind == "container":
        _other_container(config, name)
    if kind != "network":
        if aliases or ip:
            raise InvalidArgument("network-scoped aliases and --ip need a user-defined network")
        return
    net, _ = _conflist_for(config, name)
    _user_defined_only(net, aliases, ip)
    if ip:
        import ipaddress

        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {ip}") from None
        if net.subnet and addr not in ipaddress.ip_network(net.subnet):
            raise InvalidArgument(f"no configured subnet contains IP address {ip}")
