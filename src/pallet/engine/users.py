"""Resolve ``-u user[:group]`` against the image's own /etc/passwd and /etc/group.

Docker's rules: a name must exist in the container's passwd (``unable to find user
NAME: no matching entries in passwd file``); a numeric uid need not.  The primary
group comes from passwd unless a group is given; supplementary groups are every
group of /etc/group that lists the user by name.
"""

from __future__ import annotations

from pathlib import Path

from pallet.engine.paths import secure_join
from pallet.errors import InvalidArgument
from pallet.oci.record import record


@record(frozen=True)
class ExecUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"
    name: str = ""


def parse_passwd(text: str) -> list[tuple[str, int, int, str]]:
    """(name, uid, gid, home) for each well-formed line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 7:
            continue
        try:
            out.append((parts[0], int(parts[2]), int(parts[3]), parts[5]))
        except ValueError:
            continue
    return out


def parse_group(text: str) -> list[tuple[str, int, tuple[str, ...]]]:
    """(name, gid, members) for each well-formed line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 4:
            continue
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        members = tuple(m for m in parts[3].split(",") if m)
        out.append((parts[0], gid, members))
    return out


def resolve_user(spec: str, passwd: str, group: str) -> ExecUser:
    """Resolve ``user[:group]`` (names or numbers) from the files' contents."""
    user, _, grp = (spec or "").partition(":")
    users = parse_passwd(passwd)
    groups = parse_group(group)
    name = ""
    home = "/"
    if not user:
        user = "0"
    if user.isdigit():
        uid = int(user)
        gid = 0
        for n, u, g, h in users:
            if u == uid:
                name, gid, home = n, g, h
                break
    else:
        for n, u, g, h in users:
            if n == user:
                name, uid, gid, home = n, u, g, h
                break
        else:
            raise InvalidArgument(f"unable to find user {user}: no matching entries in passwd file")
    if grp:
        if grp.isdigit():
            gid = int(grp)
        else:
            for n, g, _m in groups:
                if n == grp:
                    gid = g
                    break
            else:
                raise InvalidArgument(
                    f"unable to find group {grp}: no matching entries in group file"
                )
    extra: list[int] = []
    if name and not grp:
        for _n, g, members in groups:
            if name in members and g != gid and g not in extra:
                extra.append(g)
    return ExecUser(uid=uid, gid=gid, additional_gids=tuple(extra), home=home or "/", name=name)


def _read(rootfs: Path, path: str) -> str:
    try:
        return secure_join(rootfs, path).read_text(errors="replace")
    except OSError:
        return ""


def resolve_in_rootfs(spec: str, rootfs: Path) -> ExecUser:
    """Resolve ``spec`` against ``rootfs``'s /etc/passwd and /etc/group (symlinks kept inside)."""
    return resolve_user(spec, _read(rootfs, "/etc/passwd"), _read(rootfs, "/etc/group"))
