"""Helpers for the container lifecycle tests: a runtime-parametrized CLI and leak checks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import Pallet


def pallet_runtime_available() -> bool:
    try:
        from pallet.runtime import get_runtime  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return False
    return True


def mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        return [ln.split(" ", 5)[4] for ln in f if ln.split(" ", 5)[4].startswith(prefix)]


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or cwd mentions ``text`` (our root): monitors, runtimes, containers."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        try:
            with open(f"/proc/{e}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append(int(e))
    return out


def eventually(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def remove_everything(p: Pallet) -> None:
    ids = p("ps", "-aq", "--no-trunc").out.split()
    if ids:
        p("rm", "-f", "-v", *ids)


def assert_clean(p: Pallet) -> None:
    """No container record, mount or process of this root is left."""
    root = p.root
    assert eventually(lambda: not mounts_under(root / "containers")), mounts_under(root)
    assert eventually(lambda: not processes_mentioning(str(root))), processes_mentioning(str(root))
    cdir = root / "containers"
    left = [e for e in os.listdir(cdir) if e != "names"] if cdir.exists() else []
    assert left == [], left
    names = os.listdir(cdir / "names") if (cdir / "names").exists() else []
    assert names == [], names


def cgroups_of(ids: list[str]) -> list[str]:
    import glob

    out: list[str] = []
    for cid in ids:
        for pat in (f"/sys/fs/cgroup/*/{cid}*", f"/sys/fs/cgroup/*/*/{cid}*", f"/sys/fs/cgroup/*/*/*{cid}*"):
            out += glob.glob(pat)
    return out
