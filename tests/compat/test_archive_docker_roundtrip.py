"""save/load through the real Docker engine, both ways.

An image written by pallet's docker-archive and oci-archive writers loads and
runs in Docker; an image Docker saves loads in pallet with the same config,
layers and files.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.digest import of_bytes
from pallet.oci.manifest import Descriptor, Manifest, Platform
from pallet.store import archive
from tests.support.images import busybox_available, make_busybox_tar
from tests.support.registry import DirSink

pytestmark = pytest.mark.skipif(not busybox_available(), reason="needs busybox-static")
AMD64 = Platform("amd64", "linux")


def _image(tmp: Path, sink: DirSink, compress: bool) -> archive.SaveItem:
    base = make_busybox_tar(tmp / "busybox.tar").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("etc/pallet-marker")
        data = b"saved by pallet\n"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    top = buf.getvalue()
    blobs = [gzip.compress(base, mtime=0), top] if compress else [base, top]
    for b in blobs:
        sink.put(b)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh", "-c", "cat /etc/pallet-marker"], "Env": ["PATH=/bin"],
                   "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [of_bytes(base), of_bytes(top)]},
        "history": [{"created_by": "busybox"}, {"created_by": "marker"}],
    }).encode()
    sink.put(config)
    oci = compress
    man = Manifest(
        mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        Descriptor(mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG, of_bytes(config), len(config)),
        tuple(Descriptor((mt.OCI_LAYER_GZIP if i == 0 else mt.OCI_LAYER) if oci else
                         mt.DOCKER_LAYER, of_bytes(b), len(b)) for i, b in enumerate(blobs)),
    )
    data = man.to_json()
    sink.put(data)
    return archive.SaveItem(man, data, man.media_type, ("pallet-saved:v1",))


@pytest.mark.parametrize("fmt", ["docker-archive", "docker-archive-from-gzip"])
def test_pallet_saved_image_runs_in_docker(dockerd: Any, tmp_path: Path, fmt: str) -> None:
    sink = DirSink(tmp_path / "blobs")
    item = _image(tmp_path, sink, compress=fmt.endswith("gzip"))
    out = tmp_path / "saved.tar"
    with open(out, "wb") as f:
        archive.write_docker_archive(f, [item], sink, tmp_path)
    r = dockerd.docker("load", "-i", str(out))
    assert "Loaded image: pallet-saved:v1" in r.stdout.decode()
    try:
        inspect = json.loads(dockerd.docker("image", "inspect", "pallet-saved:v1").stdout)[0]
        assert inspect["Id"] == item.manifest.config.digest
        run = dockerd.docker("run", "--rm", "--network", "none", "pallet-saved:v1")
        assert run.stdout == b"saved by pallet\n"
    finally:
        dockerd.docker("rmi", "-f", "pallet-saved:v1", check=False)


def test_docker_saved_image_loads_in_pallet(dockerd: Any, tmp_path: Path) -> None:
    base = make_busybox_tar(tmp_path / "busybox.tar")
    dockerd.docker("import", "--change", 'CMD ["sh"]', "--change", "ENV HELLO=world",
                   str(base), "docker-made:v1")
    try:
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(
            "FROM docker-made:v1\nRUN echo built-by-docker > /etc/marker && rm /etc/os-release\n"
            'LABEL org.example=yes\nWORKDIR /srv\nCMD ["cat", "/etc/marker"]\n')
        dockerd.docker("build", "-q", "-t", "docker-made:v2", str(ctx), timeout=300)
        saved = tmp_path / "docker.tar"
        dockerd.docker("save", "-o", str(saved), "docker-made:v2")
        docker_id = json.loads(dockerd.docker("image", "inspect", "docker-made:v2").stdout)[0]["Id"]
    finally:
        dockerd.docker("rmi", "-f", "docker-made:v2", "docker-made:v1", check=False)
    sink = DirSink(tmp_path / "blobs")
    loaded = archive.load(saved, sink, tmp_path, AMD64)
    assert len(loaded) == 1 and loaded[0].refs == ("docker-made:v2",)
    assert loaded[0].config_digest == docker_id
    man = Manifest.from_json(loaded[0].manifest_bytes)
    cfg = json.loads(sink.read(man.config.digest))
    assert cfg["config"]["Cmd"] == ["cat", "/etc/marker"]
    assert cfg["config"]["WorkingDir"] == "/srv"
    assert "HELLO=world" in cfg["config"]["Env"]
    assert [d.digest for d in man.layers] == cfg["rootfs"]["diff_ids"]
    files: dict[str, bytes] = {}
    names: list[str] = []
    for d in man.layers:
        with sink.open(d.digest) as f, tarfile.open(fileobj=f) as tf:
            for m in tf.getmembers():
                names.append(m.name)
                if m.isfile() and m.name == "etc/marker":
                    data = tf.extractfile(m)
                    assert data is not None
                    files[m.name] = data.read()
    assert files["etc/marker"] == b"built-by-docker\n"
    assert "etc/.wh.os-release" in names
    # the gzip'd form of the same archive loads too
    gz = tmp_path / "docker.tar.gz"
    gz.write_bytes(gzip.compress(saved.read_bytes(), compresslevel=1))
    again = archive.load(gz, DirSink(tmp_path / "blobs2"), tmp_path, AMD64)
    assert again[0].manifest_bytes == loaded[0].manifest_bytes


def test_oci_archive_loads_in_docker_via_skopeo(dockerd: Any, tmp_path: Path) -> None:
    """Docker 20.10 reads no OCI archives itself; skopeo converts pallet's for it."""
    import shutil

    if shutil.which("skopeo") is None:
        pytest.skip("needs skopeo")
    sink = DirSink(tmp_path / "blobs")
    item = _image(tmp_path, sink, compress=True)
    out = tmp_path / "oci.tar"
    with open(out, "wb") as f:
        archive.write_oci_archive(f, [item], sink)
    dtar = tmp_path / "converted.tar"
    subprocess.run(["skopeo", "copy", f"oci-archive:{out}:v1",
                    f"docker-archive:{dtar}:pallet-saved:oci"], check=True, capture_output=True)
    dockerd.docker("load", "-i", str(dtar))
    try:
        run = dockerd.docker("run", "--rm", "--network", "none", "pallet-saved:oci")
        assert run.stdout == b"saved by pallet\n"
    finally:
        dockerd.docker("rmi", "-f", "pallet-saved:oci", check=False)
