"""Pull and push of a ~250 MB image against one loopback reference registry:
pallet vs ``skopeo copy`` (to / from a local ``dir:``) vs ``docker pull``.

    python bench/bench_pull.py [--runs 5] [--layers 5] [--layer-mb 50]

Each tool starts cold every run: pallet with a fresh root, skopeo with a fresh
directory, Docker after the image is removed.  Pushes go to a fresh registry
each run, so no tool can skip or mount a blob.  Prints the median of the runs
and the ratios to pallet.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import dockerd as dockerd_support  # noqa: E402
from tests.support.registry import DirSink, registry  # noqa: E402

from pallet.oci import mediatypes as mt  # noqa: E402
from pallet.oci.digest import of_bytes  # noqa: E402
from pallet.oci.manifest import Descriptor, Manifest  # noqa: E402
from pallet.oci.reference import parse  # noqa: E402
from pallet.registry.push import push  # noqa: E402
from pallet.registry.transport import Registry  # noqa: E402

PALLET = [sys.executable, "-m", "pallet"]


def make_image(sink: DirSink, layers: int, layer_mb: int) -> tuple[bytes, str, int]:
    """Layers of random data (incompressible, like binaries and media), gzip'd."""
    descs, diff_ids, total = [], [], 0
    for i in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            payload = os.urandom(layer_mb << 20)
            info = tarfile.TarInfo(f"data/layer{i}.bin")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
        raw = buf.getvalue()
        gz = gzip.compress(raw, compresslevel=1, mtime=0)
        sink.put(gz)
        diff_ids.append(of_bytes(raw))
        descs.append(Descriptor(mt.DOCKER_LAYER_GZIP, of_bytes(gz), len(gz)))
        total += len(gz)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/true"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    sink.put(config)
    man = Manifest(mt.DOCKER_MANIFEST, Descriptor(mt.DOCKER_CONFIG, of_bytes(config), len(config)),
                   tuple(descs))
    return man.to_json(), mt.DOCKER_MANIFEST, total


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    p = subprocess.run(argv, capture_output=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {p.stderr.decode()[-800:]}")


def report(title: str, results: dict[str, list[float]], mb: float) -> None:
    print(f"\n{title}")
    base = statistics.median(results["pallet"])
    for name, xs in results.items():
        med = statistics.median(xs)
        print(f"  {name:<26} median {med:6.2f} s  ({mb / med:6.0f} MB/s)  "
              f"ratio to pallet {med / base:5.2f}   runs: {', '.join(f'{x:.2f}' for x in xs)}")


def host_tree_tar(dest: Path, limit_mb: int) -> int:
    """A tar of real files (host binaries and libraries) up to ``limit_mb``: content that
    compresses like a typical image layer."""
    total = 0
    with tarfile.open(dest, "w") as tf:
        for top in ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/share"):
            for dirpath, _, files in os.walk(top):
                for f in sorted(files):
                    p = os.path.join(dirpath, f)
                    if not os.path.isfile(p) or os.path.islink(p):
                        continue
                    size = os.path.getsize(p)
                    if total + size > limit_mb << 20:
                        return total
                    tf.add(p, arcname=p.lstrip("/"), recursive=False)
                    total += size
    return total


def bench_compressing_push(work: Path, docker: dockerd_support.Dockerd, runs: int,
                           tree_mb: int) -> None:
    """An image whose layer is kept uncompressed (pallet import / docker import): both
    engines gzip it on push.  pallet compresses once and keeps the gzip blob, so its
    first push is reported apart from the later ones."""
    tar = work / "tree.tar"
    size = host_tree_tar(tar, tree_mb)
    root = work / "pallet-root-compress"
    run([*PALLET, "--root", str(root), "import", str(tar), "bench/tree:v1"])
    run(["docker", "import", str(tar), "bench/tree:v1"], env=docker.env())
    res: dict[str, list[float]] = {"pallet": [], "docker push": []}
    first = 0.0
    for i in range(runs + 1):
        with registry(base=work) as fresh:
            target = f"{fresh.host}/bench/tree:v1"
            run([*PALLET, "--root", str(root), "tag", "bench/tree:v1", target])
            t = timed(lambda t=target: run([*PALLET, "--root", str(root), "push", "-q", t]))
            if i == 0:
                first = t
            else:
                res["pallet"].append(t)
        with registry(base=work) as fresh:
            target = f"{fresh.host}/bench/tree:v1"
            run(["docker", "tag", "bench/tree:v1", target], env=docker.env())
            t = timed(lambda t=target: run(["docker", "push", "-q", t], env=docker.env()))
            if i:
                res["docker push"].append(t)
            run(["docker", "rmi", target], env=docker.env())
    print(f"\npush of an uncompressed {size / 1e6:.0f} MB layer of host files (gzip on push):")
    print(f"  pallet first push (compresses, keeps the gzip blob): {first:.2f} s")
    report("  later pushes to an empty registry", res, size / 1e6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--layer-mb", type=int, default=50)
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--no-compress", action="store_true",
                    help="skip the push of an uncompressed layer")
    ap.add_argument("--tree-mb", type=int, default=200)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pallet-bench-pull-", dir="/var/tmp"))
    try:
        src = DirSink(work / "src")
        data, media, total = make_image(src, args.layers, args.layer_mb)
        mb = total / 1e6
        print(f"image: {args.layers} layers, {mb:.0f} MB compressed; {args.runs} runs each")
        with contextlib.ExitStack() as stack:
            reg = stack.enter_context(registry(base=work))
            ref = f"{reg.host}/bench/img:v1"
            with Registry(reg.host) as client:
                push(client, parse(ref), src, data, media)
            docker = None
            if not args.no_docker and dockerd_support.available():
                docker = stack.enter_context(dockerd_support.private_dockerd(
                    base=work, extra_args=(f"--insecure-registry={reg.host}",)))
            pulls: dict[str, list[float]] = {"pallet": [], "skopeo copy -> dir:": []}
            if docker:
                pulls["docker pull"] = []
            for i in range(args.runs):
                root = work / f"pallet-root-{i}"
                pulls["pallet"].append(timed(lambda r=root: run(
                    [*PALLET, "--root", str(r), "pull", "-q", ref])))
                d = work / f"skopeo-dir-{i}"
                pulls["skopeo copy -> dir:"].append(timed(lambda d=d: run(
                    ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                     f"dir:{d}"])))
                if docker:
                    pulls["docker pull"].append(timed(lambda: run(
                        ["docker", "pull", "-q", ref], env=docker.env())))
                    run(["docker", "rmi", ref], env=docker.env())
                if i:
                    shutil.rmtree(root, ignore_errors=True)
                    shutil.rmtree(d, ignore_errors=True)
            report("pull (cold, loopback)", pulls, mb)

            pushes: dict[str, list[float]] = {"pallet": [], "skopeo copy dir: ->": []}
            keep_root, keep_dir = work / "pallet-root-0", work / "skopeo-dir-0"
            for _ in range(args.runs):
                with registry(base=work) as fresh:
                    target = f"{fresh.host}/bench/img:v1"
                    from pallet.config import Config
                    from pallet.engine.distribution import stores

                    _, images = stores(Config(root=keep_root))
                    images.tag(ref, parse(target))
                    pushes["pallet"].append(timed(lambda t=target: run(
                        [*PALLET, "--root", str(keep_root), "push", "-q", t])))
                with registry(base=work) as fresh:
                    target = f"{fresh.host}/bench/img:v1"
                    pushes["skopeo copy dir: ->"].append(timed(lambda t=target: run(
                        ["skopeo", "copy", "-q", "--dest-tls-verify=false", f"dir:{keep_dir}",
                         f"docker://{t}"])))
            report("push (to an empty registry, loopback)", pushes, mb)

            if docker and not args.no_compress:
                bench_compressing_push(work, docker, args.runs, args.tree_mb)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
