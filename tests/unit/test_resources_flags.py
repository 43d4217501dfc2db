"""Docker's resource flags -> HostConfig fields -> OCI linux.resources."""

from __future__ import annotations

import os
import stat

import pytest

from pallet.engine import resources as r
from pallet.errors import InvalidArgument

MB = 1 << 20


class _st:
    def __init__(self, mode: int, rdev: int) -> None:
        self.st_mode, self.st_rdev, self.st_uid, self.st_gid = mode, rdev, 0, 6


def fake_stat(path: str) -> _st:
    if path != "/dev/sda":
        raise FileNotFoundError(2, "No such file or directory", path)
    return _st(stat.S_IFBLK | 0o660, os.makedev(8, 0))


@pytest.mark.parametrize(
    ("text", "n"),
    [("64m", 64 * MB), ("64M", 64 * MB), ("1g", 1 << 30), ("1.5g", 3 << 29), ("512k", 512 << 10),
     ("1048576", MB), ("100mb", 100 * MB), ("2 GiB", 2 << 30), ("1b", 1)],
)
def test_ram_in_bytes(text: str, n: int) -> None:
    assert r.ram_in_bytes(text) == n


def test_memory_flags_and_swap_default() -> None:
    hc = r.parse_flags(memory="64m")
    assert hc == {"Memory": 64 * MB, "MemorySwap": 128 * MB}
    hc = r.parse_flags(memory="64m", memory_swap="-1", memory_reservation="32m")
    assert hc == {"Memory": 64 * MB, "MemorySwap": -1, "MemoryReservation": 32 * MB}
    assert r.oci_resources(hc) == {"memory": {"limit": 64 * MB, "swap": -1, "reservation": 32 * MB}}


@pytest.mark.parametrize(
    ("flags", "msg"),
    [
        ({"memory": "1m"}, "Minimum memory limit allowed is 6MB"),
        ({"memory": "x"}, 'invalid argument "x" for "-m, --memory" flag: invalid size: \'x\''),
        ({"memory_swap": "128m"}, "You should always set the Memory limit when using Memoryswap limit"),
        ({"memory": "128m", "memory_swap": "64m"}, "Minimum memoryswap limit should be larger than memory limit"),
        ({"memory": "64m", "memory_reservation": "128m"}, "Minimum memory limit can not be less than memory reservation limit"),
        ({"cpus": "abc"}, 'invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational number'),
        ({"cpus": "3", "ncpu": 2}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        ({"cpus": "0.5", "cpu_period": "50000"}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
        ({"cpus": "0.5", "cpu_quota": "50000"}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
        ({"cpu_period": "10"}, "CPU cfs period can not be less than 1ms"),
        ({"cpu_quota": "10"}, "CPU cfs quota can not be less than 1ms"),
        ({"cpuset_cpus": "0-a"}, "Invalid value 0-a for cpuset cpus"),
        ({"cpuset_cpus": "5", "ncpu": 2}, "Requested CPUs are not available - requested 5, available: 0-1"),
        ({"blkio_weight": "5"}, "Range of blkio weight is from 10 to 1000"),
        ({"pids_limit": "many"}, 'invalid argument "many" for "--pids-limit" flag'),
        ({"device_read_bps": ["/dev/sda"]}, "bad format: /dev/sda"),
        ({"device_read_bps": ["sda:1mb"]}, "bad format for device path: sda:1mb"),
        ({"device_write_iops": ["/dev/sda:1mb"]}, "invalid rate for device: /dev/sda:1mb"),
    ],
)
def test_flag_errors(flags: dict, msg: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        r.parse_flags(**flags)
    assert msg in str(e.value)


def test_cpu_flags_to_oci() -> None:
    hc = r.parse_flags(cpus="0.5", cpu_shares="512", cpuset_cpus="0", cpuset_mems="0", ncpu=2)
    assert hc == {"NanoCpus": 500_000_000, "CpuShares": 512, "CpusetCpus": "0", "CpusetMems": "0"}
    assert r.oci_resources(hc)["cpu"] == {"shares": 512, "period": 100000, "quota": 50000, "cpus": "0", "mems": "0"}
    hc = r.parse_flags(cpu_period="50000", cpu_quota="25000")
    assert r.oci_resources(hc)["cpu"] == {"period": 50000, "quota": 25000}


def test_pids_blkio_oom() -> None:
    hc = r.parse_flags(pids_limit="50", blkio_weight="300", oom_kill_disable=True, memory="64m",
                       device_read_bps=["/dev/sda:1mb"], device_write_iops=["/dev/sda:100"])
    out = r.oci_resources(hc, stat=fake_stat)  # type: ignore[arg-type]
    assert out["pids"] == {"limit": 50}
    assert out["memory"]["disableOOMKiller"] is True
    assert out["blockIO"] == {
        "weight": 300,
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": MB}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
    }
    assert r.oci_resources({"PidsLimit": -1})["pids"] == {"limit": -1}


def test_update_rules() -> None:
    cur = r.parse_flags(memory="64m")
    with pytest.raises(InvalidArgument, match="smaller than already set memoryswap"):
        r.merge_update(cur, r.parse_update(memory="256m"))
    new = r.merge_update(cur, r.parse_update(memory="256m", memory_swap="512m"))
    assert new["Memory"] == 256 * MB and new["MemorySwap"] == 512 * MB
    new = r.merge_update(r.parse_flags(cpu_period="50000", cpu_quota="25000"), r.parse_update(cpus="1.5", ncpu=2))
    assert new == {"NanoCpus": 1_500_000_000}
    assert r.merge_update({"NanoCpus": 1}, r.parse_update(cpu_quota="20000")) == {"CpuQuota": 20000}
    assert r.merge_update({}, r.parse_update(pids_limit="0")) == {"PidsLimit": -1}
    with pytest.raises(InvalidArgument, match="one or more flags"):
        r.merge_update(cur, {})


def test_apply_to_spec_keeps_input_and_sets_resources() -> None:
    spec = {"process": {"args": ["sh"]}, "linux": {"resources": {}}}
    out = r.apply_to_spec(spec, r.parse_flags(memory="64m", pids_limit="50"), stat=fake_stat)  # type: ignore[arg-type]
    assert spec == {"process": {"args": ["sh"]}, "linux": {"resources": {}}}
    assert out["linux"]["resources"]["memory"] == {"limit": 64 * MB, "swap": 128 * MB}
    assert out["linux"]["resources"]["pids"] == {"limit": 50}
    assert out["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert out["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_process_limits() -> None:
    hc = r.parse_flags(ulimit=["nofile=1024:2048", "nproc=100", "nofile=512:1024"], shm_size="128m", oom_score_adj="500",
                       memory_swappiness="10", device_cgroup_rule=["c 42:* rmw"])
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 512, "Hard": 1024}, {"Name": "nproc", "Soft": 100, "Hard": 100}]
    assert hc["ShmSize"] == 128 * MB and hc["OomScoreAdj"] == 500 and hc["MemorySwappiness"] == 10
    spec = {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 20000, "hard": 20000}]},
            "mounts": [{"destination": "/dev/shm", "type": "tmpfs", "options": ["nosuid", "size=65536k"]}]}
    out = r.apply_to_spec(spec, hc, host_devices=lambda: [])
    assert out["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                                         {"type": "RLIMIT_NPROC", "soft": 100, "hard": 100}]
    assert out["process"]["oomScoreAdj"] == 500
    assert out["mounts"][0]["options"] == ["nosuid", f"size={128 * MB}"]
    assert out["linux"]["resources"]["memory"]["swappiness"] == 10
    assert out["linux"]["resources"]["devices"][-1] == {"allow": True, "type": "c", "major": 42, "access": "rmw"}


@pytest.mark.parametrize(
    ("flags", "msg"),
    [
        ({"ulimit": ["nofile"]}, "invalid ulimit argument: nofile"),
        ({"ulimit": ["files=1"]}, "invalid ulimit type: files"),
        ({"ulimit": ["nofile=2048:1024"]}, "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"),
        ({"oom_score_adj": "2000"}, "Invalid value 2000, range for oom score adj is [-1000, 1000]"),
        ({"memory_swappiness": "101"}, "Invalid value: 101, valid memory swappiness range is 0-100"),
        ({"device_cgroup_rule": ["x 1:2 r"]}, "invalid device cgroup format 'x 1:2 r'"),
        ({"shm_size": "lots"}, 'for "--shm-size" flag: invalid size'),
    ],
)
def test_process_limit_errors(flags: dict, msg: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        r.parse_flags(**flags)
    assert msg in str(e.value)
