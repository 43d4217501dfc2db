"""Archives between pallet and Podman: Podman's docker-archive and oci-archive load in
pallet, and pallet's docker-archive loads in Podman with the same image ID."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Pallet
from tests.support.images import busybox_available, make_busybox_tar

pytestmark = [
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
    pytest.mark.skipif(not busybox_available(), reason="needs busybox-static"),
]


@pytest.fixture
def podman_dirs(tmp_path: Path) -> Iterator[Path]:
    """Podman's own storage for the test; its run root must be a short path."""
    run = Path(tempfile.mkdtemp(prefix="prg-pod-", dir="/tmp"))
    (tmp_path / "podman-run").symlink_to(run)
    yield tmp_path
    shutil.rmtree(run, ignore_errors=True)


def _podman(tmp: Path, *args: str) -> str:
    run = (tmp / "podman-run").resolve()
    argv = ["podman", "--root", str(tmp / "podman-root"), "--runroot", str(run),
            "--storage-driver", "vfs", *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"podman {' '.join(args)}: {p.stderr[-1000:]}"
    return p.stdout


def test_archives_both_ways_with_podman(pallet: Pallet, podman_dirs: Path) -> None:
    tmp_path = podman_dirs
    tar = make_busybox_tar(tmp_path / "bb.tar")
    iid = pallet.ok("import", "--change", "ENV FROM=pallet", str(tar), "pod-test:1").strip()
    out = tmp_path / "pallet.tar"
    pallet.ok("save", "-o", str(out), "pod-test:1")
    loaded = _podman(tmp_path, "load", "-i", str(out))
    assert "pod-test:1" in loaded
    podman_id = _podman(tmp_path, "image", "inspect", "--format", "{{.Id}}", "pod-test:1")
    assert podman_id.strip() == iid.split(":")[1]
    for fmt in ("docker-archive", "oci-archive"):
        back = tmp_path / f"podman-{fmt}.tar"
        _podman(tmp_path, "save", "--format", fmt, "-o", str(back), "localhost/pod-test:1")
        r = pallet("load", "-i", str(back))
        assert r.rc == 0 and "Loaded image: localhost/pod-test:1" in r.out, r
        r = pallet("image", "inspect", "--format", "{{json .Config.Env}}", "localhost/pod-test:1")
        assert "FROM=pallet" in r.out, r
        if fmt == "docker-archive":  # the same config comes back: the same image ID
            r = pallet("image", "inspect", "--format", "{{.Id}}", "localhost/pod-test:1")
            assert r.out.strip() == iid, r
