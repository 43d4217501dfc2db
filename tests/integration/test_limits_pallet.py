"""Limits through pallet's command line: run with limits, update them live, stats, rm.

Runs with ``--runtime runc`` and with pallet's own runtime (when built).
Bounded for a shared machine: 64 MB memory limits, a pids limit of 50, a few
seconds of one busy loop.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.runtime import cgroups
from tests.integration.escape_harness import MB, pallet_runtime_available
from tests.support.cli import Pallet


@pytest.fixture(params=["runc", "pallet"])
def pal(request: pytest.FixtureRequest, pallet_root: Path, busybox_tar: Path) -> Iterator[Pallet]:
    if request.param == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    if request.param == "pallet" and not pallet_runtime_available():
        pytest.skip("pallet's runtime (pallet.runtime.cli) is not built yet")
    p = Pallet(pallet_root, runtime=request.param)
    p.ok("import", str(busybox_tar), "busybox:test")
    try:
        yield p
    finally:
        ids = p("ps", "-aq", "--no-trunc").out.split()
        if ids:
            p("rm", "-f", *ids)
        for cid in ids:
            assert not cgroups.manager(f"/pallet/{cid}").exists(), f"cgroup of {cid[:12]} left behind"


def inspect(p: Pallet, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(p.ok("inspect", name))[0]  # type: ignore[no-any-return]


def cgroup_of(p: Pallet, name: str) -> cgroups.Manager:
    return cgroups.manager(f"/pallet/{inspect(p, name)['Id']}")


def test_memory_hog_exits_137_with_oom_killed(pal: Pallet) -> None:
    r = pal("run", "--name", "hog", "-m", "64m", "--memory-swap", "64m", "busybox:test",
            "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
    assert r.rc == 137, r
    st = inspect(pal, "hog")["State"]
    assert st["OOMKilled"] is True and st["ExitCode"] == 137
    cid = inspect(pal, "hog")["Id"]
    pal.ok("rm", "hog")
    assert not cgroups.manager(f"/pallet/{cid}").exists()


def test_no_oom_flag_without_oom(pal: Pallet) -> None:
    r = pal("run", "--name", "fine", "-m", "64m", "busybox:test", "dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1")
    assert r.rc == 0, r
    assert inspect(pal, "fine")["State"]["OOMKilled"] is False


def test_fork_bomb_stops_at_pids_limit(pal: Pallet) -> None:
    r = pal("run", "--rm", "--pids-limit", "50", "busybox:test", "sh", "-c",
            "sh -c 'while :; do sleep 30 & done' 2>/dev/null; set -- /proc/[0-9]*; echo running=$#; kill -9 -1",
            timeout=60)
    assert "running=" in r.out, r
    running = int(r.out.split("running=")[1].split()[0])
    assert 40 <= running <= 50, r.out


def test_half_a_cpu(pal: Pallet) -> None:
    pal.ok("run", "-d", "--name", "spin", "--cpus", "0.5", "busybox:test", "sh", "-c", "while :; do :; done")
    m = cgroup_of(pal, "spin")
    time.sleep(0.3)
    s0, t0 = m.stats()["cpu"]["usage_total"], time.monotonic()
    time.sleep(3)
    s1, t1 = m.stats()["cpu"]["usage_total"], time.monotonic()
    used = (s1 - s0) / 1e9 / (t1 - t0)
    # never more than the quota; on a host busy with other work the loop may get less
    assert 0.2 <= used <= 0.56, f"{used:.2f} CPUs"
    pct = float(pal.ok("stats", "--no-stream", "--format", "{{.CPUPerc}}", "spin").strip().rstrip("%"))
    assert 10 <= pct <= 60, pct
    cid = inspect(pal, "spin")["Id"]
    pal.ok("rm", "-f", "spin")
    assert not cgroups.manager(f"/pallet/{cid}").exists()


def test_update_changes_limits_live_and_inspect_shows_them(pal: Pallet) -> None:
    pal.ok("run", "-d", "--name", "svc", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50", "busybox:test", "sleep", "60")
    m = cgroup_of(pal, "svc")
    assert m.stats()["memory"]["limit"] == 64 * MB
    out = pal.ok("update", "-m", "128m", "--memory-swap", "256m", "--cpus", "1.5", "--pids-limit", "80", "svc")
    assert out.strip() == "svc"
    s = m.stats()
    assert s["memory"]["limit"] == 128 * MB and s["pids"]["limit"] == 80
    if m.version != "v2":
        assert m.fs.read(m.dirs["cpu"] + "/cpu.cfs_quota_us").strip() == "150000"  # type: ignore[attr-defined]
    hc = inspect(pal, "svc")["HostConfig"]
    assert hc["Memory"] == 128 * MB and hc["MemorySwap"] == 256 * MB
    assert hc["NanoCpus"] == 1_500_000_000 and hc["PidsLimit"] == 80
    r = pal("update", "-m", "512m", "svc")
    assert r.rc == 125 and "memoryswap" in r.err
    assert m.stats()["memory"]["limit"] == 128 * MB


def test_stats_no_stream(pal: Pallet) -> None:
    pal.ok("run", "-d", "--name", "one", "-m", "64m", "busybox:test", "sleep", "60")
    out = pal.ok("stats", "--no-stream")
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert len(lines) == 2 and " one " in lines[1] and lines[1].split()[-1] == "1"
    assert "/ 64MiB" in lines[1]
    doc = json.loads(pal.ok("stats", "--no-stream", "--format", "json", "one"))
    assert doc["Name"] == "one" and doc["PIDs"] == "1"
    pal.ok("stop", "-t", "0", "one")
    assert pal.ok("stats", "--no-stream", "--format", "{{.Name}}").strip() == ""
    assert pal.ok("stats", "-a", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}}").strip() == "one 0.00%"


def test_updated_limits_apply_at_the_next_start_and_oom_flag_resets(pal: Pallet) -> None:
    hog = ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]
    r = pal("run", "--name", "grow", "-m", "64m", "--memory-swap", "64m", "busybox:test", *hog)
    assert r.rc == 137 and inspect(pal, "grow")["State"]["OOMKilled"] is True
    pal.ok("update", "-m", "256m", "--memory-swap", "256m", "grow")  # a stopped container: recorded only
    r = pal("start", "-a", "grow")
    assert r.rc == 0, r
    st = inspect(pal, "grow")["State"]
    assert st["OOMKilled"] is False and st["ExitCode"] == 0


def test_stats_streams_until_interrupted(pal: Pallet) -> None:
    import signal
    import subprocess

    pal.ok("run", "-d", "--name", "streamed", "busybox:test", "sleep", "60")
    p = subprocess.Popen(pal.argv("stats", "--format", "{{.Name}} {{.PIDs}}"), stdout=subprocess.PIPE, text=True)
    time.sleep(3.2)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=10)
    frames = [ln for ln in out.splitlines() if ln.strip() == "streamed 1"]
    assert len(frames) >= 2, out  # a new frame every second


def test_process_limits_flags(pal: Pallet) -> None:
    r = pal("run", "--rm", "--ulimit", "nofile=512:1024", "--shm-size", "16m", "--oom-score-adj", "300",
            "busybox:test", "sh", "-c",
            "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; "
            "dd if=/dev/zero of=/dev/shm/f bs=1M count=32 2>&1 | grep -c 'No space'")
    assert r.out.split() == ["512", "1024", "300", "1"], r
