"""`pallet stats` figures and formatting, and `pallet update` against a fake cgroup tree."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.cli.stats import binary_size, decimal_size, render, row
from pallet.config import Config
from pallet.engine import limits, resources
from pallet.engine.state import ContainerSpec, ContainerState, ContainerStore
from pallet.errors import InvalidArgument
from pallet.runtime import cgroups
from tests.unit.cgroups_fake import FakeCgroup1, FakeCgroup2

MB = 1 << 20


@pytest.mark.parametrize(("n", "text"), [(0, "0B"), (1023, "1023B"), (2048, "2KiB"), (2_048_000, "1.953MiB"), (64 * MB, "64MiB"), (8 << 30, "8GiB")])
def test_binary_size(n: int, text: str) -> None:
    assert binary_size(n) == text


@pytest.mark.parametrize(("n", "text"), [(0, "0B"), (648, "648B"), (1234, "1.23kB"), (12_500_000, "12.5MB")])
def test_decimal_size(n: int, text: str) -> None:
    assert decimal_size(n) == text


def _sample(t: float, cpu_ns: int) -> limits.Sample:
    return limits.Sample(when=t, cpu_ns=cpu_ns, mem_usage=16 * MB, mem_limit=64 * MB, net_rx=1234, net_tx=648,
                         blk_read=4096, blk_write=0, pids=3)


def _container(tmp_path: Path, **state: object):  # type: ignore[no-untyped-def]
    store = ContainerStore(tmp_path)
    cid = "ab" * 32
    store.reserve("web", cid)
    c = store.create(cid, "web", ContainerSpec(image="busybox", image_id="sha256:" + "0" * 64, path="sh",
                                                resources=resources.parse_flags(memory="64m", cpus="0.5", ncpu=2)), 1)
    c = store.save_state(c, ContainerState(status="running", pid=1, **state))  # type: ignore[arg-type]
    return store, c


def test_row_and_table(tmp_path: Path) -> None:
    _, c = _container(tmp_path)
    r = row(c, "", _sample(10.0, 0), _sample(11.0, 500_000_000))
    assert r == {"Container": c.short_id, "ID": c.short_id, "Name": "web", "CPUPerc": "50.00%",
                 "MemUsage": "16MiB / 64MiB", "MemPerc": "25.00%", "NetIO": "1.23kB / 648B",
                 "BlockIO": "4.1kB / 0B", "PIDs": "3"}
    text = render("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.PIDs}}", [r])
    lines = text.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "PIDS"]
    assert lines[1].split() == [c.short_id, "web", "50.00%", "3"]
    assert lines[0].index("NAME") == lines[1].index("web")
    assert render("{{.Name}}: {{.MemPerc}}", [r]) == "web: 25.00%\n"
    assert json.loads(render("json", [r]))["CPUPerc"] == "50.00%"
    stopped = row(c, "web", None, None)
    assert stopped["CPUPerc"] == "0.00%" and stopped["MemUsage"] == "0B / 0B" and stopped["Container"] == "web"


@pytest.mark.parametrize("fake", [FakeCgroup1, FakeCgroup2])
def test_update_writes_live_limits_and_records_them(tmp_path: Path, fake: type) -> None:
    store, c = _container(tmp_path)
    fs = fake()
    m = cgroups.manager(limits.cgroup_path(c), root=fs.root, fs=fs)
    m.create()
    m.apply(resources.oci_resources(c.spec.resources))
    changes = resources.parse_update(memory="96m", cpus="1.5", ncpu=2)
    limits.update(Config(root=tmp_path), "web", changes, cgroup_root=fs.root, cgroup_fs=fs)
    assert m.stats()["memory"]["limit"] == 96 * MB
    if m.version == "v2":
        assert fs.read(f"{fs.root}/pallet/{c.id}/cpu.max") == "150000 100000"
    else:
        assert fs.read(f"{fs.root}/cpu/pallet/{c.id}/cpu.cfs_quota_us") == "150000"
    rec = store.load(c.id).spec.resources
    assert rec["Memory"] == 96 * MB and rec["NanoCpus"] == 1_500_000_000 and rec["MemorySwap"] == 128 * MB


def test_update_refuses_memory_above_swap(tmp_path: Path) -> None:
    store, c = _container(tmp_path)
    fs = FakeCgroup1()
    with pytest.raises(InvalidArgument, match="memoryswap"):
        limits.update(Config(root=tmp_path), c.id, resources.parse_update(memory="256m"), cgroup_root=fs.root, cgroup_fs=fs)
    assert store.load(c.id).spec.resources["Memory"] == 64 * MB


def test_update_of_a_stopped_container_only_records(tmp_path: Path) -> None:
    store, c = _container(tmp_path)
    store.save_state(c, replace(c.state, status="exited"))
    fs = FakeCgroup2()
    limits.update(Config(root=tmp_path), "web", resources.parse_update(pids_limit="20"), cgroup_root=fs.root, cgroup_fs=fs)
    assert store.load(c.id).spec.resources["PidsLimit"] == 20
    assert not [w for w in fs.writes if "pids" in w[0]]


def test_cgroup_path_comes_from_the_bundle(tmp_path: Path) -> None:
    _, c = _container(tmp_path)
    assert limits.cgroup_path(c) == f"/pallet/{c.id}"
    c.bundle.mkdir()
    (c.bundle / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": "/elsewhere/x"}}))
    assert limits.cgroup_path(c) == "/elsewhere/x"
