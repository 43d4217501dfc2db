"""cgroup v1 (and the v1 half of a hybrid host): one directory per controller."""

from __future__ import annotations

import errno
import os

from pallet.runtime.cgroups import (
    V1_CONTROLLERS,
    CgroupError,
    CgroupFs,
    ManagerBase,
    blkio_stats,
    device_rule,
    parse_flat_keyed,
    parse_int,
    read_pids,
    wait_until,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pallet.runtime.cgroups import Version

# v1 spells "no limit" as the largest page-aligned int64
V1_UNLIMITED = 9223372036854771712
_USER_HZ = 100


class V1Manager(ManagerBase):
    """A cgroup spread over the v1 controller hierarchies mounted under ``root``.

    An interface file is named as on v2 (``memory.limit_in_bytes``); the part
    before the first dot is the controller whose hierarchy holds it.
    """

    hugetlb_limit = "hugetlb.{}.limit_in_bytes"

    def __init__(self, path: str, *, root: str, fs: CgroupFs, version: Version = "v1") -> None:
        super().__init__(path, root=root, fs=fs)
        self.version = version
        self.mounts = self._mounts()
        # controller -> this cgroup's directory in that controller's hierarchy
        self.dirs = {c: m + path for c, m in self.mounts.items()}

    # -- discovery --------------------------------------------------------------

    def _mounts(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            names = sorted(self.fs.listdir(self.root))
        except FileNotFoundError:
            raise CgroupError(f"no cgroup hierarchy at {self.root}") from None
        for name in names:
            full = os.path.join(self.root, name)
            if name == "unified" or not self.fs.isdir(full):
                continue
            real = self.fs.realpath(full)
            for c in name.split(","):
                if c in V1_CONTROLLERS and c not in out:
                    out[c] = real
        return out

    def _dirs(self) -> list[str]:
        return sorted(set(self.dirs.values()))

    def _path(self, name: str) -> str | None:
        d = self.dirs.get(name.partition(".")[0])
        return None if d is None else os.path.join(d, name)

    # -- lifecycle --------------------------------------------------------------

    def create(self) -> None:
        for controller, mount in self.mounts.items():
            cur = mount
            for comp in self.path.strip("/").split("/"):
                parent, cur = cur, os.path.join(cur, comp)
                self._mkdir(cur)
                if controller == "cpuset":
                    self._inherit_cpuset(parent, cur)

    def _inherit_cpuset(self, parent: str, child: str) -> None:
        # A new v1 cpuset starts with no cpus and no mems and takes no task.
        for name in ("cpuset.cpus", "cpuset.mems"):
            f = os.path.join(child, name)
            if self.fs.exists(f) and not self.fs.read(f).strip():
                self.fs.write(f, self.fs.read(os.path.join(parent, name)).strip())

    def pids(self) -> list[int]:
        for c in ("pids", "memory", "freezer", "cpu", "devices"):
            if c in self.dirs:
                return sorted(set(read_pids(self.fs, self.dirs[c])))
        d = self._dirs()
        return sorted(set(read_pids(self.fs, d[0]))) if d else []

    # -- freezer ------------------------------------------------------------------

    def freeze(self) -> None:
        self._freezer("FROZEN")

    def thaw(self) -> None:
        self._freezer("THAWED")

    def frozen(self) -> bool:
        return (self._read("freezer.state") or "").strip() in ("FROZEN", "FREEZING")

    def _freezer(self, state: str) -> None:
        if self._file("freezer.state") is None:
            raise CgroupError("the freezer cgroup is not available")
        self._write("freezer.state", state)

        def done() -> bool:
            cur = (self._read("freezer.state") or "").strip()
            if cur == "FREEZING":
                self._write("freezer.state", state)  # nudge, as the kernel may stall
            return cur == state

        wait_until(done, f"cgroup {self.path} to become {state}")

    # -- limits -------------------------------------------------------------------

    def _network(self, net: Mapping[str, Any]) -> None:
        if net.get("classID") is not None:
            self._write("net_cls.classid", int(net["classID"]))
        for p in net.get("priorities") or []:
            self._write("net_prio.ifpriomap", f"{p['name']} {int(p['priority'])}")

    def _memory(self, m: Mapping[str, Any]) -> None:
        limit = m.get("limit")
        swap = m.get("swap")
        if limit == -1 and swap in (None, 0):
            swap = -1  # "unlimited memory" means unlimited swap too
        writes: list[tuple[str, int]] = []
        if limit is not None and limit != 0:
            writes.append(("memory.limit_in_bytes", int(limit)))
        if swap is not None and swap != 0:
            if self._file("memory.memsw.limit_in_bytes") is None:
                self.warnings.append(
                    "Your kernel does not support swap limit capabilities or the cgroup is not "
                    "mounted. Memory limited without swap."
                )
            else:
                writes.append(("memory.memsw.limit_in_bytes", int(swap)))
        if len(writes) == 2:
            # the kernel keeps limit <= memsw at every step: raise memsw first when growing
            cur = parse_int(self._read("memory.limit_in_bytes") or "") or 0
            if swap == -1 or cur < int(swap or 0):
                writes.reverse()
        self._write_in_order(writes)
        if m.get("reservation") is not None and m["reservation"] != 0:
            self._write("memory.soft_limit_in_bytes", int(m["reservation"]))
        if m.get("disableOOMKiller"):
            self._write("memory.oom_control", 1, what="OOM killer disabling")
        elif m.get("disableOOMKiller") is False and self._file("memory.oom_control"):
            self._write("memory.oom_control", 0)
        if m.get("swappiness") is not None and 0 <= int(m["swappiness"]) <= 100:
            self._write("memory.swappiness", int(m["swappiness"]))

    def _write_in_order(self, writes: list[tuple[str, int]]) -> None:
        try:
            for name, value in writes:
                self._write(name, value)
        except CgroupError as e:
            if len(writes) < 2 or not isinstance(e.__cause__, OSError) or e.__cause__.errno != errno.EINVAL:
                raise
            for name, value in reversed(writes):
                self._write(name, value)

    def _cpu(self, c: Mapping[str, Any]) -> None:
        if c.get("shares"):
            self._write("cpu.shares", int(c["shares"]), what="CPU shares")
        if c.get("period"):
            self._write("cpu.cfs_period_us", int(c["period"]), what="CPU CFS scheduler")
        if c.get("quota") is not None and c["quota"] != 0:
            q = int(c["quota"])
            self._write("cpu.cfs_quota_us", q if q > 0 else -1, what="CPU CFS scheduler")
        if c.get("burst") is not None:
            self._write("cpu.cfs_burst_us", int(c["burst"]), what="CPU burst")
        if c.get("realtimePeriod"):
            self._write("cpu.rt_period_us", int(c["realtimePeriod"]), what="realtime period")
        if c.get("realtimeRuntime"):
            self._write("cpu.rt_runtime_us", int(c["realtimeRuntime"]), what="realtime runtime")
        if c.get("idle") is not None:
            self._write("cpu.idle", int(c["idle"]), what="SCHED_IDLE")
        self._cpuset(c)

    def _block_io(self, b: Mapping[str, Any]) -> None:
        if b.get("weight"):
            name = "blkio.weight" if self._file("blkio.weight") else "blkio.bfq.weight"
            self._write(name, int(b["weight"]), what="Block I/O weight")
        if b.get("leafWeight"):
            self._write("blkio.leaf_weight", int(b["leafWeight"]), what="Block I/O leaf weight")
        for d in b.get("weightDevice") or []:
            name = "blkio.weight_device" if self._file("blkio.weight_device") else "blkio.bfq.weight_device"
            self._write(name, f"{d['major']}:{d['minor']} {int(d['weight'])}", what="Block I/O weight_device")
        for key, name in (
            ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
            ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
            ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
            ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
        ):
            for d in b.get(key) or []:
                self._write(name, f"{d['major']}:{d['minor']} {int(d['rate'])}", what=name)

    def _devices(self, rules: list[Mapping[str, Any]]) -> None:
        if "devices" not in self.dirs:
            self.warnings.append("the devices cgroup is not mounted; device rules discarded")
            return
        for rule in rules:
            name = "devices.allow" if rule.get("allow") else "devices.deny"
            self._write(name, device_rule(rule))

    # -- reading ------------------------------------------------------------------

    def oom_killed(self) -> bool:
        text = self._read("memory.oom_control")
        return bool(text) and parse_flat_keyed(text or "").get("oom_kill", 0) > 0

    def stats(self) -> dict[str, Any]:
        def num(f: str) -> int | None:
            t = self._read(f)
            return None if t is None else parse_int(t)

        percpu = [int(x) for x in (self._read("cpuacct.usage_percpu") or "").split()]
        ticks = parse_flat_keyed(self._read("cpuacct.stat") or "")
        throttle = parse_flat_keyed(self._read("cpu.stat") or "")
        mstat = parse_flat_keyed(self._read("memory.stat") or "")
        limit = num("memory.limit_in_bytes")
        service = _blkio_entries(self._read("blkio.throttle.io_service_bytes_recursive") or "")
        if not service:
            service = _blkio_entries(self._read("blkio.io_service_bytes_recursive") or "")
        return {
            "cpu": {
                "usage_total": num("cpuacct.usage") or 0,
                "usage_user": ticks.get("user", 0) * 1_000_000_000 // _USER_HZ,
                "usage_system": ticks.get("system", 0) * 1_000_000_000 // _USER_HZ,
                "percpu": percpu,
                "throttling": {
                    "periods": throttle.get("nr_periods", 0),
                    "throttled_periods": throttle.get("nr_throttled", 0),
                    "throttled_time": throttle.get("throttled_time", 0),
                },
            },
            "memory": {
                "usage": num("memory.usage_in_bytes") or 0,
                "max_usage": num("memory.max_usage_in_bytes") or 0,
                "limit": None if limit is None or limit >= V1_UNLIMITED else limit,
                "failcnt": num("memory.failcnt") or 0,
                "inactive_file": mstat.get("total_inactive_file", mstat.get("inactive_file", 0)),
                "stats": mstat,
            },
            "pids": self._pids_stats(),
            "blkio": blkio_stats(service),
        }


def _blkio_entries(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        out.append({"major": int(major), "minor": int(minor), "op": parts[1].lower(), "value": int(parts[2])})
    return out
