#!/usr/bin/env python3
"""`run --rm --network none IMG true`: pallet vs podman (runc) vs bare `runc run` (the floor).

Everything in one run, on the same busybox image imported into private roots
under /var/tmp: medians of several runs and the ratios; then 50 detached
containers started concurrently (all must succeed, the state must be
consistent) and the time that took.

    sudo .venv/bin/python bench/bench_run.py [--runs 15] [--concurrent 50]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

PALLET = [str(Path(sys.executable).parent / "pallet")]


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, check=True, capture_output=True, **kw)  # type: ignore[call-overload]


def median_time(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def median_detached(start: list[str], remove: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of ``start`` (a ``run -d``); each container is removed, untimed."""
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        cid = run(start, env=env).stdout.decode().strip()
        if i:  # the first warms caches
            times.append(time.perf_counter() - t)
        run([*remove, cid], env=env)
    return statistics.median(times)


def runc_bundle(work: Path, tar: Path) -> Path:
    b = work / "bundle"
    (b / "rootfs").mkdir(parents=True)
    run(["tar", "-xf", str(tar), "-C", str(b / "rootfs")])
    run(["runc", "spec", "--bundle", str(b)])
    spec = json.loads((b / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard}]
    (b / "config.json").write_text(json.dumps(spec))
    return b


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--concurrent", type=int, default=50)
    ap.add_argument("--runtime", default="", help="pallet's --runtime (default: pallet's default)")
    args = ap.parse_args()
    from tests.support.images import make_busybox_tar

    env_note = ""
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # bytecode is read when it exists: compile once so no run pays for it
        run([sys.executable, "-m", "compileall", "-q", str(REPO / "src" / "pallet")])
        env_note = " (bytecode precompiled: PYTHONDONTWRITEBYTECODE is set)"
    work = Path(tempfile.mkdtemp(prefix="pallet-bench-run-", dir="/var/tmp"))
    rows: list[tuple[str, float | None]] = []
    try:
        tar = make_busybox_tar(work / "busybox.tar")
        root = work / "pallet"
        base = [*PALLET, "--root", str(root)] + (["--runtime", args.runtime] if args.runtime else [])
        run([*base, "import", str(tar), "bench:busybox", "--change", 'CMD ["sh"]'])
        prt = [*base, "run", "--rm", "--network", "none", "bench:busybox", "true"]
        try:
            run(prt)
        except subprocess.CalledProcessError as e:
            print(f"pallet's default runtime is unusable here ({e.stderr.decode(errors='replace').strip()}); "
                  "measuring --runtime runc")
            args.runtime = "runc"
            base = [*PALLET, "--root", str(root), "--runtime", "runc"]
            prt = [*base, "run", "--rm", "--network", "none", "bench:busybox", "true"]
        pallet_t = median_time(lambda: run(prt), args.runs)
        rows.append((f"pallet run --rm{' --runtime ' + args.runtime if args.runtime else ''}", pallet_t))
        if not args.runtime:
            prc = [*PALLET, "--root", str(root), "--runtime", "runc", "run", "--rm", "--network", "none",
                   "bench:busybox", "true"]
            rows.append(("pallet --runtime runc run --rm", median_time(lambda: run(prc), args.runs)))

        podman_t = None
        podman_d = 0.0
        if shutil.which("podman"):
            conf = work / "containers.conf"
            conf.write_text("[containers]\ndefault_ulimits = []\n")  # the host's limits: runc cannot raise them
            pr = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "podman-run"),
                  "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]
            penv = {**os.environ, "CONTAINERS_CONF": str(conf)}
            try:
                run([*pr, "import", "--change", 'CMD ["sh"]', str(tar), "bench:busybox"], env=penv)
                pcmd = [*pr, "run", "--rm", "--network", "none", "bench:busybox", "true"]
                podman_t = median_time(lambda: run(pcmd, env=penv), args.runs)
                rows.append(("podman --runtime runc run --rm", podman_t))
                podman_d = median_detached([*pr, "run", "-d", "--network", "none", "bench:busybox", "sleep", "60"],
                                           [*pr, "rm", "-f", "-t", "0"], args.runs, env=penv)
            except subprocess.CalledProcessError as e:
                print(f"podman unusable here: {e.stderr.decode(errors='replace')[-300:]}")
            finally:
                subprocess.run([*pr, "system", "reset", "-f"], capture_output=True, env=penv)
        pallet_d = median_detached([*base, "run", "-d", "--network", "none", "bench:busybox", "sleep", "60"],
                                   [*base, "rm", "-f"], args.runs)
        runc_t = None
        if shutil.which("runc"):
            b = runc_bundle(work, tar)
            rroot = work / "runc-state"
            n = [0]

            def runc_run() -> None:
                n[0] += 1
                run(["runc", "--root", str(rroot), "run", "--bundle", str(b), f"pallet-bench-{os.getpid()}-{n[0]}"])

            runc_t = median_time(runc_run, args.runs)
            rows.append(("runc run (prepared bundle, the floor)", runc_t))

        print(f"\nrun --rm --network none IMG true: median of {args.runs} runs{env_note}")
        for name, t in rows:
            extra = []
            if t is not None and podman_t:
                extra.append(f"{t / podman_t:.2f}x podman")
            if t is not None and runc_t:
                extra.append(f"{t / runc_t:.2f}x runc")
            print(f"  {name:42s} {t * 1000:8.1f} ms   {'  '.join(extra)}" if t is not None else f"  {name:42s}   n/a")
        if podman_t:
            print(f"  target: pallet <= 0.40x podman ({0.4 * podman_t * 1000:.0f} ms); "
                  f"measured {pallet_t / podman_t:.2f}x")
        print(f"\nrun -d --network none IMG sleep 60 (until the ID is printed): median of {args.runs} runs")
        print(f"  {'pallet run -d':42s} {pallet_d * 1000:8.1f} ms"
              + (f"   {pallet_d / podman_d:.2f}x podman" if podman_t else ""))
        if podman_t:
            print(f"  {'podman --runtime runc run -d':42s} {podman_d * 1000:8.1f} ms")

        # -- concurrency -------------------------------------------------------------------
        n = args.concurrent
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as ex:
            results = list(ex.map(lambda i: subprocess.run(
                [*base, "run", "-d", "--name", f"c{i}", "--network", "none", "bench:busybox", "sleep", "600"],
                capture_output=True), range(n)))
        took = time.perf_counter() - t
        ok = sum(1 for r in results if r.returncode == 0)
        running = run([*base, "ps", "-q"]).stdout.split()
        names = set(run([*base, "ps", "-a", "--format", "{{.Names}}"]).stdout.decode().split())
        consistent = len(running) == ok and names == {f"c{i}" for i in range(n)}
        print(f"\n{n} detached containers started concurrently: {ok}/{n} succeeded in {took:.2f} s; "
              f"{len(running)} running; state {'consistent' if consistent else 'INCONSISTENT'}")
        for r in results:
            if r.returncode != 0:
                print("  failure:", r.stderr.decode(errors="replace").strip()[-300:])
                break
        t = time.perf_counter()
        ids = run([*base, "ps", "-aq"]).stdout.decode().split()
        if ids:
            run([*base, "rm", "-f", *ids])
        print(f"  removed them all in {time.perf_counter() - t:.2f} s")
        return 0 if ok == n and consistent else 1
    finally:
        with open("/proc/self/mountinfo") as f:
            mounts = [ln.split(" ", 5)[4] for ln in f if str(work) in ln]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
