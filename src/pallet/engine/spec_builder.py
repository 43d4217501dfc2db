"""Build a container's OCI runtime config (config.json) from its record: pure, no I/O."""

from __future__ import annotations

from pallet.engine.state import ContainerSpec
from pallet.engine.users import ExecUser
from pallet.oci.record import record

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/dev/init"


@record(frozen=True)
class HostMount:
    """A mount resolved to host paths: what goes into config.json."""

    destination: str
    type: str  # bind | tmpfs
    source: str
    options: tuple[str, ...]


def process_env(spec: ContainerSpec, user: ExecUser, hostname: str) -> list[str]:
    """The container's environment as Docker builds it: PATH, HOSTNAME, TERM, then the rest, HOME."""
    env: dict[str, str] = {}
    for e in spec.env:
        k, eq, v = e.partition("=")
        if eq:
            env[k] = v
    out = {"PATH": env.pop("PATH", DEFAULT_PATH), "HOSTNAME": hostname}
    if spec.tty:
        out["TERM"] = "xterm"
    out.update(env)
    out.setdefault("HOME", user.home or "/")
    return [f"{k}={v}" for k, v in out.items()]


def command(spec: ContainerSpec) -> list[str]:
    args = [spec.path, *spec.args]
    if spec.init:
        return [INIT_PATH, "--", *args]
    return args


def mount_entries(mounts: list[HostMount]) -> list[dict[str, Any]]:
    """config.json mounts, shallowest destination first (so parents mount before children)."""
    ordered = sorted(mounts, key=lambda m: len([p for p in m.destination.split("/") if p]))
    return [
        {"destination": m.destination, "type": m.type, "source": m.source, "options": list(m.options)}
        for m in ordered
    ]


def bind(src: str, dst: str, read_only: bool = False, propagation: str = "rprivate") -> HostMount:
    opts = ["rbind", propagation]
    if read_only:
        opts.append("ro")
    return HostMount(dst, "bind", src, tuple(opts))


def tmpfs(dst: str, options: tuple[str, ...], read_only: bool = False) -> HostMount:
    opts = ["nosuid", "nodev", "noexec"]
    if read_only:
        opts.append("ro")
    opts += [o for o in options if o not in opts]
    return HostMount(dst, "tmpfs", "tmpfs", tuple(opts))


def finish_spec(
    base: dict[str, Any],
    spec: ContainerSpec,
    *,
    rootfs: str,
    mounts: list[HostMount],
    container_id: str,
    name: str,
    network_mode: str,
) -> dict[str, Any]:
    """Add the root path, the container's mounts, annotations and namespace choices to ``base``."""
    out = dict(base)
    out["root"] = {"path": rootfs, "readonly": bool(spec.read_only)}
    have = {m.destination for m in mounts}
    kept = [m for m in out.get("mounts", []) if m.get("destination") not in have]
    out["mounts"] = kept + mount_entries(mounts)
    ann = dict(out.get("annotations") or {})
    ann.update(spec.annotations)
    ann["org.opencontainers.image.ref.name"] = spec.image
    ann["io.pallet.container.name"] = name
    ann["io.pallet.container.id"] = container_id
    out["annotations"] = ann
    linux = dict(out.get("linux") or {})
    if network_mode == "host":
        linux["namespaces"] = [n for n in linux.get("namespaces", []) if n.get("type") != "network"]
    out["linux"] = linux
    return out


def hosts_file(hostname: str, ip: str = "", extra: tuple[str, ...] = ()) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for e in extra:
        host, _, addr = e.partition(":")
        lines.append(f"{addr}\t{host}")
    if ip:
        lines.append(f"{ip}\t{hostname}")
    return "\n".join(lines) + "\n"


def resolv_conf(host_text: str, dns: tuple[str, ...] = ()) -> str:
    """The host's resolv.conf without loopback servers (unreachable from the container)."""
    if dns:
        return "".join(f"nameserver {d}\n" for d in dns)
    out = []
    for line in host_text.splitlines():
        parts = line.split()
        if parts and parts[0] == "nameserver" and len(parts) > 1 and (
            parts[1].startswith("127.") or parts[1] == "::1"
        ):
            continue
        out.append(line)
    return "\n".join(out) + "\n" if out else ""
