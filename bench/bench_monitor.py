#!/usr/bin/env python3
"""Host memory held per idle detached container: pallet's C and Python monitors vs podman's conmon.

Starts N idle containers (`sleep`) with each monitor, and reads RSS and PSS
(/proc/PID/smaps_rollup) of every process pallet keeps on the host for them:
the monitor, and nothing else (the CLI has exited).  PSS splits shared pages
among their users, so it is the fair per-container figure; RSS counts shared
libraries in full.

    sudo .venv/bin/python bench/bench_monitor.py [-n 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
PALLET = str(Path(sys.executable).parent / "pallet")


def mem_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def pallet_monitors(root: Path, n: int, monitor: str, runtime: str) -> tuple[float, float, str]:
    env = {**os.environ, "PALLET_MONITOR": monitor} if monitor == "python" else dict(os.environ)
    base = [PALLET, "--root", str(root), "--runtime", runtime]
    ids = []
    try:
        for i in range(n):
            r = subprocess.run([*base, "run", "-d", "--network", "none", "--name", f"{monitor}{i}",
                                "bench:busybox", "sleep", "600"], capture_output=True, env=env, check=True)
            ids.append(r.stdout.decode().strip())
        rss = pss = 0
        what = ""
        for cid in ids:
            st = json.loads((root / "containers" / cid / "state.json").read_text())
            r_, p_ = mem_kb(int(st["monitor_pid"]))
            rss += r_
            pss += p_
            with open(f"/proc/{st['monitor_pid']}/cmdline", "rb") as f:
                what = f.read().split(b"\0")[0].decode()
        return rss / n, pss / n, os.path.basename(what)
    finally:
        if ids:
            subprocess.run([*base, "rm", "-f", *ids], capture_output=True)


def conmon(work: Path, tar: Path, n: int) -> tuple[float, float] | None:
    if not shutil.which("podman"):
        return None
    conf = work / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    pr = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "podman-run"),
          "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]
    try:
        subprocess.run([*pr, "import", str(tar), "bench:busybox"], capture_output=True, env=env, check=True)
        for i in range(n):
            subprocess.run([*pr, "run", "-d", "--network", "none", "--name", f"p{i}", "bench:busybox",
                            "sleep", "600"], capture_output=True, env=env, check=True)
        pids = []
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                with open(f"/proc/{e}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if cmd.startswith(b"/usr/bin/conmon") and str(work).encode() in cmd:
                pids.append(int(e))
        if not pids:
            return None
        tot = [mem_kb(p) for p in pids]
        return sum(t[0] for t in tot) / len(pids), sum(t[1] for t in tot) / len(pids)
    except subprocess.CalledProcessError as e:
        print("podman unusable here:", e.stderr.decode(errors="replace")[-300:])
        return None
    finally:
        subprocess.run([*pr, "rm", "-f", "-a", "-t", "0"], capture_output=True, env=env)
        subprocess.run([*pr, "system", "reset", "-f"], capture_output=True, env=env)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--runtime", default="runc")
    args = ap.parse_args()
    from tests.support.images import make_busybox_tar

    work = Path(tempfile.mkdtemp(prefix="pallet-bench-mon-", dir="/var/tmp"))
    try:
        tar = make_busybox_tar(work / "busybox.tar")
        root = work / "pallet"
        subprocess.run([PALLET, "--root", str(root), "import", str(tar), "bench:busybox"], check=True,
                       capture_output=True)
        print(f"host memory per idle detached container ({args.n} containers each), kB")
        print(f"  {'':34s} {'RSS':>8s} {'PSS':>8s}")
        for monitor in ("c", "python"):
            rss, pss, what = pallet_monitors(root, args.n, monitor, args.runtime)
            print(f"  pallet ({what}){'':{max(0, 25 - len(what))}s} {rss:8.0f} {pss:8.0f}")
        c = conmon(work, tar, args.n)
        if c:
            print(f"  {'podman (conmon)':34s} {c[0]:8.0f} {c[1]:8.0f}")
        print("  target: <= 3072 kB per container (conmon ~2 MB, containerd-shim ~13 MB)")
        return 0
    finally:
        with open("/proc/self/mountinfo") as f:
            mounts = [ln.split(" ", 5)[4] for ln in f if str(work) in ln]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
