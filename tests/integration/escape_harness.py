"""Run a shell script inside a default (Docker-like) busybox container.

Two drivers with one interface, ``run(script, **flags) -> Result``:

* ``BundleDriver``: writes an OCI bundle (busybox rootfs + a Docker-like spec
  passed through pallet's own flag handling, pallet.engine.resources) and runs
  it with an OCI runtime binary: ``runc`` (the reference) or pallet's
  ``pallet-runtime``;
* ``PalletDriver``: ``pallet [--runtime R] run --rm`` on the busybox image.

Every container gets its cgroup under ``/pallet-test-psc-<random>``, removed
after the test with its whole subtree.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pallet.engine.resources import apply_to_spec, parse_flags
from pallet.runtime import cgroups

MB = 1 << 20
ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Result:
    rc: int
    out: str


def docker_like_spec(args: list[str], cgroups_path: str, hostname: str) -> dict[str, Any]:
    """The spec Docker gives a default container (before resources and security)."""
    namespaces = ["pid", "network", "ipc", "uts", "mount"]
    if cgroups.detect() == "v2":
        namespaces.append("cgroup")
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [ENV_PATH],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in namespaces],
            "cgroupsPath": cgroups_path,
            "maskedPaths": [
                "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def pallet_runtime_available() -> bool:
    return importlib.util.find_spec("pallet.runtime.cli") is not None


class BundleDriver:
    def __init__(self, runtime: str, tmp: Path, rootfs_template: Path) -> None:
        self.runtime = runtime
        self.tmp = tmp
        self.template = rootfs_template
        self.parent = f"/pallet-test-psc-{secrets.token_hex(4)}"
        self.state = tmp / f"{runtime}-state"
        self.state.mkdir(exist_ok=True)
        self.ids: list[str] = []

    def _argv(self) -> list[str]:
        if self.runtime == "runc":
            return ["runc", "--root", str(self.state)]
        return [sys.executable, "-m", "pallet.runtime.cli", "--root", str(self.state)]

    def bundle(self, script: str, binds: list[tuple[str, str]] = (), **flags: Any) -> tuple[str, Path]:  # type: ignore[assignment]
        cid = f"psc-{secrets.token_hex(6)}"
        b = self.tmp / cid
        b.mkdir()
        shutil.copytree(self.template, b / "rootfs", symlinks=True)
        spec = docker_like_spec(["sh", "-c", script], f"{self.parent}/{cid}", cid[:12])
        for src, dst in binds:
            spec["mounts"].append({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rw"]})
        spec = apply_to_spec(spec, parse_flags(**flags))
        (b / "config.json").write_text(json.dumps(spec))
        return cid, b

    def run(self, script: str, *, timeout: float = 60, binds: list[tuple[str, str]] = (), **flags: Any) -> Result:  # type: ignore[assignment]
        cid, b = self.bundle(script, binds, **flags)
        self.ids.append(cid)
        try:
            p = subprocess.run(
                [*self._argv(), "run", "--bundle", str(b), cid],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        finally:
            subprocess.run([*self._argv(), "delete", "--force", cid], capture_output=True)
        return Result(p.returncode, p.stdout.decode(errors="replace"))

    def start(self, script: str, **flags: Any) -> str:
        """Run detached (output to <bundle>/out); returns the container id."""
        cid, b = self.bundle(script, **flags)
        self.ids.append(cid)
        with open(b / "out", "wb") as out:
            subprocess.run(
                [*self._argv(), "run", "--detach", "--bundle", str(b), cid],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=True, timeout=60,
            )
        return cid

    def status(self, cid: str) -> str:
        p = subprocess.run([*self._argv(), "state", cid], capture_output=True, text=True)
        return str(json.loads(p.stdout)["status"]) if p.returncode == 0 else "gone"

    def wait(self, cid: str, timeout: float = 30) -> None:
        import time

        deadline = time.monotonic() + timeout
        while self.status(cid) not in ("stopped", "gone"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"container {cid} still running")
            time.sleep(0.05)

    def exec(self, cid: str, *argv: str, timeout: float = 60) -> Result:
        p = subprocess.run(
            [*self._argv(), "exec", cid, *argv],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
        )
        return Result(p.returncode, p.stdout.decode(errors="replace"))

    def delete(self, cid: str) -> None:
        subprocess.run([*self._argv(), "delete", "--force", cid], capture_output=True)

    def cgroup(self, cid: str) -> cgroups.Manager:
        return cgroups.manager(f"{self.parent}/{cid}")

    def output(self, cid: str) -> str:
        return (self.tmp / cid / "out").read_text(errors="replace")

    def close(self) -> None:
        for cid in self.ids:
            subprocess.run([*self._argv(), "delete", "--force", cid], capture_output=True)
        cgroups.manager(self.parent).destroy()


class PalletDriver:
    """``pallet run --rm`` through the CLI (once the container lifecycle exists)."""

    def __init__(self, pallet: Any, image: str) -> None:
        self.pallet = pallet  # a tests.support.cli.Pallet, with its runtime chosen
        self.image = image

    def run(self, script: str, *, timeout: float = 60, binds: list[tuple[str, str]] = (), **flags: Any) -> Result:  # type: ignore[assignment]
        argv = ["run", "--rm"]
        for src, dst in binds:
            argv += ["-v", f"{src}:{dst}"]
        for k, v in flags.items():
            opt = "--" + k.replace("_", "-")
            if isinstance(v, bool):
                argv += [opt] if v else []
            elif isinstance(v, list | tuple):
                for x in v:
                    argv += [opt, str(x)]
            else:
                argv += [opt, str(v)]
        r = self.pallet(*argv, self.image, "sh", "-c", script, timeout=timeout)
        return Result(r.rc, r.out + r.err)

    def close(self) -> None:
        pass


def host_block_device() -> tuple[int, int] | None:
    """major:minor of a real block device of the host (the first disk in /sys/block)."""
    try:
        names = sorted(os.listdir("/sys/block"))
    except OSError:
        return None
    for n in names:
        if n.startswith(("loop", "ram", "zram")):
            continue
        try:
            with open(f"/sys/block/{n}/dev") as f:
                major, minor = f.read().strip().split(":")
            return int(major), int(minor)
        except OSError:
            continue
    return None
