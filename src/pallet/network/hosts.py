"""Per-container /etc/hosts with the other containers of its networks, kept current in place.

Names between containers of a user-defined network resolve through these files
(no resolver process to keep alive).  A file is rewritten in place — same inode —
because the container sees it through a bind mount, which a rename would break.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BASE = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)


@dataclass(frozen=True)
class Peer:
    ip: str
    names: tuple[str, ...]


def hosts_text(hostname: str, ip: str, extra: Iterable[str] = (), peers: Iterable[Peer] = ()) -> str:
    """Docker's layout: localhost lines, --add-host entries, the container's own name, then peers."""
    lines = list(BASE)
    for e in extra:
        host, _, addr = e.partition(":")
        if addr == "host-gateway":
            continue
        lines.append(f"{addr}\t{host}")
    if ip:
        lines.append(f"{ip}\t{hostname}")
    seen: set[str] = {hostname}
    for p in peers:
        names = [n for n in p.names if n and n not in seen]
        seen.update(names)
        if names and p.ip:
            lines.append(f"{p.ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def _servers(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[0] == "nameserver" and not (parts[1].startswith("127.") or parts[1] == "::1"):
            out.append(parts[1])
    return out


def resolv_text(host_text: str, dns: Iterable[str] = (), search: Iterable[str] = (),
                options: Iterable[str] = (), fallback: str = "") -> str:
    """The container's resolv.conf: the host's without loopback servers, overridden by flags.

    When the host names only loopback servers (a local stub resolver), the servers of
    ``fallback`` (the stub's upstream configuration) are used instead."""
    dns, search, options = list(dns), list(search), list(options)
    if not dns and not _servers(host_text):
        dns = _servers(fallback)
    ns: list[str] = []
    other: list[str] = []
    host_search: list[str] = []
    host_opts: list[str] = []
    for line in host_text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            if not (parts[1].startswith("127.") or parts[1] == "::1"):
                ns.append(parts[1])
        elif parts[0] in ("search", "domain"):
            host_search = parts[1:]
        elif parts[0] == "options":
            host_opts += parts[1:]
        else:
            other.append(line)
    out = [f"nameserver {n}" for n in (dns or ns)]
    s = search or host_search
    if s and s != ["."]:
        out.append("search " + " ".join(s))
    o = options or host_opts
    if o:
        out.append("options " + " ".join(o))
    return "\n".join(out) + "\n" if out else ""


def rewrite_in_place(path: Path, text: str) -> None:
    """Replace a file's content keeping its inode (bind mounts of it see the new content)."""
    data = text.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
