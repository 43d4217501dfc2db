"""cgroups: path forms, layout detection and the v1 -> v2 value mappings."""

from __future__ import annotations

import pytest

from pallet.errors import InvalidArgument
from pallet.runtime import cgroups
from pallet.runtime.cgroups_v2 import blkio_weight_to_io_weight, shares_to_weight
from tests.unit.cgroups_fake import FakeCgroup1, FakeCgroup2


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("/pallet/abc", "/pallet/abc"),
        ("pallet/abc", "/pallet/abc"),
        ("//pallet//abc/", "/pallet/abc"),
        ("system.slice:pallet:abc", "/system.slice/pallet-abc.scope"),
        ("machine-pallet.slice:pallet:abc", "/machine.slice/machine-pallet.slice/pallet-abc.scope"),
        (":pallet:abc", "/system.slice/pallet-abc.scope"),
        ("user.slice::abc", "/user.slice/abc.scope"),
    ],
)
def test_parse_path(given: str, want: str) -> None:
    assert cgroups.parse_path(given) == want


@pytest.mark.parametrize("bad", ["", "/", "/pallet/../etc", "a:b", "system.slice:pallet:", "x:pallet:abc", "a--b.slice:p:n"])
def test_parse_path_rejects(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        cgroups.parse_path(bad)


def test_detect() -> None:
    assert cgroups.detect("/sys/fs/cgroup", fs=FakeCgroup2()) == "v2"
    assert cgroups.detect("/sys/fs/cgroup", fs=FakeCgroup1(hybrid=True)) == "hybrid"
    assert cgroups.detect("/sys/fs/cgroup", fs=FakeCgroup1(hybrid=False)) == "v1"


def test_v1_comounted_controllers_share_one_directory() -> None:
    fs = FakeCgroup1()
    m = cgroups.manager("/p/c", fs=fs)
    assert m.dirs["cpu"] == m.dirs["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/p/c"  # type: ignore[attr-defined]
    assert "systemd" not in m.dirs  # type: ignore[attr-defined]
    m.create()
    assert fs.isdir("/sys/fs/cgroup/cpu/p/c")


def test_v1_without_swap_accounting_warns_and_limits_memory() -> None:
    fs = FakeCgroup1(memsw=False)
    m = cgroups.manager("/p/c", fs=fs)
    m.create()
    m.apply({"memory": {"limit": 1 << 26, "swap": 1 << 27}})
    assert fs.read("/sys/fs/cgroup/memory/p/c/memory.limit_in_bytes") == str(1 << 26)
    assert any("swap limit" in w for w in m.warnings)


def test_v1_oom_kill_disable() -> None:
    fs = FakeCgroup1()
    m = cgroups.manager("/p/c", fs=fs)
    m.create()
    m.apply({"memory": {"limit": 1 << 26, "disableOOMKiller": True}})
    assert "oom_kill_disable 1" in fs.read("/sys/fs/cgroup/memory/p/c/memory.oom_control")


def test_v2_delegates_controllers_down_the_path() -> None:
    fs = FakeCgroup2()
    m = cgroups.manager("/a/b/c", fs=fs)
    m.create()
    for d in ("/sys/fs/cgroup", "/sys/fs/cgroup/a", "/sys/fs/cgroup/a/b"):
        assert set(fs.read(f"{d}/cgroup.subtree_control").split()) == {"cpuset", "cpu", "io", "memory", "pids"}
    assert fs.read("/sys/fs/cgroup/a/b/c/cgroup.subtree_control") == ""
    assert fs.exists("/sys/fs/cgroup/a/b/c/memory.max")


def test_v2_io_throttle_and_weight() -> None:
    fs = FakeCgroup2()
    m = cgroups.manager("/p/c", fs=fs)
    m.create()
    m.apply(
        {
            "blockIO": {
                "weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            }
        }
    )
    assert fs.read("/sys/fs/cgroup/p/c/io.max") == "8:0 rbps=1048576 wiops=100"
    assert fs.read("/sys/fs/cgroup/p/c/io.weight") == str(blkio_weight_to_io_weight(500))


def test_v2_swap_below_memory_is_refused() -> None:
    fs = FakeCgroup2()
    m = cgroups.manager("/p/c", fs=fs)
    m.create()
    with pytest.raises(cgroups.CgroupError, match="memoryswap"):
        m.apply({"memory": {"limit": 1 << 27, "swap": 1 << 26}})


def test_v2_unified_passthrough() -> None:
    fs = FakeCgroup2()
    m = cgroups.manager("/p/c", fs=fs)
    m.create()
    m.apply({"unified": {"memory.max": "1048576"}})
    assert fs.read("/sys/fs/cgroup/p/c/memory.max") == "1048576"
    with pytest.raises(cgroups.CgroupError):
        m.apply({"unified": {"../memory.max": "1"}})


def test_v1_refuses_unified() -> None:
    m = cgroups.manager("/p/c", fs=FakeCgroup1())
    m.create()
    with pytest.raises(cgroups.CgroupError, match="v2"):
        m.apply({"unified": {"memory.max": "1"}})


def test_weight_mappings() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000


def test_device_rule() -> None:
    assert cgroups.device_rule({"allow": False}) == "a"
    assert cgroups.device_rule({"type": "b", "major": 8, "access": "r"}) == "b 8:* r"
    with pytest.raises(InvalidArgument):
        cgroups.device_rule({"type": "x"})
    with pytest.raises(InvalidArgument):
        cgroups.device_rule({"type": "c", "major": 1, "minor": 1, "access": "rwx"})
