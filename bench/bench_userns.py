"""Cost of ``--userns=auto``: start-up of ``run --rm --network none IMAGE true`` with and
without a remapped user namespace, pallet (runc and its own runtime) against podman.

    python bench/bench_userns.py [--runs 20]

pallet takes its ids from a private subordinate-id file and allocation table (so the
host's are not needed); podman reads the ``containers`` entries of /etc/subuid and
/etc/subgid (``scripts/setup.sh`` adds them) and is skipped without them.  Runs are
interleaved (a busy moment of the host hits every variant); prints medians and ratios.
Needs root.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.images import make_busybox_tar  # noqa: E402

PALLET = [sys.executable, "-m", "pallet"]


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, env=env, timeout=300)


def has_subids() -> bool:
    try:
        return all(any(line.startswith("containers:") for line in Path(f).read_text().splitlines())
                   for f in ("/etc/subuid", "/etc/subgid"))
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pallet-bench-userns-", dir="/tmp") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o711)  # the remapped root walks to its rootfs
        try:
            bench(args.runs, work)
        finally:
            with open("/proc/self/mounts") as f:
                targets = [line.split()[1] for line in f]
            for t in sorted((t for t in targets if t.startswith(str(work))), key=len, reverse=True):
                subprocess.run(["umount", "-l", t], capture_output=True)


def bench(runs: int, work: Path) -> None:
    tar = make_busybox_tar(work / "busybox.tar")
    (work / "subid").write_text("containers:1000000000:100000000\n")
    env = {**os.environ, "PALLET_SUBUID_FILE": str(work / "subid"), "PALLET_SUBGID_FILE": str(work / "subid"),
           "PALLET_USERNS_DIR": str(work / "alloc")}
    root = work / "pallet-root"
    run([*PALLET, "--root", str(root), "import", str(tar), "bench:busybox"], env)
    variants: list[tuple[str, list[str]]] = []
    for runtime in ("runc", "pallet"):
        base = [*PALLET, "--root", str(root), "--runtime", runtime, "run", "--rm", "--network", "none"]
        variants.append((f"pallet --runtime {runtime} run --rm true", [*base, "bench:busybox", "true"]))
        variants.append(("  ... --userns=auto", [*base, "--userns=auto", "bench:busybox", "true"]))
    pr = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "podman-run"),
          "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
    if shutil.which("podman") and has_subids():
        import resource

        # podman raises NOFILE/NPROC beyond what a capability-limited engine may
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[1])
        base = [*pr, "run", "--rm", "--network", "none",
                "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
        try:
            run([*pr, "import", str(tar), "bench:busybox"])
            run([*base, "--userns=auto", "bench:busybox", "true"])
            variants.append(("podman --runtime runc run --rm true", [*base, "bench:busybox", "true"]))
            variants.append(("  ... --userns=auto", [*base, "--userns=auto", "bench:busybox", "true"]))
        except subprocess.CalledProcessError as e:
            print(f"podman unusable here: {e.stderr.decode(errors='replace')[-300:]}")
    else:
        print("podman skipped (not installed, or no 'containers' entries in /etc/subuid and /etc/subgid)")
    times: dict[int, list[float]] = {i: [] for i in range(len(variants))}
    try:
        for _name, argv in variants:  # warm-up
            run(argv, env)
        for _ in range(runs):
            for i, (_name, argv) in enumerate(variants):
                t = time.perf_counter()
                run(argv, env)
                times[i].append(time.perf_counter() - t)
    finally:
        if shutil.which("podman"):
            subprocess.run([*pr, "system", "reset", "-f"], capture_output=True)
    print("\nstart-up of `run --rm --network none true`, without and with --userns=auto (medians)")
    base_t = statistics.median(times[0])
    for i, (name, _argv) in enumerate(variants):
        m = statistics.median(times[i])
        print(f"  {name:<40} {m * 1000:7.1f} ms  x{m / base_t:5.2f}")


if __name__ == "__main__":
    main()
