"""Limits hold on real cgroups: OCI bundles run by runc (reference) and pallet's runtime.

Kept small for a shared machine: 64 MB memory limits, a pids limit of 50, a
few seconds of one busy loop.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.runtime import cgroups
from tests.integration.escape_harness import MB, BundleDriver, pallet_runtime_available
from tests.support.images import busybox_available, make_busybox_rootfs

pytestmark = [pytest.mark.skipif(not busybox_available(), reason="needs Debian's busybox-static")]


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("limits") / "rootfs")


@pytest.fixture(params=["runc", "pallet-runtime"])
def box(request: pytest.FixtureRequest, tmp_path: Path, rootfs_template: Path) -> Iterator[BundleDriver]:
    if request.param == "runc" and subprocess.run(["which", "runc"], capture_output=True).returncode:
        pytest.skip("runc is not installed")
    if request.param == "pallet-runtime" and not pallet_runtime_available():
        pytest.skip("pallet's runtime (pallet.runtime.cli) is not built yet")
    d = BundleDriver(request.param, tmp_path, rootfs_template)
    try:
        yield d
    finally:
        d.close()
        assert not cgroups.manager(d.parent).exists(), "a cgroup was left behind"


def test_memory_hog_is_oom_killed_and_recorded(box: BundleDriver) -> None:
    cid = box.start("exec dd if=/dev/zero of=/dev/null bs=256M count=1", memory="64m", memory_swap="64m")
    box.wait(cid)
    m = box.cgroup(cid)
    assert m.oom_killed(), "the OOM kill was not recorded by the cgroup"
    assert "records out" not in box.output(cid)
    box.delete(cid)
    assert not m.exists(), "the container's cgroup survived its removal"


def test_fork_bomb_stops_at_pids_limit(box: BundleDriver) -> None:
    # the inner shell forks until the kernel refuses (busybox sh then exits)
    cid = box.start("sh -c 'while :; do sleep 60 & done' 2>/dev/null; exec sleep 60", pids_limit="50")
    m = box.cgroup(cid)
    deadline = time.monotonic() + 10
    while not m.stats()["pids"]["refused"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    pids = m.stats()["pids"]
    assert pids["refused"] > 0, "the kernel never refused a fork"
    if pids["peak"] is not None:
        assert pids["peak"] == 50, pids
    assert 40 <= pids["current"] <= 50 and len(m.pids()) <= 50, pids
    box.delete(cid)
    assert not m.exists()


def test_half_a_cpu(box: BundleDriver) -> None:
    cid = box.start("while :; do :; done", cpus="0.5")
    m = box.cgroup(cid)
    try:
        time.sleep(0.3)
        s0, t0 = m.stats(), time.monotonic()
        time.sleep(3)
        s1, t1 = m.stats(), time.monotonic()
        used = (s1["cpu"]["usage_total"] - s0["cpu"]["usage_total"]) / 1e9 / (t1 - t0)
        # about half a core: never more (the quota), and not much less unless the host is starved
        # never more than the quota; on a host busy with other work the loop may get less
        assert 0.2 <= used <= 0.56, f"{used:.2f} CPUs"
        if used > 0.4:  # it reached the quota, so the kernel must have throttled it
            assert s1["cpu"]["throttling"]["throttled_periods"] > s0["cpu"]["throttling"]["throttled_periods"]
    finally:
        box.delete(cid)
    assert not m.exists()


def test_limits_change_while_running(box: BundleDriver) -> None:
    cid = box.start("sleep 60", memory="64m", memory_swap="64m", pids_limit="50")
    m = box.cgroup(cid)
    try:
        hog = ("dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1")
        assert box.exec(cid, *hog).rc != 0, "a 96 MB buffer fit under 64 MB"
        m.apply({"memory": {"limit": 192 * MB, "swap": 192 * MB}, "pids": {"limit": 80}})
        r = box.exec(cid, *hog)
        assert r.rc == 0, r.out
        assert m.stats()["memory"]["limit"] == 192 * MB and m.stats()["pids"]["limit"] == 80
        m.apply({"memory": {"limit": 64 * MB, "swap": 64 * MB}})
        assert box.exec(cid, *hog).rc != 0
    finally:
        box.delete(cid)
    assert not m.exists()
