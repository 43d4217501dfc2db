"""A private Docker engine for differential tests and benchmarks.

It gets its own data root, exec root, pid file and unix socket under a
temporary directory, no bridge and no firewall changes, and is stopped by its
pid.  Use the ``dockerd`` session fixture (tests/conftest.py) or
``private_dockerd()`` directly in benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dockerd:
    host: str  # unix:///.../docker.sock
    data_root: Path
    pid: int

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def docker(self, *args: str, input: bytes | None = None, check: bool = True,
               timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", *args], input=input, capture_output=True,
                              env=self.env(), check=check, timeout=timeout)


def available() -> bool:
    return shutil.which("dockerd") is not None and shutil.which("docker") is not None


@contextlib.contextmanager
def private_dockerd(base: Path | None = None, extra_args: tuple[str, ...] = ()) -> Iterator[Dockerd]:
    tmp = Path(tempfile.mkdtemp(prefix="pallet-dockerd-", dir=str(base) if base else "/var/tmp"))
    sock = tmp / "docker.sock"
    log = open(tmp / "dockerd.log", "wb")  # noqa: SIM115 - closed in finally
    argv = [
        "dockerd",
        "--data-root", str(tmp / "data"),
        "--exec-root", str(tmp / "exec"),
        "--pidfile", str(tmp / "docker.pid"),
        "-H", f"unix://{sock}",
        "--bridge=none", "--iptables=false", "--ip-masq=false",
        "--storage-driver=overlay2",
        *extra_args,
    ]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    d = Dockerd(host=f"unix://{sock}", data_root=tmp / "data", pid=proc.pid)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {(tmp / 'dockerd.log').read_text()[-2000:]}")
            r = subprocess.run(["docker", "version"], capture_output=True, env=d.env())
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("dockerd did not come up within 60 s")
            time.sleep(0.2)
        yield d
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        # dockerd leaves its overlay and netns mounts behind when killed; clear them.
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f if str(tmp) in line.split()[1]]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
