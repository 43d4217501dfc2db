"""Container records on disk: one directory per container, locked and written atomically.

Layout under ``<root>/containers``::

    <id>/container.json   what the container was created with (ContainerSpec), never rewritten
                          except by rename
    <id>/state.json       its current state (ContainerState), rewritten atomically under lock
    <id>/lock             fcntl lock serializing state changes of this container
    <id>/monitor.json     written by the monitor of a detached container (pid, exit status)
    <id>/<id>-json.log    stdout/stderr in Docker's json-file format
    names/<name>          name reservation (O_EXCL), holds the id

Nothing here starts processes; :mod:`pallet.engine.containers` drives the lifecycle.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from pallet.errors import ContainerNotFound, InvalidArgument, NameInUse, PalletError
from pallet.oci.record import field, field_names, record, replace

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

_NAME_PATTERN = r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$"  # compiled on first use (re caches it)


def _is_hex(s: str) -> bool:
    return bool(s) and not s.strip("0123456789abcdef")


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int) -> str:
    """Docker's timestamp format: RFC 3339 with nanoseconds, UTC (``0001-01-01T00:00:00Z`` for 0)."""
    if not ns:
        return "0001-01-01T00:00:00Z"
    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` in place (no temporary file and rename: two directory updates fewer),
    for files only read once the container starts (its /etc/hostname, hosts, resolv.conf)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def remove_dir(path: Path) -> None:
    """``rm -rf path`` that never follows a symlink; what cannot be removed stays.

    (shutil.rmtree does the same, but importing shutil loads the bz2 and lzma modules.)
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)  # a symlink or a file
        return
    try:
        _clear_dir(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _clear_dir(dfd: int) -> None:
    with os.scandir(dfd) as it:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    for name, is_dir in entries:
        if not is_dir:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dfd)
            continue
        try:
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        except OSError:
            continue
        try:
            _clear_dir(sub)
        finally:
            os.close(sub)
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=dfd)


def validate_name(name: str) -> str:
    if not re.match(_NAME_PATTERN, name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.lstrip("/")


@record(frozen=True)
class MountSpec:
    """One mount asked for by -v / --mount / --tmpfs or an image VOLUME."""

    type: str  # bind | volume | tmpfs
    destination: str
    source: str = ""  # host path (bind) or volume name (volume)
    read_only: bool = False
    options: tuple[str, ...] = ()  # extra mount options (tmpfs size=..., propagation)
    anonymous: bool = False  # an anonymous volume, removed with `rm -v`
    nocopy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "Type": self.type,
            "Source": self.source,
            "Destination": self.destination,
            "ReadOnly": self.read_only,
            "Options": list(self.options),
            "Anonymous": self.anonymous,
            "NoCopy": self.nocopy,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MountSpec:
        return cls(
            type=d["Type"],
            destination=d["Destination"],
            source=d.get("Source", ""),
            read_only=bool(d.get("ReadOnly")),
            options=tuple(d.get("Options") or ()),
            anonymous=bool(d.get("Anonymous")),
            nocopy=bool(d.get("NoCopy")),
        )


@record(frozen=True)
class ContainerSpec:
    """Everything a container was created with (Docker's Config and HostConfig, flattened)."""

    image: str  # as the user named it
    image_id: str  # sha256:...
    path: str  # the command (entrypoint[0] or cmd[0])
    args: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    tty: bool = False
    open_stdin: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None
    mounts: tuple[MountSpec, ...] = ()
    read_only: bool = False
    init: bool = False
    network_mode: str = "none"
    restart_policy: str = "no"
    restart_max: int = 0
    auto_remove: bool = False
    runtime: str = "pallet"
    isolation: str = ""
    exposed_ports: tuple[str, ...] = ()
    port_bindings: tuple[str, ...] = ()  # -p specs as given; the network layer interprets them
    extra_hosts: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # --network-alias
    ip: str = ""  # --ip
    publish_all: bool = False  # -P
    resources: dict[str, Any] = field(default_factory=dict)  # HostConfig resource fields
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k in field_names(type(self)):
            v = getattr(self, k)
            if k == "mounts":
                v = [m.to_dict() for m in v]
            elif isinstance(v, tuple):
                v = list(v)
            d[k] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContainerSpec:
        kw: dict[str, Any] = {}
        for k in field_names(cls):
            if k not in d:
                continue
            v = d[k]
            if k == "mounts":
                v = tuple(MountSpec.from_dict(m) for m in v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[k] = v
        return cls(**kw)


@record(frozen=True)
class ContainerState:
    """Docker's ``State`` of a container."""

    status: str = "created"  # created|running|paused|restarting|removing|exited|dead
    pid: int = 0
    pid_start: int = 0  # the process's start time (jiffies) to detect pid reuse
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: int = 0  # ns
    finished_at: int = 0  # ns
    restart_count: int = 0
    monitor_pid: int = 0
    monitor_start: int = 0  # the monitor's start time, against pid reuse after a reboot
    stopped_by_user: bool = False
    mounted: bool = False  # the rootfs overlay is mounted
    seq: int = 0  # last monitor report merged

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in field_names(type(self))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContainerState:
        names = field_names(cls)
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")


@record(frozen=True)
class Container:
    id: str
    name: str
    created: int  # ns
    spec: ContainerSpec
    state: ContainerState
    dir: Path

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.id}-json.log"

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"


class ContainerStore:
    """The on-disk records of all containers under one pallet root."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "containers"
        self.names = self.dir / "names"

    # -- creation and removal -------------------------------------------------

    def reserve(self, name: str, cid: str) -> None:
        """Claim ``name`` for ``cid``, atomically; raise NameInUse if taken."""
        self.names.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.names / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                owner = (self.names / name).read_text().strip()
            except OSError:
                owner = ""
            if owner and not (self.dir / owner / "container.json").exists() and self._stale(owner):
                # a creation that crashed before writing its record: take the name over
                os.unlink(self.names / name)
                return self.reserve(name, cid)
            raise NameInUse("container", f"/{name}", owner) from None
        with os.fdopen(fd, "w") as f:
            f.write(cid)
        return None

    def _stale(self, owner: str) -> bool:
        d = self.dir / owner
        if not d.exists():
            return True
        try:
            return time.time() - d.stat().st_mtime > 60
        except OSError:
            return True

    def release(self, name: str, cid: str) -> None:
        p = self.names / name
        try:
            if p.read_text().strip() == cid:
                p.unlink()
        except OSError:
            pass

    def create(self, cid: str, name: str, spec: ContainerSpec, created: int) -> Container:
        d = self.dir / cid
        d.mkdir(parents=True, mode=0o700)
        state = ContainerState()
        self._write_config(d, cid, name, created, spec)
        atomic_write(d / "state.json", json.dumps(state.to_dict()).encode())
        return Container(cid, name, created, spec, state, d)

    def _write_config(self, d: Path, cid: str, name: str, created: int, spec: ContainerSpec) -> None:
        doc = {"Id": cid, "Name": name, "Created": created, "Spec": spec.to_dict()}
        atomic_write(d / "container.json", json.dumps(doc).encode())

    def set_name(self, c: Container, name: str) -> Container:
        self._write_config(c.dir, c.id, name, c.created, c.spec)
        return replace(c, name=name)

    def set_spec(self, c: Container, spec: ContainerSpec) -> Container:
        """Record a changed spec (``update``'s limits, restart policy); call under the lock."""
        self._write_config(c.dir, c.id, c.name, c.created, spec)
        return replace(c, spec=spec)

    # -- reading ----------------------------------------------------------------

    def ids(self) -> list[str]:
        try:
            return [e for e in os.listdir(self.dir) if len(e) == 64 and _is_hex(e)]
        except FileNotFoundError:
            return []

    def load(self, cid: str) -> Container:
        d = self.dir / cid
        try:
            doc = json.loads((d / "container.json").read_bytes())
            st = json.loads((d / "state.json").read_bytes())
        except FileNotFoundError:
            raise ContainerNotFound(cid) from None
        except ValueError as e:
            raise PalletError(f"container {cid[:12]}: corrupt record: {e}") from None
        return Container(
            id=doc["Id"],
            name=doc["Name"],
            created=int(doc["Created"]),
            spec=ContainerSpec.from_dict(doc["Spec"]),
            state=ContainerState.from_dict(st),
            dir=d,
        )

    def all(self) -> list[Container]:
        out = []
        for cid in self.ids():
            try:
                out.append(self.load(cid))
            except (ContainerNotFound, PalletError):
                continue
        return out

    def resolve(self, ref: str) -> str:
        """An id from a full id, a name (with or without '/'), or a unique id prefix."""
        if not ref:
            raise ContainerNotFound(ref)
        if len(ref) == 64 and (self.dir / ref / "container.json").exists():
            return ref
        name = ref[1:] if ref.startswith("/") else ref
        if name and "/" not in name:
            try:
                cid = (self.names / name).read_text().strip()
                if (self.dir / cid / "container.json").exists():
                    return cid
            except OSError:
                pass
        if _is_hex(ref):
            hits = [i for i in self.ids() if i.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise ContainerNotFound(ref)

    # -- state --------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, cid: str) -> Iterator[None]:
        d = self.dir / cid
        try:
            fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ContainerNotFound(cid) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def save_state(self, c: Container, state: ContainerState) -> Container:
        atomic_write(c.dir / "state.json", json.dumps(state.to_dict()).encode())
        return replace(c, state=state)

    def load_state(self, cid: str) -> ContainerState:
        """The state alone (``load`` also reads and parses the container's config)."""
        try:
            st = json.loads((self.dir / cid / "state.json").read_bytes())
        except FileNotFoundError:
            raise ContainerNotFound(cid) from None
        except ValueError as e:
            raise PalletError(f"container {cid[:12]}: corrupt record: {e}") from None
        return ContainerState.from_dict(st)

    def update_state(self, c: Container, **changes: Any) -> Container:
        """Change fields of the state on disk, under the container's lock; ``c`` with it."""
        with self.locked(c.id):
            return self.save_state(c, replace(self.load_state(c.id), **changes))

    def remove_record(self, c: Container) -> None:
        self.release(c.name, c.id)
        # rename first so that a crash halfway leaves no half-record that lists
        tomb = self.dir / f".removing-{c.id}"
        try:
            os.rename(c.dir, tomb)
        except FileNotFoundError:
            return
        remove_dir(tomb)

    def sweep(self) -> None:
        """Remove leftovers of removals that crashed halfway."""
        import shutil

        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for e in entries:
            if e.startswith(".removing-"):
                shutil.rmtree(self.dir / e, ignore_errors=True)


def read_monitor_report(c: Container) -> dict[str, Any] | None:
    """The last report of the container's monitor, if any."""
    try:
        return dict(json.loads((c.dir / "monitor.json").read_bytes()))
    except (FileNotFoundError, ValueError):
        return None
