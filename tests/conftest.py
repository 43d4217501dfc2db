"""Shared fixtures and the three test tiers (unit / integration / compat).

Tests under tests/unit, tests/integration and tests/compat get the matching
marker automatically.  Integration and compat tests need root; each gets its
own pallet root directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Pallet
from tests.support.images import busybox_available, make_busybox_tar

IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, mounts, cgroups)")
needs_busybox = pytest.mark.skipif(
    not busybox_available(), reason="needs Debian's busybox-static for the test image"
)


def needs_tool(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(name) is None, reason=f"needs {name} on PATH")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "integration", "compat"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
                if tier != "unit" and not IS_ROOT:
                    item.add_marker(pytest.mark.skip(reason=f"{tier} tests need root"))


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not busybox_available():
        pytest.skip("needs Debian's busybox-static")
    return make_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")


@pytest.fixture
def pallet_root(tmp_path: Path) -> Iterator[Path]:
    """A fresh pallet root for one test; anything mounted under it is unmounted after."""
    root = tmp_path / "pallet-root"
    root.mkdir()
    yield root
    _unmount_under(root)


def _unmount_under(root: Path) -> None:
    import subprocess

    prefix = str(root.resolve())
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1] for line in f]
    for t in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", t], capture_output=True)


@pytest.fixture
def pallet(pallet_root: Path) -> Pallet:
    return Pallet(pallet_root)


@pytest.fixture
def busybox_image(pallet: Pallet, busybox_tar: Path) -> str:
    """The busybox test image imported into the test's own root as ``busybox:test``."""
    pallet.ok("import", str(busybox_tar), "busybox:test", "--change", 'CMD ["sh"]')
    return "busybox:test"


@pytest.fixture(scope="session")
def dockerd() -> Iterator[object]:
    """One private Docker engine for the whole test session (compat tests)."""
    from tests.support.dockerd import available, private_dockerd

    if not available():
        pytest.skip("needs Debian's docker.io (dockerd)")
    if not IS_ROOT:
        pytest.skip("dockerd needs root")
    with private_dockerd() as d:
        yield d


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroups() -> Iterator[None]:
    """Tests put their cgroups under parents named ``pallet-test-*`` (and the engine under
    ``pallet`` and ``pallet-build``); a runtime removes only the leaves it made (runc also
    makes them in the unified tree of a hybrid host), so the parents go here, at the end of
    the session, once empty: a parent that still holds a container stays."""
    yield
    if not IS_ROOT:
        return
    base = Path("/sys/fs/cgroup")
    tops = [base] + [p for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
    for top in tops:
        try:
            parents = [p for p in top.iterdir() if p.is_dir() and (
                p.name.startswith("pallet-test-") or p.name in ("pallet", "pallet-build"))]
        except OSError:
            continue
        for parent in parents:
            dirs = sorted((d for d, _, _ in os.walk(parent)), key=len, reverse=True)
            for d in dirs:
                # a cgroup made in the last minute may be a container being created right
                # now by another pallet on this host (empty until its process joins it)
                with contextlib.suppress(OSError):  # still has processes: leave it to be seen
                    if time.time() - os.stat(d).st_ctime > 60 or d == str(parent):
                        os.rmdir(d)
