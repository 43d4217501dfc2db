"""``pallet build`` side by side with Docker's classic builder (``DOCKER_BUILDKIT=0``).

Run as root from the repository: ``.venv/bin/python bench/bench_build.py [--runs N] [--only NAME]``.
Both builders get the same Dockerfile and context, and the same busybox base image
(``docker import`` / ``pallet import`` of the test tarball).  dockerd is started
privately (own data root and socket, stopped by pid).  pallet runs as installed (the
``pallet`` command of the virtualenv, as the other benchmarks), the two tools take
turns within each run so that a change of the machine's load hits both.  Three cases:

- a fully cached rebuild (nothing but hashing and cache lookups);
- a context of 20,000 small files copied by one COPY (hashing and transfer);
- a RUN that writes a 200 MB file (the time to commit that layer).

Prints medians per tool and pallet/docker ratios.
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

PALLET = [str(REPO / ".venv" / "bin" / "pallet")]
BASE = "busybox:bench"


def run(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, env=env)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {r.stderr.decode(errors='replace')[-800:]}")
    return dt


def contexts(base: Path) -> dict[str, Path]:
    out = {}
    cached = base / "cached"
    cached.mkdir(parents=True)
    (cached / "app.py").write_text("print('hi')\n")
    (cached / "requirements.txt").write_text("flask\n")
    (cached / "Dockerfile").write_text(
        f"FROM {BASE}\nWORKDIR /app\nCOPY . /app\nRUN echo installed > /app/done\nEXPOSE 8000\n"
        'CMD ["python", "app.py"]\n')
    out["cached rebuild"] = cached
    many = base / "many"
    (many / "files").mkdir(parents=True)
    for i in range(200):
        d = many / "files" / f"d{i:03d}"
        d.mkdir()
        for j in range(100):
            (d / f"f{j:03d}.txt").write_text(f"file {i} {j}\n" * 4)
    (many / "Dockerfile").write_text(f"FROM {BASE}\nCOPY files /files\n")
    out["20,000 files"] = many
    big = base / "big"
    big.mkdir()
    (big / "Dockerfile").write_text(
        f"FROM {BASE}\nRUN head -c 209715200 /dev/urandom > /big.bin\n")
    out["200 MB layer"] = big
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = ap.parse_args()
    from tests.support.dockerd import available, private_dockerd
    from tests.support.images import make_busybox_tar

    tmp = Path(tempfile.mkdtemp(prefix="pallet-bench-build-", dir="/var/tmp"))
    root = tmp / "pallet-root"
    root.mkdir()
    pallet = [*PALLET, "--root", str(root)]
    results: dict[str, dict[str, float]] = {}
    try:
        tar = make_busybox_tar(tmp / "busybox.tar")
        run([*pallet, "import", str(tar), BASE])
        ctxs = {k: v for k, v in contexts(tmp / "ctx").items() if args.only in k}
        docker_ctx = private_dockerd(tmp) if available() else None
        with docker_ctx if docker_ctx is not None else _nothing() as d:
            denv = d.env() if d is not None else None
            if d is not None:
                run(["docker", "import", str(tar), BASE], env=denv)
            for name, ctx in ctxs.items():
                results[name] = {}
                tools: list[tuple[str, list[str], dict[str, str] | None]] = [("pallet", pallet, None)]
                if d is not None:
                    tools.append(("docker", ["docker"], denv))
                times: dict[str, list[float]] = {tool: [] for tool, _, _ in tools}
                for i in range(args.runs):
                    for tool, argv, env in tools:
                        tag = f"bench-{tool}:{i}"
                        if name == "cached rebuild":
                            run([*argv, "build", "-t", tag, str(ctx)], env=env)  # warm the cache
                            times[tool].append(run([*argv, "build", "-t", tag, str(ctx)], env=env))
                        else:
                            times[tool].append(run([*argv, "build", "--no-cache", "-t", tag, str(ctx)], env=env))
                        if name == "200 MB layer":
                            subprocess.run([*argv, "rmi", "-f", tag], capture_output=True, env=env)
                for tool, ts in times.items():
                    results[name][tool] = statistics.median(ts)
    finally:
        subprocess.run(["umount", "-R", "-l", str(root)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmedians of {args.runs} runs (seconds)")
    print(f"{'case':<18} {'pallet':>9} {'docker':>9} {'pallet/docker':>14}")
    for name, r in results.items():
        p, dk = r.get("pallet", float("nan")), r.get("docker", float("nan"))
        print(f"{name:<18} {p:>9.3f} {dk:>9.3f} {p / dk:>14.2f}")


class _nothing:  # noqa: N801 - a null context manager that yields None
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


if __name__ == "__main__":
    os.environ.setdefault("DOCKER_BUILDKIT", "0")
    main()
