"""cgroup v2: one unified hierarchy, controllers delegated through subtree_control."""

from __future__ import annotations

import os

from pallet.runtime.cgroups import (
    V2_CONTROLLERS,
    CgroupError,
    CgroupFs,
    ManagerBase,
    blkio_stats,
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


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000] (the mapping runc and crun use)."""
    shares = max(2, min(262144, int(shares)))
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000]."""
    weight = max(10, min(1000, int(weight)))
    return 1 + ((weight - 10) * 9999) // 990


class V2Manager(ManagerBase):
    """A cgroup in the unified hierarchy mounted at ``root``."""

    version: Version = "v2"

    def __init__(self, path: str, *, root: str, fs: CgroupFs) -> None:
        super().__init__(path, root=root, fs=fs)
        self.dir = root.rstrip("/") + path

    def _dirs(self) -> list[str]:
        return [self.dir]

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- lifecycle --------------------------------------------------------------

    def create(self) -> None:
        cur = self.root.rstrip("/")
        for comp in self.path.strip("/").split("/"):
            self._delegate(cur)
            cur = os.path.join(cur, comp)
            self._mkdir(cur)

    def _delegate(self, parent: str) -> None:
        """Enable in ``parent``'s children every controller we use that it has."""
        try:
            available = set(self.fs.read(os.path.join(parent, "cgroup.controllers")).split())
            enabled = set(self.fs.read(os.path.join(parent, "cgroup.subtree_control")).split())
        except OSError as e:
            raise CgroupError(f"cannot read controllers of cgroup {parent}: {e.strerror or e}") from e
        for c in V2_CONTROLLERS:
            if c in available and c not in enabled:
                try:
                    self.fs.write(os.path.join(parent, "cgroup.subtree_control"), f"+{c}")
                except OSError as e:
                    # a parent holding processes cannot delegate (no internal processes rule)
                    self.warnings.append(f"cannot enable the {c} controller in {parent}: {e.strerror or e}")

    def pids(self) -> list[int]:
        return sorted(set(read_pids(self.fs, self.dir)))

    # -- freezer ------------------------------------------------------------------

    def freeze(self) -> None:
        self._freeze(1)

    def thaw(self) -> None:
        self._freeze(0)

    def frozen(self) -> bool:
        return (self._read("cgroup.freeze") or "0").strip() == "1"

    def _freeze(self, value: int) -> None:
        if self._file("cgroup.freeze") is None:
            raise CgroupError("the cgroup freezer is not available (needs Linux 5.2)")
        self._write("cgroup.freeze", value)
        wait_until(
            lambda: parse_flat_keyed(self._read("cgroup.events") or "").get("frozen") == value,
            f"cgroup {self.path} to become {'frozen' if value else 'thawed'}",
        )

    # -- limits -------------------------------------------------------------------

    def _unified(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if "/" in key or key.startswith("."):
                raise CgroupError(f"invalid unified resource {key!r}")
            self._write(key, value)

    def _memory(self, m: Mapping[str, Any]) -> None:
        limit = m.get("limit")
        swap = m.get("swap")
        if limit is not None and limit != 0:
            self._write("memory.max", int(limit) if limit > 0 else "max", what="memory limit")
        if swap is not None and swap != 0:
            if swap < 0:
                value: Any = "max"
            else:
                mem = limit if limit else parse_int(self._read("memory.max") or "")
                if mem is None or mem < 0:
                    raise CgroupError("a swap limit needs a memory limit")
                if swap < mem:
                    raise CgroupError(
                        "Minimum memoryswap limit should be larger than memory limit, see usage"
                    )
                value = int(swap) - int(mem)
            self._write("memory.swap.max", value, what="swap limit")
        if m.get("reservation") is not None and m["reservation"] != 0:
            res = int(m["reservation"])
            self._write("memory.low", res if res > 0 else 0, what="memory reservation")
        if m.get("disableOOMKiller"):
            self.warnings.append("cgroup v2 cannot disable the OOM killer; the setting was discarded")
        if m.get("swappiness") not in (None, -1):
            self.warnings.append("cgroup v2 has no memory swappiness; the setting was discarded")

    def _cpu(self, c: Mapping[str, Any]) -> None:
        if c.get("shares"):
            self._write("cpu.weight", shares_to_weight(int(c["shares"])), what="CPU shares")
        quota = c.get("quota")
        period = c.get("period")
        if (quota is not None and quota != 0) or period:
            cur = (self._read("cpu.max") or "max 100000").split()
            q = cur[0] if quota is None or quota == 0 else (str(int(quota)) if quota > 0 else "max")
            p = str(int(period)) if period else (cur[1] if len(cur) > 1 else "100000")
            self._write("cpu.max", f"{q} {p}", what="CPU CFS scheduler")
        if c.get("burst") is not None:
            self._write("cpu.max.burst", int(c["burst"]), what="CPU burst")
        if c.get("idle") is not None:
            self._write("cpu.idle", int(c["idle"]), what="SCHED_IDLE")
        if c.get("realtimeRuntime") or c.get("realtimePeriod"):
            self.warnings.append("cgroup v2 has no realtime CPU limits; the setting was discarded")
        self._cpuset(c)

    def _block_io(self, b: Mapping[str, Any]) -> None:
        if b.get("weight"):
            if self._file("io.bfq.weight"):
                self._write("io.bfq.weight", int(b["weight"]))
            else:
                self._write("io.weight", blkio_weight_to_io_weight(int(b["weight"])), what="Block I/O weight")
        for d in b.get("weightDevice") or []:
            self._write("io.weight", f"{d['major']}:{d['minor']} {blkio_weight_to_io_weight(int(d['weight']))}")
        for key, field in (
            ("throttleReadBpsDevice", "rbps"),
            ("throttleWriteBpsDevice", "wbps"),
            ("throttleReadIOPSDevice", "riops"),
            ("throttleWriteIOPSDevice", "wiops"),
        ):
            for d in b.get(key) or []:
                rate = int(d["rate"])
                self._write("io.max", f"{d['major']}:{d['minor']} {field}={rate if rate > 0 else 'max'}", what="io.max")

    def _devices(self, rules: list[Mapping[str, Any]]) -> None:
        # v2 has no devices.allow/deny: an eBPF program attached to the cgroup decides
        if not rules:
            return
        from pallet.runtime.cgroups_devices import program

        prog = program(rules)
        try:
            self.fs.attach_device_filter(self.dir, prog)
        except OSError as e:
            raise CgroupError(f"failed to attach the device filter to {self.dir}: {e.strerror or e}") from e

    # -- reading ------------------------------------------------------------------

    def oom_killed(self) -> bool:
        return parse_flat_keyed(self._read("memory.events") or "").get("oom_kill", 0) > 0

    def stats(self) -> dict[str, Any]:
        cpu = parse_flat_keyed(self._read("cpu.stat") or "")
        mstat = parse_flat_keyed(self._read("memory.stat") or "")
        limit = parse_int(self._read("memory.max") or "max")
        service: list[dict[str, Any]] = []
        for line in (self._read("io.stat") or "").splitlines():
            dev, *fields = line.split()
            if ":" not in dev:
                continue
            major, _, minor = dev.partition(":")
            kv = dict(f.split("=", 1) for f in fields if "=" in f)
            for key, op in (("rbytes", "read"), ("wbytes", "write")):
                if key in kv:
                    service.append({"major": int(major), "minor": int(minor), "op": op, "value": int(kv[key])})
        return {
            "cpu": {
                "usage_total": cpu.get("usage_usec", 0) * 1000,
                "usage_user": cpu.get("user_usec", 0) * 1000,
                "usage_system": cpu.get("system_usec", 0) * 1000,
                "percpu": [],
                "throttling": {
                    "periods": cpu.get("nr_periods", 0),
                    "throttled_periods": cpu.get("nr_throttled", 0),
                    "throttled_time": cpu.get("throttled_usec", 0) * 1000,
                },
            },
            "memory": {
                "usage": parse_int(self._read("memory.current") or "0") or 0,
                "max_usage": parse_int(self._read("memory.peak") or "0") or 0,
                "limit": limit,
                "failcnt": parse_flat_keyed(self._read("memory.events") or "").get("max", 0),
                "inactive_file": mstat.get("inactive_file", 0),
                "stats": mstat,
            },
            "pids": self._pids_stats(),
            "blkio": blkio_stats(service),
        }
