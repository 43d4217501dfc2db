"""In-memory fake cgroup kernels (v1/hybrid and v2) with the kernel's rules.

They implement pallet.runtime.cgroups.CgroupFs: interface files appear when a
directory is made (v2: for the controllers its parent delegates), writes are
validated the way the kernel validates them (EINVAL, EBUSY, ENOSPC, ENOENT),
rmdir refuses a cgroup with children or processes, and cgroup.procs moves a
pid out of wherever it was.  Test code drives "kernel events" (an OOM kill,
a process exit) through methods.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re

V1_UNLIMITED = 9223372036854771712


def _err(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class FakeFsBase:
    def __init__(self) -> None:
        self.dirs: set[str] = set()
        self.files: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.procs: dict[str, set[int]] = {}  # cgroup dir -> pids
        self.writes: list[tuple[str, str]] = []
        self.device_programs: dict[str, bytes] = {}
        self._next_pid = 1000

    # -- CgroupFs ---------------------------------------------------------------

    def _res(self, path: str) -> str:
        path = posixpath.normpath(path)
        for link, target in self.links.items():
            if path == link or path.startswith(link + "/"):
                return target + path[len(link) :]
        return path

    def realpath(self, path: str) -> str:
        return self._res(path)

    def exists(self, path: str) -> bool:
        p = self._res(path)
        return p in self.dirs or p in self.files

    def isdir(self, path: str) -> bool:
        return self._res(path) in self.dirs

    def listdir(self, path: str) -> list[str]:
        p = self._res(path)
        if p not in self.dirs:
            raise _err(errno.ENOENT, path)
        names = {
            x[len(p) + 1 :].split("/")[0]
            for x in list(self.dirs) + list(self.files)
            if x.startswith(p + "/")
        }
        names |= {posixpath.basename(link) for link in self.links if posixpath.dirname(link) == p}
        return sorted(names)

    def read(self, path: str) -> str:
        p = self._res(path)
        if posixpath.basename(p) in ("cgroup.procs", "tasks"):
            d = posixpath.dirname(p)
            if d not in self.dirs:
                raise _err(errno.ENOENT, path)
            return "".join(f"{x}\n" for x in sorted(self.procs.get(d, ())))
        if p not in self.files:
            raise _err(errno.ENOENT, path)
        return self.files[p]

    def mkdir(self, path: str) -> None:
        p = self._res(path)
        if p in self.dirs or p in self.files:
            raise _err(errno.EEXIST, path)
        if posixpath.dirname(p) not in self.dirs:
            raise _err(errno.ENOENT, path)
        self.dirs.add(p)
        self.files[p + "/cgroup.procs"] = ""
        self.populate(p)

    def rmdir(self, path: str) -> None:
        p = self._res(path)
        if p not in self.dirs:
            raise _err(errno.ENOENT, path)
        if any(d.startswith(p + "/") for d in self.dirs) or self.procs.get(p):
            raise _err(errno.EBUSY, path)
        self.dirs.discard(p)
        for f in [f for f in self.files if f.startswith(p + "/")]:
            del self.files[f]
        self.procs.pop(p, None)

    def write(self, path: str, data: str) -> None:
        p = self._res(path)
        if p not in self.files:
            raise _err(errno.ENOENT, path)
        self.writes.append((p, data))
        d, name = posixpath.split(p)
        if name in ("cgroup.procs", "tasks"):
            self.move(d, int(data))
            return
        self.on_write(d, name, data.strip())

    def attach_device_filter(self, path: str, program: bytes) -> None:
        p = self._res(path)
        if p not in self.dirs:
            raise _err(errno.ENOENT, path)
        if not program or len(program) % 8:
            raise _err(errno.EINVAL, path)
        self.device_programs[p] = program  # one program per cgroup: a new one replaces it

    # -- kernel hooks -------------------------------------------------------------

    def populate(self, d: str) -> None:
        raise NotImplementedError

    def on_write(self, d: str, name: str, data: str) -> None:
        self.files[f"{d}/{name}"] = data

    def hierarchy_of(self, d: str) -> str:
        return d

    def move(self, d: str, pid: int) -> None:
        for cg, pids in self.procs.items():
            if self.hierarchy_of(cg) == self.hierarchy_of(d):
                pids.discard(pid)
        self.procs.setdefault(d, set()).add(pid)

    # -- test drivers ---------------------------------------------------------------

    def spawn(self) -> int:
        self._next_pid += 1
        return self._next_pid

    def exit(self, pid: int) -> None:
        for pids in self.procs.values():
            pids.discard(pid)


def _int_or_max(data: str, path: str, minimum: int = 0) -> str:
    if data == "max":
        return data
    try:
        v = int(data)
    except ValueError:
        raise _err(errno.EINVAL, path) from None
    if v < minimum:
        raise _err(errno.EINVAL, path)
    return str(v)


_CPULIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


class FakeCgroup2(FakeFsBase):
    """A cgroup2 mount at ``root`` whose root offers ``controllers``."""

    def __init__(self, root: str = "/sys/fs/cgroup", controllers: str = "cpuset cpu io memory pids") -> None:
        super().__init__()
        self.root = root
        self.dirs.add(root)
        self.files.update(
            {
                f"{root}/cgroup.controllers": controllers,
                f"{root}/cgroup.subtree_control": "",
                f"{root}/cgroup.procs": "",
                f"{root}/cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
            }
        )

    def _controller_files(self, c: str) -> dict[str, str]:
        return {
            "memory": {
                "memory.max": "max",
                "memory.swap.max": "max",
                "memory.low": "0",
                "memory.current": "0",
                "memory.peak": "0",
                "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
                "memory.stat": "anon 0\nfile 0\ninactive_file 0\n",
            },
            "cpu": {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0"},
            "pids": {"pids.max": "max", "pids.current": "0"},
            "io": {"io.max": "", "io.weight": "default 100", "io.stat": ""},
            "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-1"},
        }.get(c, {})

    def populate(self, d: str) -> None:
        parent = posixpath.dirname(d)
        delegated = self.files[f"{parent}/cgroup.subtree_control"].split()
        self.files.update(
            {
                f"{d}/cgroup.controllers": " ".join(delegated),
                f"{d}/cgroup.subtree_control": "",
                f"{d}/cgroup.events": "populated 0\nfrozen 0\n",
                f"{d}/cgroup.freeze": "0",
                f"{d}/cgroup.type": "domain",
                f"{d}/cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
            }
        )
        for c in delegated:
            for k, v in self._controller_files(c).items():
                self.files[f"{d}/{k}"] = v

    def move(self, d: str, pid: int) -> None:
        if d != self.root and self.files[f"{d}/cgroup.subtree_control"].strip():
            raise _err(errno.EBUSY, f"{d}/cgroup.procs")  # no internal processes
        super().move(d, pid)

    def on_write(self, d: str, name: str, data: str) -> None:
        path = f"{d}/{name}"
        readonly = ("cgroup.controllers", "cgroup.events", "memory.current", "memory.events", "memory.stat", "cpu.stat", "pids.current", "io.stat", "memory.peak")
        if name in readonly:
            raise _err(errno.EACCES, path)
        if name == "cgroup.subtree_control":
            enabled = self.files[path].split()
            available = self.files[f"{d}/cgroup.controllers"].split()
            for tok in data.split():
                c = tok[1:]
                if tok[0] not in "+-" or c not in available:
                    raise _err(errno.ENOENT if tok[0] in "+-" else errno.EINVAL, path)
                if d != self.root and self.procs.get(d):
                    raise _err(errno.EBUSY, path)
                if tok[0] == "+" and c not in enabled:
                    enabled.append(c)
                    for child in [x for x in self.dirs if posixpath.dirname(x) == d]:
                        for k, v in self._controller_files(c).items():
                            self.files[f"{child}/{k}"] = v
                        self.files[f"{child}/cgroup.controllers"] = " ".join(enabled)
                elif tok[0] == "-" and c in enabled:
                    enabled.remove(c)
            self.files[path] = " ".join(enabled)
            return
        if name == "cgroup.freeze":
            if data not in ("0", "1"):
                raise _err(errno.EINVAL, path)
            self.files[path] = data
            self.files[f"{d}/cgroup.events"] = f"populated {int(bool(self.procs.get(d)))}\nfrozen {data}\n"
            return
        if name in ("memory.max", "memory.swap.max", "memory.low", "pids.max", "cpu.max.burst"):
            self.files[path] = _int_or_max(data, path)
            return
        if name == "cpu.weight":
            if not data.isdigit() or not 1 <= int(data) <= 10000:
                raise _err(errno.ERANGE if data.isdigit() else errno.EINVAL, path)
        elif name == "cpu.max":
            parts = data.split()
            period = int(parts[1]) if len(parts) > 1 else int(self.files[path].split()[1])
            if not 1000 <= period <= 1_000_000:
                raise _err(errno.EINVAL, path)
            if parts[0] != "max" and (not parts[0].isdigit() or int(parts[0]) < 1000):
                raise _err(errno.EINVAL, path)
            data = f"{parts[0]} {period}"
        elif name in ("cpuset.cpus", "cpuset.mems"):
            if data and not _CPULIST.match(data):
                raise _err(errno.EINVAL, path)
        elif name == "io.max":
            dev, *kvs = data.split()
            lines = {ln.split()[0]: ln for ln in self.files[path].splitlines() if ln}
            cur = dict(kv.split("=") for kv in lines.get(dev, dev).split()[1:])
            for kv in kvs:
                k, _, v = kv.partition("=")
                if k not in ("rbps", "wbps", "riops", "wiops"):
                    raise _err(errno.EINVAL, path)
                cur[k] = v
            lines[dev] = dev + "".join(f" {k}={cur[k]}" for k in ("rbps", "wbps", "riops", "wiops") if k in cur)
            data = "\n".join(lines.values())
        self.files[path] = data

    # -- test drivers -------------------------------------------------------------

    def oom_kill(self, path: str) -> None:
        d = self.root + path
        ev = self.files[f"{d}/memory.events"].replace("oom_kill 0", "oom_kill 1").replace("oom 0", "oom 1")
        self.files[f"{d}/memory.events"] = ev


class FakeCgroup1(FakeFsBase):
    """A hybrid host as Debian's systemd lays it out: cpu,cpuacct co-mounted
    behind symlinks, named systemd hierarchy, empty v2 tree at ``unified``."""

    CONTROLLERS = ("cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd")

    def __init__(self, root: str = "/sys/fs/cgroup", hybrid: bool = True, memsw: bool = True) -> None:
        super().__init__()
        self.root = root
        self.memsw = memsw
        self.dirs.add(root)
        for c in self.CONTROLLERS:
            d = f"{root}/{c}"
            self.dirs.add(d)
            self.files[f"{d}/cgroup.procs"] = ""
        self.links[f"{root}/cpu"] = f"{root}/cpu,cpuacct"
        self.links[f"{root}/cpuacct"] = f"{root}/cpu,cpuacct"
        self.files[f"{root}/cpuset/cpuset.cpus"] = "0-1"
        self.files[f"{root}/cpuset/cpuset.mems"] = "0"
        self.files[f"{root}/devices/devices.list"] = "a *:* rwm"
        if hybrid:
            self.dirs.add(f"{root}/unified")
            self.files[f"{root}/unified/cgroup.controllers"] = ""

    def hierarchy_of(self, d: str) -> str:
        return d[len(self.root) + 1 :].split("/")[0]

    def populate(self, d: str) -> None:
        h = self.hierarchy_of(d)
        f: dict[str, str] = {"tasks": "", "notify_on_release": "0"}
        if h == "memory":
            f.update(
                {
                    "memory.limit_in_bytes": str(V1_UNLIMITED),
                    "memory.soft_limit_in_bytes": str(V1_UNLIMITED),
                    "memory.usage_in_bytes": "0",
                    "memory.max_usage_in_bytes": "0",
                    "memory.failcnt": "0",
                    "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                    "memory.stat": "cache 0\nrss 0\ntotal_inactive_file 0\n",
                    "memory.swappiness": "60",
                }
            )
            if self.memsw:
                f["memory.memsw.limit_in_bytes"] = str(V1_UNLIMITED)
        elif h == "cpu,cpuacct":
            f.update(
                {
                    "cpu.shares": "1024",
                    "cpu.cfs_quota_us": "-1",
                    "cpu.cfs_period_us": "100000",
                    "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
                    "cpuacct.usage": "0",
                    "cpuacct.usage_percpu": "0 0 ",
                    "cpuacct.stat": "user 0\nsystem 0\n",
                }
            )
        elif h == "cpuset":
            f.update({"cpuset.cpus": "", "cpuset.mems": ""})
        elif h == "devices":
            parent = posixpath.dirname(d)
            f.update({"devices.allow": "", "devices.deny": "", "devices.list": self.files[f"{parent}/devices.list"]})
        elif h == "freezer":
            f["freezer.state"] = "THAWED"
        elif h == "blkio":
            f.update({"blkio.bfq.weight": "100", "blkio.throttle.read_bps_device": "", "blkio.throttle.io_service_bytes_recursive": "Total 0\n"})
        elif h == "pids":
            f.update({"pids.max": "max", "pids.current": "0"})
        for k, v in f.items():
            self.files[f"{d}/{k}"] = v

    def move(self, d: str, pid: int) -> None:
        if self.hierarchy_of(d) == "cpuset" and not (
            self.files.get(f"{d}/cpuset.cpus", "x").strip() and self.files.get(f"{d}/cpuset.mems", "x").strip()
        ):
            raise _err(errno.ENOSPC, f"{d}/cgroup.procs")
        super().move(d, pid)

    def on_write(self, d: str, name: str, data: str) -> None:
        path = f"{d}/{name}"
        if name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes"):
            try:
                v = int(data)
            except ValueError:
                raise _err(errno.EINVAL, path) from None
            v = V1_UNLIMITED if v == -1 else v
            if name == "memory.limit_in_bytes" and self.memsw and v > int(self.files[f"{d}/memory.memsw.limit_in_bytes"]):
                raise _err(errno.EINVAL, path)
            if name == "memory.memsw.limit_in_bytes" and v < int(self.files[f"{d}/memory.limit_in_bytes"]):
                raise _err(errno.EINVAL, path)
            self.files[path] = str(v)
        elif name == "memory.oom_control":
            if data not in ("0", "1"):
                raise _err(errno.EINVAL, path)
            lines = self.files[path].replace(
                "oom_kill_disable 0", "oom_kill_disable X").replace("oom_kill_disable 1", "oom_kill_disable X")
            self.files[path] = lines.replace("oom_kill_disable X", f"oom_kill_disable {data}")
        elif name == "cpu.cfs_quota_us":
            if int(data) != -1 and int(data) < 1000:
                raise _err(errno.EINVAL, path)
            self.files[path] = data
        elif name == "cpu.cfs_period_us":
            if not 1000 <= int(data) <= 1_000_000:
                raise _err(errno.EINVAL, path)
            self.files[path] = data
        elif name == "cpu.shares":
            self.files[path] = str(max(2, int(data)))
        elif name == "pids.max":
            self.files[path] = _int_or_max(data, path)
        elif name == "freezer.state":
            if data not in ("FROZEN", "THAWED"):
                raise _err(errno.EINVAL, path)
            self.files[path] = data
        elif name in ("devices.allow", "devices.deny"):
            rules = [r for r in self.files[f"{d}/devices.list"].splitlines() if r]
            if data == "a":
                rules = ["a *:* rwm"] if name == "devices.allow" else []
            elif name == "devices.allow":
                rules.append(data)
            else:
                rules = [r for r in rules if r != data]
            self.files[f"{d}/devices.list"] = "\n".join(rules)
        elif name in ("cpuset.cpus", "cpuset.mems"):
            if data and not _CPULIST.match(data):
                raise _err(errno.EINVAL, path)
            self.files[path] = data
        elif name in ("memory.usage_in_bytes", "memory.stat", "cpuacct.usage", "pids.current", "devices.list"):
            raise _err(errno.EACCES, path)
        else:
            self.files[path] = data

    def oom_kill(self, path: str) -> None:
        f = f"{self.root}/memory{path}/memory.oom_control"
        self.files[f] = self.files[f].replace("oom_kill 0", "oom_kill 1")
