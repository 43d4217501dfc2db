"""Read an OCI runtime bundle into what a VM needs (pure, no I/O beyond reading).

Everything the VM runtime takes from ``config.json``: the process (args, env,
cwd, user), the hostname, the resources that become the VM's RAM and vCPUs,
the bind mounts (directories become virtio-fs shares, small files are copied
in), and pallet's VM annotations:

``org.pallet.vm.rootfs``      ``erofs`` (default), ``ext4`` or ``virtiofs``
``org.pallet.vm.cache-key``   cache the root filesystem image under this key
``org.pallet.vm.publish``     ports, ``[ip:]hostport:guestport[/proto]`` comma separated
                              (QEMU's user network, when the bundle names no network namespace)
``org.pallet.vm.network``     ``none`` for no network device
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.errors import InvalidArgument
from pallet.vm.proto import ProcessSpec

ANN_ROOTFS = "org.pallet.vm.rootfs"
ANN_CACHE_KEY = "org.pallet.vm.cache-key"
ANN_PUBLISH = "org.pallet.vm.publish"
ANN_NETWORK = "org.pallet.vm.network"

ROOTFS_MODES = ("erofs", "ext4", "virtiofs")
DEFAULT_MEMORY_MIB = 256
MIN_MEMORY_MIB = 64
MAX_COPIED_FILE = 256 * 1024

# mount destinations the guest sets up itself
_GUEST_MOUNTS = {"/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup"}


@dataclass(frozen=True)
class PortForward:
    host_ip: str
    host_port: int
    guest_port: int
    proto: str = "tcp"


@dataclass(frozen=True)
class Share:
    """A host directory shared into the guest with virtio-fs."""

    tag: str
    source: str
    target: str
    readonly: bool


@dataclass(frozen=True)
class CopiedFile:
    target: str
    content: bytes
    mode: int


@dataclass(frozen=True)
class GuestMount:
    """A file system the guest mounts itself (``--tmpfs``)."""

    fstype: str
    source: str
    target: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class VMBundle:
    bundle: Path
    rootfs: Path
    process: ProcessSpec
    hostname: str = ""
    memory_mib: int = DEFAULT_MEMORY_MIB
    cpus: int = 1
    rootfs_mode: str = "erofs"
    cache_key: str = ""
    ports: tuple[PortForward, ...] = ()
    network: bool = True
    netns: str = ""  # the container's network namespace: the guest joins its network with a tap
    shares: tuple[Share, ...] = ()
    files: tuple[CopiedFile, ...] = ()
    mounts: tuple[GuestMount, ...] = ()
    readonly: bool = False
    cgroups_path: str = ""  # the VM's host processes are accounted there (CPU limits only)
    cpu: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def _port_range(text: str, item: str) -> list[int]:
    a, _, b = text.partition("-")
    if not (a.isdigit() and (not b or b.isdigit())):
        raise InvalidArgument(f"invalid port mapping for a VM: {item!r}")
    lo, hi = int(a), int(b or a)
    if not (0 < lo <= hi < 65536):
        raise InvalidArgument(f"invalid port mapping for a VM: {item!r}")
    return list(range(lo, hi + 1))


def parse_ports(text: str) -> tuple[PortForward, ...]:
    """``8080:80,127.0.0.1:5353:53/udp,9000-9001:90-91`` -> port forwards (host port required)."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        spec, _, proto = item.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        parts = spec.rsplit(":", 2)
        if len(parts) == 2:
            ip, hp, gp = "", parts[0], parts[1]
        elif len(parts) == 3:
            ip, hp, gp = parts
        else:
            raise InvalidArgument(f"invalid port mapping for a VM: {item!r} (host port required)")
        ip = ip.strip("[]")
        hosts, guests = _port_range(hp, item), _port_range(gp, item)
        if len(hosts) != len(guests):
            raise InvalidArgument(f"invalid port mapping for a VM: {item!r} (ranges differ in size)")
        if ip:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidArgument(f"invalid IP address in port mapping: {item!r}") from None
        out += [PortForward(ip, h, g, proto) for h, g in zip(hosts, guests, strict=True)]
    return tuple(out)


def memory_mib(resources: dict[str, Any]) -> int:
    limit = (resources.get("memory") or {}).get("limit")
    if not limit or limit < 0:
        return DEFAULT_MEMORY_MIB
    return max(MIN_MEMORY_MIB, int(limit) // (1024 * 1024))


def cpu_count(resources: dict[str, Any]) -> int:
    cpu = resources.get("cpu") or {}
    quota, period = cpu.get("quota"), cpu.get("period") or 100000
    if quota and quota > 0:
        return max(1, math.ceil(quota / period))
    cpus = str(cpu.get("cpus") or "")
    if cpus:
        n = 0
        for part in cpus.split(","):
            a, _, b = part.partition("-")
            n += (int(b) - int(a) + 1) if b else 1
        return max(1, n)
    return 1


def _share_tag(i: int) -> str:
    return f"vol{i}"


def _netns_path(linux: dict[str, Any]) -> str:
    for n in linux.get("namespaces") or ():
        if n.get("type") == "network":
            return str(n.get("path") or "")
    return ""


def from_config(bundle: Path, config: dict[str, Any]) -> VMBundle:
    proc = config.get("process") or {}
    args = tuple(proc.get("args") or ())
    if not args:
        raise InvalidArgument("no command specified")
    user = proc.get("user") or {}
    spec = ProcessSpec(
        args=args,
        env=tuple(proc.get("env") or ()),
        cwd=proc.get("cwd") or "/",
        uid=int(user.get("uid", 0)),
        gid=int(user.get("gid", 0)),
        additional_gids=tuple(int(g) for g in user.get("additionalGids") or ()),
        terminal=bool(proc.get("terminal", False)),
    )
    root = config.get("root") or {}
    rootfs = Path(root.get("path") or "rootfs")
    if not rootfs.is_absolute():
        rootfs = bundle / rootfs
    linux = config.get("linux") or {}
    resources = linux.get("resources") or {}
    ann = {str(k): str(v) for k, v in (config.get("annotations") or {}).items()}
    mode = ann.get(ANN_ROOTFS, "erofs")
    if mode not in ROOTFS_MODES:
        raise InvalidArgument(f"invalid VM root filesystem {mode!r}: use one of {', '.join(ROOTFS_MODES)}")
    shares: list[Share] = []
    files: list[CopiedFile] = []
    mounts: list[GuestMount] = []
    for m in config.get("mounts") or ():
        dest = m.get("destination", "")
        opts = m.get("options") or []
        is_bind = m.get("type") == "bind" or "bind" in opts or "rbind" in opts
        if dest in _GUEST_MOUNTS:
            continue
        if m.get("type") == "tmpfs" and not is_bind:
            mounts.append(GuestMount("tmpfs", "tmpfs", dest, tuple(str(o) for o in opts)))
            continue
        if not is_bind:
            continue
        src = m.get("source", "")
        ro = "ro" in opts
        if os.path.isdir(src):
            shares.append(Share(_share_tag(len(shares)), src, dest, ro))
        elif os.path.isfile(src) and os.path.getsize(src) <= MAX_COPIED_FILE:
            st = os.stat(src)
            content = Path(src).read_bytes()
            if dest == "/etc/resolv.conf" and not _netns_path(linux):
                content = guest_resolv_conf(content.decode(errors="replace")).encode()
            files.append(CopiedFile(dest, content, st.st_mode & 0o7777))
    return VMBundle(
        bundle=bundle,
        rootfs=rootfs,
        process=spec,
        hostname=config.get("hostname") or "",
        memory_mib=memory_mib(resources),
        cpus=cpu_count(resources),
        rootfs_mode=mode,
        cache_key=ann.get(ANN_CACHE_KEY, ""),
        ports=parse_ports(ann.get(ANN_PUBLISH, "")),
        network=ann.get(ANN_NETWORK, "") != "none",
        netns=_netns_path(linux),
        shares=tuple(shares),
        files=tuple(files),
        mounts=tuple(mounts),
        readonly=bool(root.get("readonly", False)),
        cgroups_path=str(linux.get("cgroupsPath") or ""),
        cpu=dict(resources.get("cpu") or {}),
        annotations=ann,
    )


SLIRP_DNS = "10.0.2.3"


def guest_resolv_conf(text: str) -> str:
    """Loopback name servers (systemd-resolved, dnsmasq) mean nothing in the guest: use QEMU's."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                if ipaddress.ip_address(parts[1]).is_loopback:
                    line = f"nameserver {SLIRP_DNS}"
            except ValueError:
                pass
        out.append(line)
    return "\n".join(dict.fromkeys(out)) + "\n" if out else ""


def engine_annotations(image_id: str, network_mode: str) -> dict[str, str]:
    """What the engine adds to a VM container's config.json: the image cache key, no network.

    Ports need nothing: the engine gives the VM a network namespace as it gives a
    container, and its published ports reach the guest through it.
    """
    ann = {ANN_CACHE_KEY: image_id.replace("sha256:", "sha256-")} if image_id else {}
    if network_mode == "none":
        ann[ANN_NETWORK] = "none"
    return ann


_HOSTNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")


def safe_hostname(name: str) -> str:
    """Hostnames travel on the kernel command line: keep only well-formed ones."""
    return name if _HOSTNAME.match(name) else ""


def load(bundle: str | Path) -> VMBundle:
    b = Path(bundle).absolute()
    try:
        config = json.loads((b / "config.json").read_text())
    except FileNotFoundError:
        raise InvalidArgument(f"no config.json in bundle {b}") from None
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"invalid config.json in bundle {b}: {e}") from None
    return from_config(b, config)
