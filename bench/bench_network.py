#!/usr/bin/env python3
"""The cost of networking per container, and throughput through a published port.

1. `run --rm IMG true` on the default network against `--network none`, for
   pallet and for podman (runc), medians of several runs: the added cost.
2. Requests per second (ApacheBench `ab`, loopback, bounded in time) to a
   busybox httpd in a container: through pallet's published port on localhost,
   to the container's own address, and through podman's published port.

Private roots under /var/tmp; pallet's default bridge here is pnwb0 on
10.231.254.0/24.

    sudo .venv/bin/python bench/bench_network.py [--runs 9] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

PALLET = [str(Path(sys.executable).parent / "pallet")]
ENV = {**os.environ, "PALLET_BRIDGE": "pnwb0", "PALLET_BRIDGE_SUBNET": "10.231.254.0/24"}
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=env or ENV).stdout


def median_time(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    run(argv, env)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        run(argv, env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str) -> None:
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310 - loopback only
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def rps(url: str, seconds: int) -> float:
    out = subprocess.run(["ab", "-q", "-k", "-c", "8", "-t", str(seconds), "-n", "10000000", url],
                         capture_output=True, text=True).stdout
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--seconds", type=int, default=3)
    args = ap.parse_args()
    from tests.support.images import make_busybox_tar

    work = Path(tempfile.mkdtemp(prefix="pallet-bench-net-", dir="/var/tmp"))
    root = work / "pallet"
    p = [*PALLET, "--root", str(root)]
    rows: list[tuple[str, float]] = []
    rates: list[tuple[str, float]] = []
    pr: list[str] = []
    penv = dict(os.environ)
    try:
        tar = make_busybox_tar(work / "busybox.tar")
        run([*p, "import", "--change", 'CMD ["sh"]', str(tar), "bench:busybox"])
        net = median_time([*p, "run", "--rm", "bench:busybox", "true"], args.runs)
        none = median_time([*p, "run", "--rm", "--network", "none", "bench:busybox", "true"], args.runs)
        rows += [("pallet run --rm (bridge)", net), ("pallet run --rm --network none", none)]
        port = free_port()
        run([*p, "run", "-d", "--name", "web", "-p", f"{port}:80", "bench:busybox", *HTTPD])
        wait_http(f"http://127.0.0.1:{port}/hostname")
        ip = json.loads(run([*p, "inspect", "web"]))[0]["NetworkSettings"]["IPAddress"]
        rates.append(("pallet published port (127.0.0.1)", rps(f"http://127.0.0.1:{port}/hostname", args.seconds)))
        rates.append(("pallet container address", rps(f"http://{ip}/hostname", args.seconds)))
        run([*p, "rm", "-f", "web"])

        if shutil.which("podman"):
            conf = work / "containers.conf"
            conf.write_text("[containers]\ndefault_ulimits = []\n")
            pr = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "podman-run"),
                  "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]
            penv = {**os.environ, "CONTAINERS_CONF": str(conf)}
            try:
                run([*pr, "import", "--change", 'CMD ["sh"]', str(tar), "bench:busybox"], penv)
                pn = median_time([*pr, "run", "--rm", "bench:busybox", "true"], args.runs, penv)
                pnone = median_time([*pr, "run", "--rm", "--network", "none", "bench:busybox", "true"], args.runs,
                                    penv)
                rows += [("podman run --rm (bridge)", pn), ("podman run --rm --network none", pnone)]
                port = free_port()
                run([*pr, "run", "-d", "--name", "web", "-p", f"{port}:80", "bench:busybox", *HTTPD], penv)
                wait_http(f"http://127.0.0.1:{port}/hostname")
                rates.append(("podman published port (127.0.0.1)",
                              rps(f"http://127.0.0.1:{port}/hostname", args.seconds)))
                subprocess.run([*pr, "rm", "-f", "web"], capture_output=True, env=penv)
            except subprocess.CalledProcessError as e:
                print(f"podman unusable here: {e.stderr[-300:]}")
    finally:
        subprocess.run([*p, "rm", "-f", "web"], capture_output=True, env=ENV)
        from pallet.config import Config
        from pallet.engine import networks

        cfg = Config.from_env(root=str(root))
        try:
            networks.reconcile(cfg)
            networks.destroy_default(cfg)
        except Exception as e:  # noqa: BLE001 - report, keep cleaning
            print(f"cleanup: {e}")
        if pr:
            subprocess.run([*pr, "rmi", "-af"], capture_output=True, env=penv)
        with open("/proc/self/mounts") as f:
            for t in sorted((ln.split()[1] for ln in f if ln.split()[1].startswith(str(work))), reverse=True):
                subprocess.run(["umount", "-l", t], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'command':40} {'median':>10}")
    for name, secs in rows:
        print(f"{name:40} {secs * 1000:8.0f} ms")
    d = dict(rows)
    pallet_cost = d["pallet run --rm (bridge)"] - d["pallet run --rm --network none"]
    print(f"networking adds: pallet {pallet_cost * 1000:.0f} ms", end="")
    if "podman run --rm (bridge)" in d:
        podman_cost = d["podman run --rm (bridge)"] - d["podman run --rm --network none"]
        print(f", podman {podman_cost * 1000:.0f} ms (ratio {pallet_cost / podman_cost:.2f}x; target <= 1)")
    else:
        print()
    print(f"\n{'requests/s (ab -c 8 -k, ' + str(args.seconds) + ' s)':40} {'rate':>10}")
    for label, r in rates:
        print(f"{label:40} {r:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
