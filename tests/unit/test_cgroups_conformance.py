"""One conformance suite for every cgroup Manager.

Here it runs against the fake v1 (hybrid) and v2 kernels; the integration tier
runs the very same checks (CHECKS) against the host's real v1 controllers and
its real (controller-less) v2 tree.  A backend lists the features it can
exercise; a check needing a missing one is skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from pallet.runtime import cgroups, cgroups_devices
from pallet.runtime.cgroups import CgroupError, Manager
from tests.unit.cgroups_fake import FakeCgroup1, FakeCgroup2

MB = 1 << 20


@dataclass
class Backend:
    name: str
    root: str
    prefix: str  # the test's parent cgroup, e.g. /pallet-test-psc-1a2b
    spawn: Callable[[], int]
    exit: Callable[[int], None]
    features: set[str]
    fs: cgroups.CgroupFs | None = None
    oom: Callable[[Manager], None] | None = None
    is_frozen: Callable[[Manager, int], bool] | None = None
    # may a process of the cgroup read char device major:minor? (devices feature)
    can_read: Callable[[Manager, int, int], bool] | None = None
    version: str = "v1"
    destroy_timeout: float = 2.0
    n: list[int] = field(default_factory=lambda: [0])

    def manager(self, leaf: str = "") -> Manager:
        self.n[0] += 1
        m = cgroups.manager(f"{self.prefix}/{leaf or f'c{self.n[0]}'}", root=self.root, fs=self.fs)
        m.destroy_timeout = self.destroy_timeout  # type: ignore[attr-defined]
        return m

    def need(self, *features: str) -> None:
        missing = set(features) - self.features
        if missing:
            pytest.skip(f"{self.name} cannot exercise {', '.join(sorted(missing))}")


def _file(m: Manager, controller: str, name: str) -> str:
    """Read one raw interface file of ``m`` (layout differs between versions)."""
    if m.version == "v2":
        path = os.path.join(m.dir, name)  # type: ignore[attr-defined]
    else:
        path = os.path.join(m.dirs[controller], name)  # type: ignore[attr-defined]
    return m.fs.read(path).strip()  # type: ignore[attr-defined]


def _cpu_max(m: Manager) -> tuple[str, str]:
    if m.version == "v2":
        q, p = _file(m, "cpu", "cpu.max").split()
        return q, p
    return _file(m, "cpu", "cpu.cfs_quota_us"), _file(m, "cpu", "cpu.cfs_period_us")


# -- the checks -------------------------------------------------------------------


def check_detect(b: Backend) -> None:
    v = cgroups.detect(b.root, fs=b.fs)
    assert v == b.version
    assert b.manager().version == v


def check_create_destroy(b: Backend) -> None:
    m = b.manager()
    assert not m.exists()
    m.create()
    assert m.exists()
    m.create()  # idempotent
    m.destroy()
    assert not m.exists()
    m.destroy()  # idempotent


def check_add_pids(b: Backend) -> None:
    m = b.manager()
    m.create()
    pid = b.spawn()
    try:
        m.add(pid)
        assert m.pids() == [pid]
    finally:
        b.exit(pid)
    m.destroy()
    assert not m.exists()


def check_destroy_busy(b: Backend) -> None:
    m = b.manager()
    m.create()
    pid = b.spawn()
    m.add(pid)
    try:
        with pytest.raises(CgroupError):
            m.destroy()  # a live process keeps it busy
        assert m.exists()
    finally:
        b.exit(pid)
    m.destroy()
    assert not m.exists()


def check_nested_children_removed(b: Backend) -> None:
    m = b.manager()
    m.create()
    inner = cgroups.manager(m.path + "/inner", root=b.root, fs=b.fs)
    inner.create()
    m.destroy()
    assert not m.exists() and not inner.exists()


def check_memory_limits(b: Backend) -> None:
    b.need("memory")
    m = b.manager()
    m.create()
    try:
        m.apply({"memory": {"limit": 64 * MB, "swap": 128 * MB, "reservation": 32 * MB}})
        assert m.stats()["memory"]["limit"] == 64 * MB
        # shrink both, then grow both: the write order must satisfy limit <= memsw
        m.apply({"memory": {"limit": 32 * MB, "swap": 32 * MB}})
        assert m.stats()["memory"]["limit"] == 32 * MB
        m.apply({"memory": {"limit": 256 * MB, "swap": 512 * MB}})
        assert m.stats()["memory"]["limit"] == 256 * MB
        if m.version == "v2":
            assert _file(m, "memory", "memory.swap.max") == str(256 * MB)
            assert _file(m, "memory", "memory.low") == str(32 * MB)
        else:
            assert _file(m, "memory", "memory.memsw.limit_in_bytes") == str(512 * MB)
            assert _file(m, "memory", "memory.soft_limit_in_bytes") == str(32 * MB)
        m.apply({"memory": {"limit": -1, "swap": -1}})
        assert m.stats()["memory"]["limit"] is None
    finally:
        m.destroy()


def check_cpu_limits(b: Backend) -> None:
    b.need("cpu")
    m = b.manager()
    m.create()
    try:
        m.apply({"cpu": {"shares": 512, "quota": 50000, "period": 100000}})
        assert _cpu_max(m) == ("50000", "100000")
        if m.version == "v2":
            assert _file(m, "cpu", "cpu.weight") == "20"
        else:
            assert _file(m, "cpu", "cpu.shares") == "512"
        m.apply({"cpu": {"quota": 150000, "period": 50000}})
        assert _cpu_max(m) == ("150000", "50000")
        m.apply({"cpu": {"quota": -1}})
        assert _cpu_max(m)[0] in ("-1", "max")
    finally:
        m.destroy()


def check_cpuset(b: Backend) -> None:
    b.need("cpuset")
    m = b.manager()
    m.create()
    pid = b.spawn()
    try:
        m.apply({"cpu": {"cpus": "0", "mems": "0"}})
        m.add(pid)  # v1: the new cpuset inherited cpus/mems, so it takes a task
        assert _file(m, "cpuset", "cpuset.cpus") == "0"
    finally:
        b.exit(pid)
        m.destroy()


def check_pids_limit(b: Backend) -> None:
    b.need("pids")
    m = b.manager()
    m.create()
    try:
        m.apply({"pids": {"limit": 50}})
        assert m.stats()["pids"]["limit"] == 50
        m.apply({"pids": {"limit": -1}})
        assert m.stats()["pids"]["limit"] is None
    finally:
        m.destroy()


def check_invalid_value_is_an_error(b: Backend) -> None:
    b.need("cpu")
    m = b.manager()
    m.create()
    try:
        with pytest.raises(CgroupError, match="cpu"):
            m.apply({"cpu": {"quota": 10, "period": 100000}})  # below the kernel's 1 ms floor
    finally:
        m.destroy()


def check_missing_controller_warns(b: Backend) -> None:
    m = b.manager()
    m.create()
    try:
        m.apply({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})
        assert any("hugetlb" in w for w in m.warnings)
    finally:
        m.destroy()


def check_freeze_thaw(b: Backend) -> None:
    b.need("freezer")
    m = b.manager()
    m.create()
    pid = b.spawn()
    try:
        m.add(pid)
        assert not m.frozen()
        m.freeze()
        assert m.frozen()
        if b.is_frozen:
            assert b.is_frozen(m, pid)
        m.thaw()
        assert not m.frozen()
        if b.is_frozen:
            assert not b.is_frozen(m, pid)
    finally:
        b.exit(pid)
        m.destroy()


def check_devices(b: Backend) -> None:
    b.need("devices")
    assert b.can_read is not None
    m = b.manager()
    m.create()
    try:
        assert b.can_read(m, 1, 5), "/dev/zero unreadable before any rule"
        m.apply(
            {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
                    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "r"},  # full, read only
                    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                ]
            }
        )
        assert b.can_read(m, 1, 3), "/dev/null denied"
        assert b.can_read(m, 1, 7), "/dev/full denied"
        assert not b.can_read(m, 1, 5), "/dev/zero allowed"
        if m.version == "v2":
            # the filter honours order: a later rule overrides an earlier one, even one
            # that punches a hole in a wildcard (v1's exception list cannot express that)
            m.apply({"devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "access": "rwm"},
                                 {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "r"}]})
            assert b.can_read(m, 1, 5) and not b.can_read(m, 1, 3)
    finally:
        m.destroy()


def check_oom(b: Backend) -> None:
    b.need("memory", "oom")
    assert b.oom is not None
    m = b.manager()
    m.create()
    try:
        assert not m.oom_killed()
        b.oom(m)
        assert m.oom_killed()
    finally:
        m.destroy()


def check_stats_shape(b: Backend) -> None:
    m = b.manager()
    m.create()
    try:
        s = m.stats()
        assert set(s) == {"cpu", "memory", "pids", "blkio"}
        assert isinstance(s["cpu"]["usage_total"], int)
        assert isinstance(s["memory"]["usage"], int)
        assert isinstance(s["blkio"]["read_bytes"], int)
    finally:
        m.destroy()


CHECKS = [v for k, v in sorted(globals().items()) if k.startswith("check_")]


# -- fake backends ------------------------------------------------------------------


def _v1_list_allows(listing: str, major: int, minor: int, access: str) -> bool:
    for rule in listing.splitlines():
        parts = rule.split()
        if parts[0] == "a":
            return True
        maj, _, mnr = parts[1].partition(":")
        if parts[0] == "c" and maj in ("*", str(major)) and mnr in ("*", str(minor)) and set(access) <= set(parts[2]):
            return True
    return False


def fake_v1() -> Backend:
    fs = FakeCgroup1()
    return Backend(
        name="fake-v1",
        root=fs.root,
        prefix="/pallet-test",
        spawn=fs.spawn,
        exit=fs.exit,
        fs=fs,
        destroy_timeout=0.05,
        version="hybrid",
        features={"memory", "cpu", "cpuset", "pids", "freezer", "devices", "oom"},
        oom=lambda m: fs.oom_kill(m.path),
        is_frozen=lambda m, pid: fs.read(f"{fs.root}/freezer{m.path}/freezer.state") == "FROZEN",
        can_read=lambda m, major, minor: _v1_list_allows(
            fs.read(f"{fs.root}/devices{m.path}/devices.list"), major, minor, "r"),
    )


def fake_v2() -> Backend:
    fs = FakeCgroup2()
    return Backend(
        name="fake-v2",
        root=fs.root,
        prefix="/pallet-test",
        spawn=fs.spawn,
        exit=fs.exit,
        fs=fs,
        destroy_timeout=0.05,
        version="v2",
        features={"memory", "cpu", "cpuset", "pids", "freezer", "oom", "devices"},
        oom=lambda m: fs.oom_kill(m.path),
        is_frozen=lambda m, pid: "frozen 1" in fs.read(f"{fs.root}{m.path}/cgroup.events"),
        can_read=lambda m, major, minor: (
            f"{fs.root}{m.path}" not in fs.device_programs
            or cgroups_devices.run(fs.device_programs[f"{fs.root}{m.path}"], "c", major, minor, "r")
        ),
    )


@pytest.fixture(params=[fake_v1, fake_v2], ids=["fake-v1", "fake-v2"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield request.param()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_conformance(backend: Backend, check: Callable[[Backend], None]) -> None:
    check(backend)
