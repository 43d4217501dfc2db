"""Unpacking a layer into a snapshot (pallet.store.layers.unpack) vs GNU ``tar -x`` of the same file.

Run as root: ``.venv/bin/python bench/bench_unpack.py [--runs N]``.  Uses the
Debian rootfs tarball of bench_import.py (made on first use), plain and gzip.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def main() -> None:
    from bench_import import BENCH_DIR, make_tarball

    from pallet.oci import mediatypes as mt
    from pallet.store.layers import unpack

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    tar = make_tarball()
    gz = BENCH_DIR / "debian-rootfs.tar.gz"
    if not gz.exists():
        subprocess.run(f"gzip -c {tar} > {gz}.partial && mv {gz}.partial {gz}", shell=True, check=True)
    for f in (tar, gz):
        subprocess.run(["cat", str(f)], stdout=subprocess.DEVNULL, check=True)
    work = Path(tempfile.mkdtemp(prefix="unpack-", dir=BENCH_DIR))
    results: dict[str, list[float]] = {}
    try:
        for i in range(args.runs):
            for label, path, media, tarflags in (
                ("plain", tar, mt.OCI_LAYER, "-xf"),
                ("gzip", gz, mt.OCI_LAYER_GZIP, "-xzf"),
            ):
                dest = work / f"p-{label}-{i}"
                t = time.perf_counter()
                unpack(path, media, dest)
                results.setdefault(f"pallet unpack ({label})", []).append(time.perf_counter() - t)
                shutil.rmtree(dest)
                dest.mkdir()
                t = time.perf_counter()
                subprocess.run(["tar", "--numeric-owner", "--xattrs", "-p", tarflags, str(path), "-C", str(dest)],
                               check=True)
                results.setdefault(f"tar -x ({label})", []).append(time.perf_counter() - t)
                shutil.rmtree(dest)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nunpack of a {tar.stat().st_size / 1e6:.0f} MB layer, median of {args.runs} runs:")
    med = {k: statistics.median(v) for k, v in results.items()}
    for label in ("plain", "gzip"):
        p, t = med[f"pallet unpack ({label})"], med[f"tar -x ({label})"]
        print(f"  {label:6s} pallet {p:5.2f} s   tar -x {t:5.2f} s   pallet/tar = {p / t:.2f}")


if __name__ == "__main__":
    main()
