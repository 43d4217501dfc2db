#!/usr/bin/env python3
"""The low-level runtime alone: `runc run` vs `pallet-runtime run` on one prepared bundle.

Side by side in one run, on the same busybox bundle running `true` with Docker's
default spec (pid, mount, uts, ipc, network and cgroup namespaces, /proc, /dev,
/sys, masks, capabilities): the median wall time of N runs of each command line,
and of create + start + wait + delete through the Python interface the engine
uses (pallet's runtime in-process, runc through its command line).

    sudo .venv/bin/python bench/bench_runtime.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

PALLET_RUNTIME = str(Path(sys.executable).parent / "pallet-runtime")


def median_ms(fn: Callable[[], None], runs: int, warmups: int = 3) -> float:
    for _ in range(warmups):  # warm caches
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    from tests.support.images import make_busybox_rootfs

    from pallet.linux.syscalls import set_child_subreaper
    from pallet.oci.spec import default_spec
    from pallet.runtime import get_runtime

    set_child_subreaper()
    work = Path(tempfile.mkdtemp(prefix="pallet-bench-runtime-", dir="/var/tmp"))
    rows: list[tuple[str, float]] = []
    n = [0]

    def next_id(tag: str) -> str:
        n[0] += 1
        return f"prt-bench-{tag}-{os.getpid()}-{n[0]}"

    try:
        bundle = work / "bundle"
        make_busybox_rootfs(bundle / "rootfs")
        spec = default_spec(["true"], env=["PATH=/bin"], hostname="bench")
        (bundle / "config.json").write_text(json.dumps(spec))
        peers = [("pallet-runtime", PALLET_RUNTIME)]
        if shutil.which("runc"):
            peers.insert(0, ("runc", "runc"))
        for name, binary in peers:
            root = work / f"state-{name}"

            def cli_run(binary: str = binary, root: Path = root, name: str = name) -> None:
                subprocess.run([binary, "--root", str(root), "run", "--bundle", str(bundle),
                                next_id(name)], check=True, stdin=subprocess.DEVNULL)

            rows.append((f"{name} run (command line)", median_ms(cli_run, args.runs)))
        for name in ("runc", "pallet"):
            if name == "runc" and not shutil.which("runc"):
                continue
            rt = get_runtime(name, work / f"api-{name}")
            devnull = os.open(os.devnull, os.O_RDWR)

            def api_run(rt: object = rt, name: str = name, devnull: int = devnull) -> None:
                cid = next_id("api" + name)
                pid = rt.create(cid, bundle, stdin=devnull, stdout=devnull, stderr=devnull)  # type: ignore[attr-defined]
                rt.start(cid)  # type: ignore[attr-defined]
                _, status = os.waitpid(pid, 0)
                assert os.waitstatus_to_exitcode(status) == 0
                rt.delete(cid)  # type: ignore[attr-defined]

            rows.append((f"{name}: create+start+wait+delete (Python API)", median_ms(api_run, args.runs)))
            os.close(devnull)
        base = dict(rows).get("runc run (command line)")
        print(f"\nOCI bundle running `true` with Docker's default spec: median of {args.runs} runs after 3 warm-ups")
        for label, ms in rows:
            ratio = f"{ms / base:.2f}x runc run" if base else ""
            print(f"  {label:48s} {ms:7.1f} ms   {ratio}")
    finally:
        for name in ("runc", "pallet-runtime"):
            root = work / f"state-{name}"
            if root.exists():
                for d in root.iterdir():
                    if d.is_dir():
                        subprocess.run([PALLET_RUNTIME if name != "runc" else "runc", "--root", str(root),
                                        "delete", "--force", d.name], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
