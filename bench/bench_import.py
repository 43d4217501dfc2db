"""``pallet import`` of a ~250 MB Debian rootfs tarball, side by side with docker and podman.

Run as root from the repository: ``.venv/bin/python bench/bench_import.py [--runs N]``.
The tarball is made once with mmdebstrap and kept under /var/tmp/pallet-bench/.
dockerd is started privately (own data root and socket under /var/tmp, stopped by
pid); podman gets a private --root/--runroot.  Prints per-tool medians, ratios,
and where pallet's time goes.
"""

from __future__ import annotations

import argparse
import hashlib
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

BENCH_DIR = Path("/var/tmp/pallet-bench")
TARBALL = BENCH_DIR / "debian-rootfs.tar"
PACKAGES = "python3,git,perl,curl,ca-certificates,less,vim-tiny"
PALLET = [str(REPO / ".venv" / "bin" / "pallet")]


def make_tarball() -> Path:
    if TARBALL.exists():
        return TARBALL
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    tmp = TARBALL.with_suffix(".partial.tar")
    print(f"making {TARBALL} with mmdebstrap (minbase + {PACKAGES}); about a minute...", flush=True)
    subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(tmp)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.replace(tmp, TARBALL)
    return TARBALL


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, env=env)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {r.stderr.decode(errors='replace')[-500:]}")
    return dt


def quiet(argv: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, capture_output=True, env=env)


def breakdown(tar: Path) -> list[tuple[str, float]]:
    """Where pallet's import time goes, measured in-process on the cached file."""
    from pallet.store.blobs import BlobStore
    from pallet.store.importer import import_layer
    from pallet.store.layers import scan

    out = []
    t = time.perf_counter()
    with open(tar, "rb") as f:
        while f.read(1 << 20):
            pass
    out.append(("read the file (page cache)", time.perf_counter() - t))
    t = time.perf_counter()
    h = hashlib.sha256()
    with open(tar, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    out.append(("sha256 of the file", time.perf_counter() - t))
    t = time.perf_counter()
    with open(tar, "rb") as f:
        scan(f)
    out.append(("tar header scan and checks", time.perf_counter() - t))
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as d:
        t = time.perf_counter()
        with open(tar, "rb") as f:
            import_layer(f, BlobStore(Path(d)))
        out.append(("import_layer: scan+hash+write+fsync", time.perf_counter() - t))
    t = time.perf_counter()
    quiet([*PALLET, "--version"])
    out.append(("pallet CLI start-up (--version)", time.perf_counter() - t))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--no-podman", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    tar = make_tarball()
    size = tar.stat().st_size
    subprocess.run(["cat", str(tar)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    print(f"tarball: {tar} ({size / 1e6:.0f} MB, uncompressed)")

    from tests.support.dockerd import available, private_dockerd

    work = Path(tempfile.mkdtemp(prefix="run-", dir=BENCH_DIR))
    times: dict[str, list[float]] = {"pallet": [], "docker": [], "podman": []}
    pallet_root = work / "pallet"
    podman = ["podman", "--root", str(work / "podman-root"), "--runroot", str(work / "podman-run"),
              "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    use_podman = not args.no_podman and shutil.which("podman") is not None
    use_docker = not args.no_docker and available()
    try:
        with (private_dockerd(BENCH_DIR) if use_docker else _null()) as d:
            denv = d.env() if d is not None else None
            for i in range(args.runs):
                tag = f"bench:{i}"
                times["pallet"].append(timed([*PALLET, "--root", str(pallet_root), "import", str(tar), tag]))
                quiet([*PALLET, "--root", str(pallet_root), "rmi", tag])
                if d is not None:
                    times["docker"].append(timed(["docker", "import", str(tar), tag], denv))
                    quiet(["docker", "rmi", tag], denv)
                if use_podman:
                    times["podman"].append(timed([*podman, "import", "-q", str(tar), tag]))
                    quiet([*podman, "rmi", tag])
                print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items() if v),
                      flush=True)
    finally:
        if use_podman:
            quiet([*podman, "system", "reset", "-f"])
        subprocess.run(["umount", "-R", "-l", str(work)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items() if v}
    print(f"\nimport of a {size / 1e6:.0f} MB rootfs tarball, median of {args.runs} runs:")
    for k, v in med.items():
        ratio = f"  (pallet/{k} = {med['pallet'] / v:.2f})" if k != "pallet" else ""
        print(f"  {k:8s} {v:6.2f} s  {size / 1e6 / v:6.0f} MB/s{ratio}")
    print("\nwhere pallet's time goes (in-process, same file):")
    for what, dt in breakdown(tar):
        print(f"  {what:40s} {dt:6.2f} s")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


if __name__ == "__main__":
    main()
