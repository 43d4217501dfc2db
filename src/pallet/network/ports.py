"""Published ports: ``-p`` specs parsed into bindings, free host ports, Docker's ``Ports`` map.

``-p [ip:][hostPort:]containerPort[/tcp|udp|sctp]`` where either port may be a range
(``8000-8010:80-90``, or a host range for one container port, ``8000-8010:80``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from pallet.errors import Conflict, InvalidArgument

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortBinding:
    """One container port published on the host (host_port 0: pick a free one)."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_range: tuple[int, int] | None = None  # a host range for one container port

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"

    def to_dict(self) -> dict[str, object]:
        return {"container_port": self.container_port, "protocol": self.protocol,
                "host_ip": self.host_ip, "host_port": self.host_port}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PortBinding:
        return cls(int(str(d["container_port"])), str(d.get("protocol", "tcp")), str(d.get("host_ip", "")),
                   int(str(d.get("host_port", 0))))


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid port specification: \"{spec}\"" if text else
                              f"No port specified: {spec}<empty>")
    return int(text)


def _range(text: str, spec: str) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    a = _port(lo, spec)
    b = _port(hi, spec) if dash else a
    if b < a:
        raise InvalidArgument(f"invalid range specified for port: {text}")
    return a, b


def parse_publish(spec: str) -> list[PortBinding]:
    """One ``-p`` value to its bindings (Docker's grammar and messages)."""
    raw = spec.strip()
    proto = "tcp"
    if "/" in raw:
        raw, _, proto = raw.rpartition("/")
        proto = proto.lower()
        if proto not in PROTOCOLS:
            raise InvalidArgument(f"invalid proto: {proto}")
    host_ip = ""
    if raw.startswith("["):  # [v6addr]:host:ctr
        end = raw.find("]")
        if end < 0:
            raise InvalidArgument(f"invalid port specification: \"{spec}\"")
        host_ip, raw = raw[1:end], raw[end + 2:] if raw[end + 1:end + 2] == ":" else raw[end + 1:]
        rest = raw.split(":")
        if len(rest) == 1:
            rest = ["", rest[0]]
    else:
        parts = raw.split(":")
        if len(parts) > 3:
            raise InvalidArgument(f"invalid port specification: \"{spec}\"")
        if len(parts) == 3:
            host_ip = parts[0]
            rest = parts[1:]
        elif len(parts) == 2:
            rest = parts
        else:
            rest = ["", parts[0]]
    if host_ip:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    host_text, ctr_text = rest
    if not ctr_text:
        raise InvalidArgument(f"No port specified: {spec}<empty>")
    c_lo, c_hi = _range(ctr_text, spec)
    if not host_text:
        return [PortBinding(p, proto, host_ip, 0) for p in range(c_lo, c_hi + 1)]
    h_lo, h_hi = _range(host_text, spec)
    if c_lo == c_hi and h_hi > h_lo:
        return [PortBinding(c_lo, proto, host_ip, 0, (h_lo, h_hi))]
    if h_hi - h_lo != c_hi - c_lo:
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: {ctr_text} and {host_text}")
    return [PortBinding(c, proto, host_ip, h_lo + i) for i, c in enumerate(range(c_lo, c_hi + 1))]


def parse_exposed(key: str) -> tuple[int, str]:
    """An ExposedPorts key (``80/tcp``) to (port, protocol)."""
    port, _, proto = key.partition("/")
    return _port(port, key), (proto or "tcp").lower()


def parse_all(specs: Iterable[str], exposed: Iterable[str] = (), publish_all: bool = False) -> list[PortBinding]:
    """Every ``-p`` binding, plus with ``-P`` every exposed port not already published."""
    out: list[PortBinding] = []
    for s in specs:
        out.extend(parse_publish(s))
    if publish_all:
        have = {b.key for b in out}
        for key in exposed:
            port, proto = parse_exposed(key)
            if f"{port}/{proto}" not in have:
                out.append(PortBinding(port, proto, "", 0))
    return out


def _sock_type(proto: str) -> int:
    return socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM


def port_free(host_ip: str, port: int, proto: str) -> bool:
    """Whether nothing on the host listens on ``host_ip:port`` (all addresses when empty)."""
    addrs = [host_ip] if host_ip else ["0.0.0.0", "::"]
    for addr in addrs:
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        try:
            s = socket.socket(fam, _sock_type(proto))
        except OSError:
            continue
        with s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind((addr, port))
            except OSError as e:
                if e.errno == 98:  # EADDRINUSE
                    return False
                if e.errno == 99 and fam == socket.AF_INET6 and not host_ip:  # no IPv6 on this host
                    continue
                raise Conflict(f"Error starting userland proxy: listen {proto}{'6' if ':' in addr else '4'} "
                               f"{addr}:{port}: bind: {(e.strerror or str(e)).lower()}") from None
    return True


def free_port(proto: str, taken: set[tuple[int, str]], lo: int = 32768, hi: int = 60999) -> int:
    """A host port from the ephemeral range that nothing uses (the kernel picks one)."""
    for _ in range(64):
        with socket.socket(socket.AF_INET, _sock_type(proto)) as s:
            s.bind(("0.0.0.0", 0))
            p = int(s.getsockname()[1])
        if lo <= p <= hi and (p, proto) not in taken and port_free("", p, proto):
            return p
    raise Conflict("no free host port left")


def _overlap(a: str, b: str) -> bool:
    return not a or not b or a == b or a in ("0.0.0.0", "::") or b in ("0.0.0.0", "::")


def allocate(bindings: list[PortBinding], in_use: Iterable[PortBinding] = ()) -> list[PortBinding]:
    """Concrete host ports for every binding; a taken port is refused with Docker's message."""
    used = list(in_use)
    taken = {(b.host_port, b.protocol) for b in used}
    out: list[PortBinding] = []

    def clash(ip: str, port: int, proto: str) -> bool:
        return any(u.host_port == port and u.protocol == proto and _overlap(u.host_ip, ip) for u in used + out)

    for b in bindings:
        if b.host_range is not None:
            lo, hi = b.host_range
            for p in range(lo, hi + 1):
                if not clash(b.host_ip, p, b.protocol) and port_free(b.host_ip, p, b.protocol):
                    out.append(PortBinding(b.container_port, b.protocol, b.host_ip, p))
                    break
            else:
                raise Conflict(f"Bind for {b.host_ip or '0.0.0.0'}:{lo}-{hi} failed: port is already allocated")
            continue
        if b.host_port == 0:
            p = free_port(b.protocol, taken | {(o.host_port, o.protocol) for o in out})
            out.append(PortBinding(b.container_port, b.protocol, b.host_ip, p))
            continue
        if clash(b.host_ip, b.host_port, b.protocol) or not port_free(b.host_ip, b.host_port, b.protocol):
            raise Conflict(f"Bind for {b.host_ip or '0.0.0.0'}:{b.host_port} failed: port is already allocated")
        out.append(b)
    return out


def parse_dnat_rules(text: str) -> list[PortBinding]:
    """Host ports CNI portmap already forwards (``iptables -t nat -S CNI-HOSTPORT-DNAT``), whoever
    set them up: other pallet roots, other CNI users."""
    out: list[PortBinding] = []
    for line in text.splitlines():
        f = line.split()
        if not f or f[0] != "-A" or "--dports" not in f:
            continue
        proto = f[f.index("-p") + 1] if "-p" in f else "tcp"
        for part in f[f.index("--dports") + 1].split(","):
            lo, _, hi = part.partition(":")
            if lo.isdigit():
                for p in range(int(lo), int(hi or lo) + 1):
                    out.append(PortBinding(0, proto, "", p))
    return out


def forwarded_ports() -> list[PortBinding]:
    import subprocess

    try:
        p = subprocess.run(["iptables", "-w", "5", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_dnat_rules(p.stdout) if p.returncode == 0 else []


def portmap_entries(bindings: Iterable[PortBinding]) -> list[dict[str, object]]:
    """The ``runtimeConfig.portMappings`` the CNI portmap plugin takes."""
    return [
        {"hostPort": b.host_port, "containerPort": b.container_port, "protocol": b.protocol,
         **({"hostIP": b.host_ip} if b.host_ip else {})}
        for b in bindings
    ]


def docker_ports(bindings: Iterable[PortBinding], exposed: Iterable[str] = ()) -> dict[str, list[dict[str, str]] | None]:
    """NetworkSettings.Ports: every exposed port, with its host bindings or null."""
    out: dict[str, list[dict[str, str]] | None] = {}
    for key in exposed:
        port, proto = parse_exposed(key)
        out.setdefault(f"{port}/{proto}", None)
    for b in bindings:
        cur = out.get(b.key) or []
        # IPv4 only: no "::" entry, nothing is published on IPv6
        cur.append({"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)})
        out[b.key] = cur
    return out
