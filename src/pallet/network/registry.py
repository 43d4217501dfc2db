"""The networks of a pallet root: conflist files, the default network, subnet choice.

Settings (bridge name and subnet of the default network, address pool of new
networks, where IPAM keeps its leases, where the plugins are) come from
``Config.extra["network.<key>"]``, else an environment variable, else a default.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from pallet.config import Config
from pallet.errors import Conflict, InvalidArgument, NetworkNotFound
from pallet.network import conflist as cl
from pallet.network.cni import DEFAULT_CNI_PATH

DEFAULT_NETWORK = "bridge"
PSEUDO = ("host", "none")
SETTINGS = {
    # key: (environment variable, default)
    "bridge": ("PALLET_BRIDGE", "pallet0"),
    "subnet": ("PALLET_BRIDGE_SUBNET", "10.89.0.0/16"),
    "pool": ("PALLET_NETWORK_POOL", "10.90.0.0/15"),
    "ipam_dir": ("PALLET_IPAM_DIR", "/run/pallet/ipam"),
    "cni_path": ("PALLET_CNI_PATH", ":".join(DEFAULT_CNI_PATH)),
    "cni_config_dir": ("PALLET_CNI_CONFIG_DIR", ""),
}


def setting(config: Config, key: str) -> str:
    env, default = SETTINGS[key]
    return config.extra.get(f"network.{key}") or os.environ.get(env) or default


def cni_path(config: Config) -> list[str]:
    return [p for p in setting(config, "cni_path").split(":") if p]


def ipam_dir(config: Config, bridge: str) -> str:
    """Leases are kept per bridge, host-wide: two pallet roots sharing a bridge share its addresses."""
    return str(Path(setting(config, "ipam_dir")) / bridge)


def net_dir(config: Config) -> Path:
    return config.root / "networks"


@contextlib.contextmanager
def locked(config: Config) -> Iterator[None]:
    d = net_dir(config)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, doc: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _pseudo(name: str) -> cl.Network:
    return cl.Network(name=name, id=hashlib.sha256(("pallet:" + name).encode()).hexdigest(),
                      driver="null" if name == "none" else "host", builtin=True)


def ensure_default(config: Config) -> cl.Network:
    path = net_dir(config) / f"{DEFAULT_NETWORK}.conflist"
    if path.exists():
        return cl.from_conflist(json.loads(path.read_text()))
    with locked(config):
        if path.exists():
            return cl.from_conflist(json.loads(path.read_text()))
        bridge = setting(config, "bridge")
        cl.check_ifname(bridge)
        subnet, gw, _ = cl.plan_subnet(setting(config, "subnet"))
        net = cl.Network(name=DEFAULT_NETWORK, id=secrets.token_hex(32), bridge=bridge, subnet=subnet,
                         gateway=gw, created=_now(), builtin=True,
                         options={cl.BRIDGE_NAME_OPTION: bridge})
        _write(path, cl.build_conflist(net, ipam_dir(config, bridge)))
        return net


def _files(config: Config) -> list[Path]:
    out = sorted(net_dir(config).glob("*.conflist")) if net_dir(config).is_dir() else []
    extra = setting(config, "cni_config_dir")
    if extra and Path(extra).is_dir():
        out += sorted(p for p in Path(extra).iterdir() if p.suffix in (".conflist", ".conf"))
    return out


def load_all(config: Config) -> list[tuple[cl.Network, dict[str, object]]]:
    ensure_default(config)
    out = []
    seen: set[str] = set()
    for p in _files(config):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        net = cl.from_conflist(doc)
        if net.name and net.name not in seen:
            seen.add(net.name)
            out.append((net, doc))
    return out


def networks(config: Config, pseudo: bool = True) -> list[cl.Network]:
    nets = [n for n, _ in load_all(config)]
    return nets + ([_pseudo(n) for n in PSEUDO] if pseudo else [])


def lookup(config: Config, ref: str) -> tuple[cl.Network, dict[str, object]]:
    """A network by name, full id or unique id prefix (with its conflist)."""
    if ref in PSEUDO:
        return _pseudo(ref), {}
    items = load_all(config)
    for net, doc in items:
        if net.name == ref or net.id == ref:
            return net, doc
    hits = [(n, d) for n, d in items if ref and n.id.startswith(ref)]
    if len(hits) == 1:
        return hits[0]
    raise NetworkNotFound(ref)


def host_subnets() -> list[str]:
    """IPv4 destinations the host already routes (its addresses' subnets, other bridges)."""
    import ipaddress
    import socket
    import struct

    out: list[str] = []
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        dest = socket.inet_ntoa(struct.pack("<I", int(f[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(f[7], 16)))
        if dest == "0.0.0.0":
            continue
        out.append(str(ipaddress.ip_network(f"{dest}/{mask}", strict=False)))
    return out


def create(config: Config, name: str, driver: str = "bridge", subnet: str = "", gateway: str = "",
           ip_range: str = "", internal: bool = False, labels: dict[str, str] | None = None,
           options: dict[str, str] | None = None) -> cl.Network:
    cl.check_name(name)
    if driver not in ("bridge", ""):
        raise InvalidArgument(f'plugin "{driver}" not found')
    if name in PSEUDO or name == DEFAULT_NETWORK:
        raise Conflict(f"network with name {name} already exists")
    if not subnet and (gateway or ip_range):
        raise InvalidArgument("no matching subnet for gateway or ip-range")
    ensure_default(config)
    with locked(config):
        existing = networks(config, pseudo=False)
        if any(n.name == name for n in existing):
            raise Conflict(f"network with name {name} already exists")
        used = [n.subnet for n in existing if n.subnet]
        if subnet:
            subnet, gateway, ip_range = cl.plan_subnet(subnet, gateway, ip_range)
            import ipaddress

            mine = ipaddress.ip_network(subnet)
            for u in used:
                if mine.overlaps(ipaddress.ip_network(u)):
                    raise Conflict(f"Pool overlaps with other one on this address space ({u})")
        else:
            subnet, gateway, ip_range = cl.plan_subnet(cl.pick_subnet(setting(config, "pool"),
                                                                      used + host_subnets()))
        nid = secrets.token_hex(32)
        opts = dict(options or {})
        bridge = opts.get(cl.BRIDGE_NAME_OPTION) or f"pn-{nid[:12]}"
        cl.check_ifname(bridge)
        if any(n.bridge == bridge for n in existing):
            raise Conflict(f"bridge name {bridge} is used by another network")
        net = cl.Network(name=name, id=nid, driver="bridge", bridge=bridge, subnet=subnet, gateway=gateway,
                         ip_range=ip_range, internal=internal, labels=dict(labels or {}), options=opts,
                         created=_now())
        _write(net_dir(config) / f"{name}.conflist", cl.build_conflist(net, ipam_dir(config, bridge)))
        return net


def delete_files(config: Config, net: cl.Network) -> None:
    """Forget a network: its conflist, its bridge, its lease directory."""
    with contextlib.suppress(FileNotFoundError):
        (net_dir(config) / f"{net.name}.conflist").unlink()
    if net.bridge:
        remove_bridge(net.bridge)
        remove_ipam(config, net.bridge)


def remove_bridge(bridge: str) -> None:
    if Path(f"/sys/class/net/{bridge}").exists():
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def remove_ipam(config: Config, bridge: str) -> None:
    import shutil

    shutil.rmtree(ipam_dir(config, bridge), ignore_errors=True)
