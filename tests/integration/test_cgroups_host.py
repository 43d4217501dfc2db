"""The cgroup conformance suite against this host's real kernel.

v1: the controllers mounted under /sys/fs/cgroup (hybrid layout).
v2: the host's own cgroup2 mount; on a hybrid host it carries (almost) no
controllers, so only the lifecycle, membership, freezer and stats checks run
there and the limit checks say why they are skipped.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from pallet.runtime import cgroups
from pallet.runtime.cgroups import Manager
from tests.unit.test_cgroups_conformance import CHECKS, Backend

ROOT = "/sys/fs/cgroup"
V2_ROOT = ROOT if cgroups.detect(ROOT) == "v2" else os.path.join(ROOT, "unified")


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class Procs:
    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self) -> int:
        p = subprocess.Popen(["sleep", "60"])
        self.procs[p.pid] = p
        return p.pid

    def exit(self, pid: int) -> None:
        p = self.procs.pop(pid)
        p.kill()
        p.wait()

    def close(self) -> None:
        for pid in list(self.procs):
            self.exit(pid)


def _oom(m: Manager) -> None:
    m.apply({"memory": {"limit": 16 << 20, "swap": 16 << 20}})
    p = subprocess.Popen(
        ["sh", "-c", "read x; exec dd if=/dev/zero of=/dev/null bs=64M count=1"],
        stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    m.add(p.pid)
    assert p.stdin is not None
    p.stdin.write(b"go\n")
    p.stdin.close()
    assert p.wait(timeout=30) == -9  # SIGKILL from the OOM killer


_CHAR_NODES = {(1, 3): "/dev/null", (1, 5): "/dev/zero", (1, 7): "/dev/full", (1, 9): "/dev/urandom"}


def _can_read(m: Manager, major: int, minor: int) -> bool:
    """Start a reader, move it into the cgroup, then let it open the node."""
    path = _CHAR_NODES[(major, minor)]
    p = subprocess.Popen(["sh", "-c", f"read x; exec head -c 1 {path}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    m.add(p.pid)
    out, _ = p.communicate(b"go\n", timeout=30)
    return p.returncode == 0  # head exits 1 when it cannot open the node


def _frozen_v1(m: Manager, pid: int) -> bool:
    return m.fs.read(os.path.join(m.dirs["freezer"], "freezer.state")).strip() == "FROZEN" and _proc_state(pid) in "DS"  # type: ignore[attr-defined]


def _frozen_v2(m: Manager, pid: int) -> bool:
    with open(os.path.join(m.dir, "cgroup.events")) as f:  # type: ignore[attr-defined]
        return "frozen 1" in f.read()


def _controllers_v2() -> set[str]:
    with open(os.path.join(V2_ROOT, "cgroup.controllers")) as f:
        return set(f.read().split())


@pytest.fixture(params=["host-v1", "host-v2"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    prefix = f"/pallet-test-psc-{secrets.token_hex(4)}"
    procs = Procs()
    if request.param == "host-v1":
        if cgroups.detect(ROOT) == "v2":
            pytest.skip("this host has no cgroup v1 hierarchy")
        b = Backend(
            name="host-v1", root=ROOT, prefix=prefix, spawn=procs.spawn, exit=procs.exit,
            version=cgroups.detect(ROOT), oom=_oom, is_frozen=_frozen_v1, can_read=_can_read,
            features={"memory", "cpu", "cpuset", "pids", "freezer", "devices", "oom"},
        )
    else:
        if not os.path.exists(os.path.join(V2_ROOT, "cgroup.controllers")):
            pytest.skip("this host has no cgroup v2 hierarchy")
        ctl = _controllers_v2()
        # the eBPF device filter needs no controller: it works on any v2 cgroup
        feats = {"freezer", "devices"} | ({"memory", "oom"} if "memory" in ctl else set()) | (ctl & {"cpu", "cpuset", "pids"})
        b = Backend(
            name="host-v2 (controllers: " + (" ".join(sorted(ctl)) or "none") + ")", root=V2_ROOT, prefix=prefix,
            spawn=procs.spawn, exit=procs.exit, version="v2", oom=_oom, is_frozen=_frozen_v2, features=feats,
            can_read=_can_read,
        )
    try:
        yield b
    finally:
        procs.close()
        time.sleep(0.01)
        cgroups.manager(prefix, root=b.root).destroy()
        assert not cgroups.manager(prefix, root=b.root).exists()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_conformance(backend: Backend, check) -> None:  # type: ignore[no-untyped-def]
    check(backend)
