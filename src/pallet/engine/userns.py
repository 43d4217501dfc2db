"""User-namespace remapping: ``--userns=auto[:size=N]``, podman's syntax.

Each remapped container gets its own range of subordinate ids, taken from the
``containers`` entries of /etc/subuid and /etc/subgid (podman's convention) and
not overlapping the range of any other live container.  The ranges handed out
are kept in one allocation file under the run root (``/run/pallet/userns``),
locked with ``flock``, shared by every pallet root of the host; an entry is
keyed by its container's directory and is stale once that directory is gone.
The container keeps a copy of its range in ``<container>/userns.json``, so
a range survives a reboot (which empties the run root) and is claimed again
when the container next starts.

Inside, container id 0 is the range's first id: the OCI spec gets a ``user``
namespace with ``uidMappings``/``gidMappings``, and the image's layers are
mounted through idmapped mounts (see :meth:`SnapshotStore.mount_idmapped`).

Settings: ``Config.extra["userns.subuid"|"userns.subgid"|"userns.dir"]``, else
``PALLET_SUBUID_FILE``, ``PALLET_SUBGID_FILE``, ``PALLET_USERNS_DIR``, else the
defaults.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet.config import Config
from pallet.errors import Conflict, InvalidArgument

if TYPE_CHECKING:
    from pallet.engine.state import Container

USER = "containers"
DEFAULT_SIZE = 65536
MAX_SIZE = 1 << 32
RECORD = "userns.json"
SETTINGS = {
    # key: (environment variable, default)
    "subuid": ("PALLET_SUBUID_FILE", "/etc/subuid"),
    "subgid": ("PALLET_SUBGID_FILE", "/etc/subgid"),
    "dir": ("PALLET_USERNS_DIR", "/run/pallet/userns"),
}


def setting(config: Config, key: str) -> str:
    env, default = SETTINGS[key]
    return config.extra.get(f"userns.{key}") or os.environ.get(env) or default


# -- the flag ------------------------------------------------------------------------------


def parse_size(value: str | None) -> int | None:
    """``--userns`` -> the size of the range to allocate (None: no remapping).

    "" and "host" keep the host's user namespace; "auto" takes 65536 ids;
    "auto:size=N" takes N."""
    v = (value or "").strip()
    if v in ("", "host"):
        return None
    mode, _, opts = v.partition(":")
    if mode != "auto":
        raise InvalidArgument(f'invalid USER mode "{v}"')
    size = DEFAULT_SIZE
    for opt in (o for o in opts.split(",") if o) if opts else ():
        key, sep, val = opt.partition("=")
        if key != "size" or not sep:
            raise InvalidArgument(f'invalid USER mode "{v}": unknown option "{opt}" (only size=N)')
        try:
            size = int(val)
        except ValueError:
            raise InvalidArgument(f'invalid USER mode "{v}": size must be a number') from None
        if not 1 <= size <= MAX_SIZE:
            raise InvalidArgument(f'invalid USER mode "{v}": size must be between 1 and {MAX_SIZE}')
    return size


# -- ranges --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Container ids 0..size-1 are host uids uid..uid+size-1 and gids gid..gid+size-1."""

    uid: int
    gid: int
    size: int

    def to_dict(self) -> dict[str, int]:
        return {"uid": self.uid, "gid": self.gid, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Range:
        return cls(int(d["uid"]), int(d["gid"]), int(d["size"]))

    def uid_mappings(self) -> list[dict[str, int]]:
        return [{"containerID": 0, "hostID": self.uid, "size": self.size}]

    def gid_mappings(self) -> list[dict[str, int]]:
        return [{"containerID": 0, "hostID": self.gid, "size": self.size}]


def parse_subid(text: str, user: str = USER) -> list[tuple[int, int]]:
    """(start, count) of each ``user:start:count`` line of a subuid/subgid file."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] != user:
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if start >= 0 and count > 0:
            out.append((start, count))
    return out


def first_fit(available: list[tuple[int, int]], used: list[tuple[int, int]], size: int) -> int | None:
    """The lowest start of ``size`` free ids inside one of the ``available`` ranges."""
    taken = sorted(used)
    for start, count in available:
        pos, end = start, start + count
        for u_start, u_size in taken:
            if u_start + u_size <= pos:
                continue
            if u_start >= pos + size:
                break
            pos = u_start + u_size
        if pos + size <= end:
            return pos
    return None


def subids(config: Config, kind: str) -> list[tuple[int, int]]:
    path = setting(config, kind)
    try:
        text = Path(path).read_text()
    except OSError:
        text = ""
    ranges = parse_subid(text)
    if not ranges:
        raise InvalidArgument(
            f'cannot find mappings for user "{USER}": no {kind} ranges found for user "{USER}" in {path}'
        )
    return ranges


class Allocations:
    """The host-wide table of ranges given to containers (one JSON file under a lock)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dir = Path(setting(config, "dir"))
        self.file = self.dir / "ranges.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, int]]]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                table = json.loads(self.file.read_text())
            except (OSError, ValueError):
                table = {}
            before = dict(table)
            # an owner whose container directory is gone (removed, or a crashed create)
            table = {k: v for k, v in table.items() if os.path.isdir(k)}
            yield table
            if table != before:
                tmp = self.file.with_name(f".ranges.{os.getpid()}")
                tmp.write_text(json.dumps(table, sort_keys=True))
                os.replace(tmp, self.file)
        finally:
            os.close(fd)

    def allocate(self, owner: Path, size: int) -> Range:
        uids, gids = subids(self.config, "subuid"), subids(self.config, "subgid")
        with self._locked() as table:
            others = [Range.from_dict(v) for k, v in table.items() if k != str(owner)]
            uid = first_fit(uids, [(r.uid, r.size) for r in others], size)
            gid = first_fit(gids, [(r.gid, r.size) for r in others], size)
            if uid is None or gid is None:
                raise Conflict(
                    f"could not find enough available IDs: no free range of {size} ids for user "
                    f'"{USER}" ({len(others)} containers hold ranges)'
                )
            rng = Range(uid, gid, size)
            table[str(owner)] = rng.to_dict()
            return rng

    def claim(self, owner: Path, rng: Range) -> None:
        """Record ``rng`` for ``owner`` again (the run root was emptied by a reboot)."""
        with self._locked() as table:
            if table.get(str(owner)) == rng.to_dict():
                return
            for k, v in table.items():
                o = Range.from_dict(v)
                if k != str(owner) and (_overlap(o.uid, o.size, rng.uid, rng.size) or
                                        _overlap(o.gid, o.size, rng.gid, rng.size)):
                    raise Conflict(f"the user namespace range of this container (uid {rng.uid}, "
                                   f"{rng.size} ids) is now held by another container")
            table[str(owner)] = rng.to_dict()

    def release(self, owner: Path) -> None:
        with self._locked() as table:
            table.pop(str(owner), None)

    def all(self) -> dict[str, Range]:
        with self._locked() as table:
            return {k: Range.from_dict(v) for k, v in table.items()}


def _overlap(a: int, an: int, b: int, bn: int) -> bool:
    return a < b + bn and b < a + an


# -- a container's range ---------------------------------------------------------------------


def load(container_dir: Path) -> Range | None:
    """The range recorded in a container's directory (None: not remapped)."""
    try:
        return Range.from_dict(json.loads((Path(container_dir) / RECORD).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidArgument(f"corrupt user namespace record in {container_dir}") from None


def setup_container(config: Config, c: Container) -> Range | None:
    """At create: allocate the range of a ``--userns=auto`` container and make what it
    needs reachable by its mapped root (its directory, its volumes)."""
    size = parse_size(c.spec.resources.get("UsernsMode"))
    if size is None:
        return None
    if c.spec.runtime == "vm":
        raise InvalidArgument("--userns=auto is not supported with the vm runtime")
    searchable(config, c.dir)
    rng = Allocations(config).allocate(c.dir, size)
    tmp = c.dir / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(rng.to_dict()))
    os.replace(tmp, c.dir / RECORD)
    chown_volumes(config, c, rng)
    return rng


def release_container(config: Config, c: Container) -> None:
    """At rm: give the range back."""
    if (c.dir / RECORD).exists() or parse_size(c.spec.resources.get("UsernsMode")) is not None:
        Allocations(config).release(c.dir)


def prepare_container(config: Config, container_dir: Path) -> Range | None:
    """At start: the container's range, claimed again in the host-wide table if needed."""
    rng = load(container_dir)
    if rng is not None:
        Allocations(config).claim(Path(container_dir), rng)
    return rng


def searchable(config: Config, path: Path) -> None:
    """Let the mapped root reach ``path``: other users get search (x) permission on the
    pallet-owned directories down to it; a directory above the pallet root without it
    is an error (pallet does not change permissions outside its own root)."""
    open_inside(Path(config.root), path)
    check_reachable(path)


def open_inside(root: Path, path: Path) -> None:
    """Add search permission for others to ``root`` and each directory down to ``path``."""
    root = Path(root).absolute()
    p = Path(path).absolute()
    for d in reversed([p, *p.parents]):
        if d == root or root in d.parents:
            st = os.stat(d)
            if not st.st_mode & 0o001:
                os.chmod(d, (st.st_mode & 0o7777) | 0o001)


def check_reachable(path: Path) -> None:
    """Every directory from / down to ``path`` is searchable by other users."""
    p = Path(path).absolute()
    for d in reversed([p, *p.parents]):
        if not os.stat(d).st_mode & 0o001:
            raise InvalidArgument(
                f"--userns=auto: {d} is not searchable by other users, so the container's "
                "remapped root could not reach its root filesystem"
            )


def chown_volumes(config: Config, c: Container, rng: Range) -> None:
    """Empty, root-owned volumes this container mounts (just created for it) become its
    mapped root's; volumes that already hold data keep their owners."""
    vols = Path(config.root) / "volumes"
    for m in c.spec.mounts:
        if m.type != "volume" or not m.source:
            continue
        data = vols / m.source / "_data"
        try:
            st = os.lstat(data)
            empty = not any(os.scandir(data))
        except OSError:
            continue
        if empty and st.st_uid == 0 and st.st_gid == 0:
            searchable(config, data)
            os.chown(data, rng.uid, rng.gid)


# -- the user namespace itself ---------------------------------------------------------------


def userns_fd(rng: Range) -> int:
    """A descriptor of a new user namespace with ``rng``'s mappings (for idmapped mounts).

    A short-lived child unshares it; this process (root in the host's namespace) writes
    the child's maps, opens its ``ns/user`` and lets it go.  The namespace lives as long
    as the descriptor or a mount that uses it."""
    from pallet.linux.syscalls import CLONE_NEWUSER, libc, unshare

    libc()  # loaded before the fork: the child only makes the call
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(ready_r)
            os.close(go_w)
            unshare(CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError("could not create a user namespace")
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(f"0 {rng.uid} {rng.size}\n")
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(f"0 {rng.gid} {rng.size}\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(pid, 0)


def apply(spec: dict[str, Any], rng: Range) -> None:
    """Put a new user namespace with ``rng``'s mappings into the OCI ``spec`` (in place)."""
    linux = spec.setdefault("linux", {})
    ns = [n for n in linux.get("namespaces") or [] if n.get("type") != "user"]
    linux["namespaces"] = [{"type": "user"}, *ns]
    linux["uidMappings"] = rng.uid_mappings()
    linux["gidMappings"] = rng.gid_mappings()
    own_netns = any(n.get("type") == "network" and not n.get("path") for n in ns)
    if not own_netns:
        # sysfs can only be mounted by the owner of the network namespace: a container
        # that joins one made by the engine (or the host's) gets the host's /sys bound
        # read-only instead, as podman does
        for m in spec.get("mounts") or []:
            if m.get("type") == "sysfs":
                keep = [o for o in m.get("options") or [] if o in ("nosuid", "noexec", "nodev")]
                m.update(type="bind", source="/sys", options=["rbind", *keep, "ro"])
