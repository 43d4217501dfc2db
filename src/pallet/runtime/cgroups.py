"""Control groups: one container's cgroup, on cgroup v1 (or hybrid) and v2.

``manager(cgroups_path)`` returns a :class:`Manager` for the hierarchy the host
runs (see :func:`detect`).  The input of :meth:`Manager.apply` is the OCI
runtime spec's ``linux.resources`` object, unchanged (camelCase keys).

All file access goes through a small :class:`CgroupFs` (the host's by
default), so that the same managers can be run against a fake kernel in unit
tests.  A setting the host's kernel cannot honour (a controller or interface
file that is not there) is skipped and recorded in ``Manager.warnings``, the
way Docker warns and discards such limits.
"""

from __future__ import annotations

import errno
import os
import time

from pallet.errors import InvalidArgument, RuntimeFailure

TYPE_CHECKING = False  # on every container's start: typing only for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Literal, Protocol

    Version = Literal["v1", "v2", "hybrid"]
else:
    Protocol = object

DEFAULT_ROOT = "/sys/fs/cgroup"

# v1 controllers pallet manages (named hierarchies such as name=systemd are left alone)
V1_CONTROLLERS = (
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
)
# v2 controllers enabled for a container's cgroup when the parent offers them
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids", "hugetlb", "misc", "rdma")


class CgroupError(RuntimeFailure):
    """A cgroup operation failed."""


# -- file access ----------------------------------------------------------------


class CgroupFs(Protocol):
    """The few file operations the managers make (the kernel's cgroupfs, or a fake)."""

    def exists(self, path: str) -> bool: ...
    def isdir(self, path: str) -> bool: ...
    def listdir(self, path: str) -> list[str]: ...
    def realpath(self, path: str) -> str: ...
    def mkdir(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def read(self, path: str) -> str: ...
    def write(self, path: str, data: str) -> None: ...
    def attach_device_filter(self, path: str, program: bytes) -> None: ...


class HostFs:
    """The real cgroup filesystems."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def realpath(self, path: str) -> str:
        return os.path.realpath(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def read(self, path: str) -> str:
        with open(path) as f:
            return f.read()

    def write(self, path: str, data: str) -> None:
        # one write(2) per value: cgroup files parse each write on its own
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def attach_device_filter(self, path: str, program: bytes) -> None:
        from pallet.runtime.cgroups_devices import attach

        attach(path, program)


# -- public interface -------------------------------------------------------------


class Manager(Protocol):
    """One cgroup (on v1: one directory per controller hierarchy)."""

    path: str
    version: Version
    warnings: list[str]

    def create(self) -> None: ...
    def apply(self, resources: Mapping[str, Any]) -> None: ...
    def add(self, pid: int) -> None: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def frozen(self) -> bool: ...
    def pids(self) -> list[int]: ...
    def stats(self) -> dict[str, Any]: ...
    def oom_killed(self) -> bool: ...
    def exists(self) -> bool: ...
    def destroy(self) -> None: ...


def detect(root: str = DEFAULT_ROOT, *, fs: CgroupFs | None = None) -> Version:
    """Which cgroup layout the host runs: pure ``v2``, ``hybrid`` (v1 controllers
    plus a v2 tree at ``unified``) or ``v1``."""
    fs = fs or HostFs()
    if fs.exists(os.path.join(root, "cgroup.controllers")):
        return "v2"
    if fs.exists(os.path.join(root, "unified", "cgroup.controllers")):
        return "hybrid"
    return "v1"


def manager(
    cgroups_path: str, *, root: str = DEFAULT_ROOT, fs: CgroupFs | None = None
) -> Manager:
    """The manager of ``cgroups_path`` ("/pallet/<id>", or systemd style
    "system.slice:pallet:<id>") on the host's hierarchy under ``root``."""
    fs = fs or HostFs()
    path = parse_path(cgroups_path)
    version = detect(root, fs=fs)
    if version == "v2":
        from pallet.runtime.cgroups_v2 import V2Manager

        return V2Manager(path, root=root, fs=fs)
    from pallet.runtime.cgroups_v1 import V1Manager

    return V1Manager(path, root=root, fs=fs, version=version)


def parse_path(cgroups_path: str) -> str:
    """Normalise an OCI ``linux.cgroupsPath`` to an absolute path in the hierarchy.

    ``slice:prefix:name`` (the systemd driver's form, as Docker and runc write
    it) maps to where systemd would put it: ``/<expanded slice>/<prefix>-<name>.scope``.
    """
    p = cgroups_path.strip()
    if not p:
        raise InvalidArgument("cgroups path must not be empty")
    if ":" in p:
        parts = p.split(":")
        if len(parts) != 3:
            raise InvalidArgument(f"invalid systemd cgroups path {cgroups_path!r}: want slice:prefix:name")
        slice_, prefix, name = parts
        if not name:
            raise InvalidArgument(f"invalid systemd cgroups path {cgroups_path!r}: empty name")
        unit = name if name.endswith(".slice") else (f"{prefix}-{name}.scope" if prefix else f"{name}.scope")
        return _expand_slice(slice_ or "system.slice") + "/" + unit
    norm = os.path.normpath("/" + p.lstrip("/"))
    if norm == "/" or any(part == ".." for part in p.split("/")):
        raise InvalidArgument(f"invalid cgroups path {cgroups_path!r}")
    return norm


def _expand_slice(slice_: str) -> str:
    """"a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice" (systemd's nesting rule)."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise InvalidArgument(f"invalid slice name {slice_!r}")
    if slice_ == "-.slice":
        return ""
    stem = slice_[: -len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise InvalidArgument(f"invalid slice name {slice_!r}")
    out, acc = [], ""
    for comp in stem.split("-"):
        acc = f"{acc}-{comp}" if acc else comp
        out.append(acc + ".slice")
    return "/" + "/".join(out)


# -- what both versions share ---------------------------------------------------------


class ManagerBase:
    """The part of a :class:`Manager` that is the same on v1 and v2.

    A subclass says where an interface file lives (:meth:`_path`) and how each
    resource section reaches the kernel (``_memory``, ``_cpu``, ``_block_io``,
    ``_devices``...); this class keeps the order in which a spec's resources are
    applied, and how a setting is written, read, or discarded with a warning.
    """

    version: Version
    hugetlb_limit = "hugetlb.{}.max"  # the interface file of one page size's limit

    def __init__(self, path: str, *, root: str, fs: CgroupFs) -> None:
        self.path = path
        self.root = root
        self.fs = fs
        self.warnings: list[str] = []
        self.destroy_timeout = 2.0  # seconds to retry EBUSY while the last processes leave

    # -- interface files ------------------------------------------------------------

    def _dirs(self) -> list[str]:
        """This cgroup's directories (on v1, one in each controller hierarchy)."""
        raise NotImplementedError

    def _path(self, name: str) -> str | None:
        """Where the interface file ``name`` would be (None: its controller is not there)."""
        raise NotImplementedError

    def _file(self, name: str) -> str | None:
        """The interface file ``name``, if the kernel offers it for this cgroup."""
        f = self._path(name)
        return f if f is not None and self.fs.exists(f) else None

    def _write(self, name: str, value: Any, *, what: str = "") -> bool:
        """Write a setting; one the kernel does not offer is discarded with a warning."""
        f = self._file(name)
        if f is None:
            self.warnings.append(f"Your kernel does not support {what or name}; the setting was discarded")
            return False
        try:
            self.fs.write(f, str(value))
        except OSError as e:
            raise CgroupError(f"failed to write {value} to {name}: {e.strerror or e}") from e
        return True

    def _read(self, name: str) -> str | None:
        f = self._path(name)
        if f is None:
            return None
        try:
            return self.fs.read(f)
        except OSError:
            return None

    def _mkdir(self, path: str) -> None:
        if not self.fs.isdir(path):
            try:
                self.fs.mkdir(path)
            except FileExistsError:
                pass
            except OSError as e:
                raise CgroupError(f"failed to create cgroup {path}: {e.strerror or e}") from e

    # -- lifecycle ----------------------------------------------------------------------

    def exists(self) -> bool:
        return any(self.fs.isdir(d) for d in self._dirs())

    def add(self, pid: int) -> None:
        for d in self._dirs():
            try:
                self.fs.write(os.path.join(d, "cgroup.procs"), str(pid))
            except OSError as e:
                raise CgroupError(f"failed to add pid {pid} to cgroup {d}: {e.strerror or e}") from e

    def destroy(self) -> None:
        for d in self._dirs():
            remove_tree(self.fs, d, self.destroy_timeout)

    # -- limits -----------------------------------------------------------------------

    def apply(self, resources: Mapping[str, Any]) -> None:
        r = resources or {}
        if r.get("memory"):
            self._memory(r["memory"])
        if r.get("cpu"):
            self._cpu(r["cpu"])
        pids = r.get("pids") or {}
        if pids.get("limit"):
            lim = int(pids["limit"])
            self._write("pids.max", lim if lim > 0 else "max", what="PIDs limit")
        if r.get("blockIO"):
            self._block_io(r["blockIO"])
        for h in r.get("hugepageLimits") or []:
            self._write(self.hugetlb_limit.format(h["pageSize"]), int(h["limit"]))
        self._network(r.get("network") or {})
        if r.get("devices") is not None:
            self._devices(r["devices"])
        if r.get("unified"):
            self._unified(r["unified"])

    def _memory(self, m: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _cpu(self, c: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _cpuset(self, c: Mapping[str, Any]) -> None:
        if c.get("cpus"):
            self._write("cpuset.cpus", c["cpus"], what="cpuset")
        if c.get("mems"):
            self._write("cpuset.mems", c["mems"], what="cpuset")

    def _block_io(self, b: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _network(self, net: Mapping[str, Any]) -> None:
        """net_cls/net_prio: v1 only (v2 has no such controllers; the section is passed over)."""

    def _devices(self, rules: list[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def _unified(self, values: Mapping[str, Any]) -> None:
        raise CgroupError("linux.resources.unified needs cgroup v2")

    # -- reading ------------------------------------------------------------------------

    def _pids_stats(self) -> dict[str, Any]:
        pids_max = self._read("pids.max")
        return {
            "current": parse_int(self._read("pids.current") or "0") or 0,
            "limit": None if pids_max is None else parse_int(pids_max),
            "peak": parse_int(self._read("pids.peak") or ""),
            "refused": parse_flat_keyed(self._read("pids.events") or "").get("max", 0),
        }


def blkio_stats(service: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``blkio`` part of :meth:`Manager.stats`, from per-device byte counts."""
    return {
        "read_bytes": sum(e["value"] for e in service if e["op"] == "read"),
        "write_bytes": sum(e["value"] for e in service if e["op"] == "write"),
        "service_bytes": service,
    }


# -- helpers shared by both versions ------------------------------------------------


def parse_flat_keyed(text: str) -> dict[str, int]:
    """"key value" lines (memory.stat, cpu.stat, memory.events, oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        k, _, v = line.strip().partition(" ")
        if k and v:
            try:
                out[k] = int(v.strip())
            except ValueError:
                continue
    return out


def parse_int(text: str, unlimited: int | None = None) -> int | None:
    t = text.strip()
    if t == "max":
        return unlimited
    try:
        return int(t)
    except ValueError:
        return None


def device_rule(rule: Mapping[str, Any]) -> str:
    """An OCI device cgroup rule in the v1 devices.allow/deny syntax."""
    typ = rule.get("type") or "a"
    if typ not in ("a", "b", "c"):
        raise InvalidArgument(f"invalid device type {typ!r}")
    if typ == "a":
        return "a"
    major = rule.get("major")
    minor = rule.get("minor")
    maj = "*" if major is None or major < 0 else str(major)
    mnr = "*" if minor is None or minor < 0 else str(minor)
    access = rule.get("access") or "rwm"
    if not access or set(access) - set("rwm"):
        raise InvalidArgument(f"invalid device access {access!r}")
    return f"{typ} {maj}:{mnr} {access}"


def remove_tree(fs: CgroupFs, path: str, timeout: float = 2.0) -> None:
    """rmdir a cgroup and its children, deepest first, retrying EBUSY briefly
    (the last processes of a killed container take a moment to leave)."""
    if not fs.isdir(path):
        return
    for name in fs.listdir(path):
        sub = os.path.join(path, name)
        if fs.isdir(sub):
            remove_tree(fs, sub, timeout)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fs.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise CgroupError(f"failed to remove cgroup {path}: {e.strerror or e}") from e
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def read_pids(fs: CgroupFs, path: str) -> list[int]:
    """Every process in the cgroup at ``path`` and below it."""
    out: list[int] = []
    if not fs.isdir(path):
        return out
    try:
        text = fs.read(os.path.join(path, "cgroup.procs"))
    except FileNotFoundError:
        return out
    out.extend(int(x) for x in text.split() if x.isdigit())
    for name in fs.listdir(path):
        sub = os.path.join(path, name)
        if fs.isdir(sub):
            out.extend(read_pids(fs, sub))
    return out


def wait_until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``check()`` until it returns True or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not check():
        if time.monotonic() >= deadline:
            raise CgroupError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
