"""Cost of the security defaults and speed of ``stats``, pallet against its peers.

    python bench/bench_security.py [--runs 10] [--containers 20]

1. Start-up: ``run --rm IMAGE true`` with the defaults (seccomp filter, cgroup
   with limits) and with ``--security-opt seccomp=unconfined``, for pallet and
   podman; plus the in-process cost of building and loading Docker's default
   filter, and of creating, limiting and removing one cgroup.
2. ``stats --no-stream`` over N sleeping containers: pallet against
   ``docker stats --no-stream`` (a private dockerd) and ``podman stats``.

Prints medians and ratios to pallet.  Needs root; peers that are missing are skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import dockerd as dockerd_support  # noqa: E402
from tests.support.images import make_busybox_tar  # noqa: E402

from pallet.engine.security import DEFAULT_CAPS  # noqa: E402
from pallet.oci.seccomp_default import default_profile  # noqa: E402
from pallet.runtime import cgroups  # noqa: E402

PALLET = [sys.executable, "-m", "pallet"]


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, env=env, timeout=300)


def report(title: str, rows: list[tuple[str, float | None]], unit: str = "ms") -> None:
    print(f"\n{title}")
    base = rows[0][1]
    for name, v in rows:
        if v is None:
            print(f"  {name:<44} (not available)")
            continue
        ratio = f"  x{v / base:5.2f} of {rows[0][0]}" if base else ""
        scale = 1000 if unit == "ms" else 1
        print(f"  {name:<44} median {v * scale:8.1f} {unit}{ratio}")


def in_process_costs(runs: int) -> None:
    cache = tempfile.mkdtemp(prefix="pallet-bench-bpf-")
    code = (
        "import time,sys;t=time.perf_counter();from pallet.runtime import seccomp;"
        "from pallet.oci.seccomp_default import default_profile;"
        f"p=default_profile({list(DEFAULT_CAPS)!r});t1=time.perf_counter();"
        f"c=seccomp.prepare(p, no_new_privs=True, cache_dir=sys.argv[1] or None);t2=time.perf_counter();"
        "c.load();t3=time.perf_counter();"
        "print(t1-t, t2-t1, t3-t2)"
    )
    cols: list[list[float]] = [[], [], [], [], []]
    for _ in range(runs):
        for cached in (False, True):
            out = subprocess.run([sys.executable, "-c", code, cache if cached else ""], capture_output=True,
                                 text=True, check=True).stdout.split()
            if cached:
                cols[3].append(float(out[1]))
            else:
                cols[0].append(float(out[0]))
                cols[1].append(float(out[1]))
            cols[2 if not cached else 4].append(float(out[2]))
    shutil.rmtree(cache, ignore_errors=True)
    prof = cols[0]
    parent = f"/pallet-bench-{os.getpid()}"

    def cg() -> None:
        m = cgroups.manager(f"{parent}/c")
        m.create()
        m.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}, "cpu": {"quota": 50000, "period": 100000},
                 "pids": {"limit": 100}, "devices": [{"allow": False, "access": "rwm"}]})
        m.destroy()

    try:
        t_cg = median_time(cg, runs)
    finally:
        cgroups.manager(parent).destroy()
    report("in-process costs (per container)", [
        ("Docker's default profile, as OCI (import + build)", statistics.median(prof)),
        ("seccomp: compile with libseccomp (import + build)", statistics.median(cols[1])),
        ("seccomp: compiled program from the cache", statistics.median(cols[3])),
        ("seccomp: install (seccomp(2))", statistics.median(cols[2] + cols[4])),
        ("cgroup: create + memory/cpu/pids/devices + rm", t_cg),
    ])
    print(f"  {len(default_profile(DEFAULT_CAPS)['syscalls'])} rules; cgroup layout: {cgroups.detect()}")


def startup(runs: int, tar: Path, work: Path) -> None:
    root = work / "pallet-root"
    run([*PALLET, "--root", str(root), "import", str(tar), "bench:busybox"])
    variants: list[tuple[str, list[str] | None]] = []
    for runtime in ("runc", "pallet"):
        base = [*PALLET, "--root", str(root), "--runtime", runtime, "run", "--rm", "--network", "none"]
        try:
            run([*base, "bench:busybox", "true"])
        except subprocess.CalledProcessError:
            variants += [(f"pallet --runtime {runtime} run --rm true", None)]
            continue
        variants.append((f"pallet --runtime {runtime} run --rm true", [*base, "bench:busybox", "true"]))
        variants.append(("  ... --security-opt seccomp=unconfined",
                         [*base, "--security-opt", "seccomp=unconfined", "bench:busybox", "true"]))
    pr = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "podman-run"),
          "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
    if shutil.which("podman"):
        import resource

        # podman raises NOFILE/NPROC beyond what this (capability-limited) engine may
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[1])
        base = [*pr, "run", "--rm", "--network", "none",
                "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
        try:
            run([*pr, "import", str(tar), "bench:busybox"])
            run([*base, "bench:busybox", "true"])
            variants.append(("podman --runtime runc run --rm true", [*base, "bench:busybox", "true"]))
            variants.append(("  ... --security-opt seccomp=unconfined",
                             [*base, "--security-opt", "seccomp=unconfined", "bench:busybox", "true"]))
        except subprocess.CalledProcessError as e:
            print(f"podman unusable here: {e.stderr.decode(errors='replace')[-300:]}")
    times: dict[int, list[float]] = {i: [] for i in range(len(variants))}
    try:
        for _ in range(runs):  # interleaved, so that a busy moment of the host hits every variant
            for i, (_name, argv) in enumerate(variants):
                if argv is not None:
                    t = time.perf_counter()
                    run(argv)
                    times[i].append(time.perf_counter() - t)
    finally:
        if shutil.which("podman"):
            subprocess.run([*pr, "system", "reset", "-f"], capture_output=True)
    rows = [(name, statistics.median(times[i]) if times[i] else None) for i, (name, _a) in enumerate(variants)]
    report("start-up of `run --rm true` (default security vs without the seccomp filter)", rows)


def stats_many(runs: int, n: int, tar: Path, work: Path) -> None:
    root = work / "pallet-stats"
    p = [*PALLET, "--root", str(root), "--runtime", "runc"]
    run([*p, "import", str(tar), "bench:busybox"])
    rows: list[tuple[str, float | None]] = []
    try:
        for i in range(n):
            run([*p, "run", "-d", "--network", "none", "--name", f"s{i:02d}", "-m", "32m", "bench:busybox", "sleep", "3600"])
        rows.append((f"pallet stats --no-stream ({n} containers)", median_time(lambda: run([*p, "stats", "--no-stream"]), runs)))
    finally:
        ids = subprocess.run([*p, "ps", "-aq"], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([*p, "rm", "-f", *ids], capture_output=True)
    if dockerd_support.available():
        with dockerd_support.private_dockerd() as d:
            d.docker("import", str(tar), "bench:busybox")
            try:
                for i in range(n):
                    d.docker("run", "-d", "--network", "none", "--name", f"s{i:02d}", "-m", "32m", "bench:busybox", "sleep", "3600")
                rows.append((f"docker stats --no-stream ({n} containers)",
                             median_time(lambda: d.docker("stats", "--no-stream"), runs)))
            finally:
                ids = d.docker("ps", "-aq").stdout.decode().split()
                if ids:
                    d.docker("rm", "-f", *ids, check=False)
    report("stats --no-stream", rows, unit="ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--only", choices=["inproc", "startup", "stats"], default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pallet-bench-sec-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        try:
            _main(args, work)
        finally:
            _unmount_under(work)


def _unmount_under(root: Path) -> None:
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1] for line in f]
    for t in sorted((t for t in targets if t.startswith(str(root))), key=len, reverse=True):
        subprocess.run(["umount", "-l", t], capture_output=True)


def _main(args: argparse.Namespace, work: Path) -> None:
    tar = make_busybox_tar(work / "busybox.tar")
    if args.only in (None, "inproc"):
        in_process_costs(args.runs)
    if args.only in (None, "startup"):
        startup(args.runs, tar, work)
    if args.only in (None, "stats"):
        stats_many(max(1, args.runs // 3), args.containers, tar, work)


if __name__ == "__main__":
    main()
