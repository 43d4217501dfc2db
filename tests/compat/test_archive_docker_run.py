"""``pallet save`` / ``pallet load`` through the real Docker, with the images run on both
sides: an image imported into pallet runs in Docker after save/load, and one built
by Docker runs in pallet after save/load."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Pallet
from tests.support.images import busybox_available, make_busybox_tar

pytestmark = pytest.mark.skipif(not busybox_available(), reason="needs busybox-static")


def _runner(root: Path) -> Pallet:
    """pallet with runc as the low-level runtime where runc exists."""
    return Pallet(root, runtime="runc" if shutil.which("runc") else None)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_pallet_image_runs_in_docker(dockerd: Any, pallet_root: Path, tmp_path: Path,
                                     fmt: str) -> None:
    p = _runner(pallet_root)
    tar = make_busybox_tar(tmp_path / "busybox.tar")
    p.ok("import", "--change", 'CMD ["sh", "-c", "echo from pallet $((6*7))"]', str(tar),
         "pallet-made:v1")
    out = tmp_path / "img.tar"
    r = p("save", "--format", fmt, "-o", str(out), "pallet-made:v1")
    assert r.rc == 0, r
    if fmt == "oci-archive":
        # Docker 20.10 loads only its own format; skopeo converts
        if shutil.which("skopeo") is None:
            pytest.skip("needs skopeo")
        import subprocess

        conv = tmp_path / "conv.tar"
        subprocess.run(["skopeo", "copy", f"oci-archive:{out}:v1",
                        f"docker-archive:{conv}:pallet-made:v1"], check=True,
                       capture_output=True)
        out = conv
    r2 = dockerd.docker("load", "-i", str(out))
    assert "Loaded image: pallet-made:v1" in r2.stdout.decode()
    try:
        run = dockerd.docker("run", "--rm", "--network", "none", "pallet-made:v1")
        assert run.stdout == b"from pallet 42\n"
    finally:
        dockerd.docker("rmi", "-f", "pallet-made:v1", check=False)


def test_docker_image_runs_in_pallet(dockerd: Any, pallet_root: Path, tmp_path: Path) -> None:
    tar = make_busybox_tar(tmp_path / "busybox.tar")
    dockerd.docker("import", "--change", 'CMD ["sh"]', str(tar), "docker-base:v1")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM docker-base:v1\nRUN echo built-by-docker > /etc/marker && rm /etc/os-release\n"
        'WORKDIR /srv\nCMD ["sh", "-c", "cat /etc/marker; pwd; test -e /etc/os-release || '
        'echo whiteout-ok"]\n')
    saved = tmp_path / "docker.tar"
    try:
        dockerd.docker("build", "-q", "-t", "docker-made:v1", str(ctx), timeout=300)
        dockerd.docker("save", "-o", str(saved), "docker-made:v1")
    finally:
        dockerd.docker("rmi", "-f", "docker-made:v1", "docker-base:v1", check=False)
    p = _runner(pallet_root)
    r = p("load", "-i", str(saved))
    assert r.out.strip() == "Loaded image: docker-made:v1", r
    r = p("run", "--rm", "docker-made:v1", timeout=120)
    assert r.rc == 0 and r.out == "built-by-docker\n/srv\nwhiteout-ok\n", r


def test_save_by_id_and_several_images(dockerd: Any, pallet_root: Path, tmp_path: Path) -> None:
    p = _runner(pallet_root)
    tar = make_busybox_tar(tmp_path / "busybox.tar")
    iid = p.ok("import", "--change", 'CMD ["echo", "one"]', str(tar), "multi-one:v1").strip()
    p.ok("import", "--change", 'CMD ["echo", "two"]', str(tar), "multi-two:v1")
    out = tmp_path / "two.tar"
    assert p("save", "-o", str(out), "multi-one:v1", "multi-two:v1").rc == 0
    byid = tmp_path / "byid.tar"
    assert p("save", "-o", str(byid), iid[7:19]).rc == 0
    try:
        loaded = dockerd.docker("load", "-i", str(out)).stdout.decode()
        assert "Loaded image: multi-one:v1" in loaded and "Loaded image: multi-two:v1" in loaded
        assert dockerd.docker("run", "--rm", "--network", "none", "multi-two:v1").stdout == b"two\n"
        dockerd.docker("rmi", "-f", "multi-one:v1", "multi-two:v1")
        loaded = dockerd.docker("load", "-i", str(byid)).stdout.decode()
        assert f"Loaded image ID: {iid}" in loaded
    finally:
        dockerd.docker("rmi", "-f", "multi-one:v1", "multi-two:v1", iid, check=False)
    # and back into a fresh pallet root, both images at once
    root2 = tmp_path / "root2"
    q = _runner(root2)
    try:
        r = q("load", "-i", str(out))
        assert r.out.split("\n")[:2] == ["Loaded image: multi-one:v1",
                                         "Loaded image: multi-two:v1"], r
        assert q("run", "--rm", "multi-one:v1").out == "one\n"
    finally:
        _unmount_under(root2)


def _unmount_under(root: Path) -> None:
    """Lift every mount pallet made under a root of our own (its netns directory...)."""
    import subprocess

    prefix = str(root.resolve())
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1] for line in f]
    for t in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", t], capture_output=True)
