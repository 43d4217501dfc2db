"""Docker archives and OCI layouts: write, read back, compressed, hostile input."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pallet.errors import DigestMismatch, InvalidData, UnsafeArchive
from pallet.oci import mediatypes as mt
from pallet.oci.digest import of_bytes
from pallet.oci.manifest import Descriptor, Manifest, Platform
from pallet.store import archive
from tests.support.registry import DirSink

AMD64 = Platform("amd64", "linux")


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(sink: DirSink) -> archive.SaveItem:
    """Two layers: one kept gzip-compressed, one uncompressed (as loaded from Docker)."""
    l1 = _tar({"etc/hello": b"hello\n"})
    l2 = _tar({"bin/tool": b"\x7fELF" + b"x" * 5000})
    gz = gzip.compress(l1, mtime=0)
    sink.put(gz)
    sink.put(l2)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [of_bytes(l1), of_bytes(l2)]}}).encode()
    sink.put(config)
    man = Manifest(mt.DOCKER_MANIFEST, Descriptor(mt.DOCKER_CONFIG, of_bytes(config), len(config)),
                   (Descriptor(mt.DOCKER_LAYER_GZIP, of_bytes(gz), len(gz)),
                    Descriptor(mt.DOCKER_LAYER, of_bytes(l2), len(l2))))
    data = man.to_json()
    sink.put(data)
    return archive.SaveItem(man, data, mt.DOCKER_MANIFEST, ("app:v1", "reg.example/x/app:2"))


def test_docker_archive_round_trip(tmp_path: Path) -> None:
    src = DirSink(tmp_path / "src")
    item = make_image(src)
    out = tmp_path / "img.tar"
    with open(out, "wb") as f:
        archive.write_docker_archive(f, [item], src, tmp_path)
    with tarfile.open(out) as tf:
        names = tf.getnames()
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        repos = json.loads(tf.extractfile("repositories").read())  # type: ignore[union-attr]
    cfg_name = item.manifest.config.digest.split(":")[1] + ".json"
    assert manifest[0]["Config"] == cfg_name and cfg_name in names
    assert manifest[0]["RepoTags"] == ["app:v1", "reg.example/x/app:2"]
    assert all(p.endswith("/layer.tar") and p in names for p in manifest[0]["Layers"])
    assert repos["app"]["v1"] == manifest[0]["Layers"][-1].split("/")[0]
    dst = DirSink(tmp_path / "dst")
    loaded = archive.load(out, dst, tmp_path, AMD64)
    assert len(loaded) == 1
    got = loaded[0]
    assert got.refs == ("app:v1", "reg.example/x/app:2")
    assert got.config_digest == item.manifest.config.digest
    man = Manifest.from_json(got.manifest_bytes)
    cfg = json.loads(dst.read(man.config.digest))
    # layers come back uncompressed: their digests are the config's diff_ids
    assert [d.digest for d in man.layers] == cfg["rootfs"]["diff_ids"]
    assert all(d.media_type == mt.DOCKER_LAYER for d in man.layers)


@pytest.mark.parametrize("compress", ["", "gzip", "zstd", "stream"])
def test_oci_archive_round_trip(tmp_path: Path, compress: str) -> None:
    if compress == "zstd" and shutil.which("zstd") is None:
        pytest.skip("needs zstd")
    src = DirSink(tmp_path / "src")
    item = make_image(src)
    out = tmp_path / "img.tar"
    with open(out, "wb") as f:
        archive.write_oci_archive(f, [item], src)
    if compress == "gzip":
        out.write_bytes(gzip.compress(out.read_bytes()))
    elif compress == "zstd":
        subprocess.run(["zstd", "-q", "-f", "--rm", str(out), "-o", str(out) + ".zst"], check=True)
        out = Path(str(out) + ".zst")
    dst = DirSink(tmp_path / "dst")
    if compress == "stream":
        with open(out, "rb") as f:
            loaded = archive.load(_Unseekable(f), dst, tmp_path, AMD64)  # type: ignore[arg-type]
    else:
        loaded = archive.load(out, dst, tmp_path, AMD64)
    assert loaded[0].manifest_bytes == item.manifest_bytes
    assert {r for x in loaded for r in x.refs} == {"docker.io/library/app:v1",
                                                   "reg.example/x/app:2"}
    for d in (item.manifest.config, *item.manifest.layers):
        assert dst.read(d.digest) == src.read(d.digest)
    assert not list(tmp_path.glob("load-*")), "temporary extraction left behind"


class _Unseekable(io.RawIOBase):
    def __init__(self, f: io.BufferedReader) -> None:
        self.f = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.f.read(len(b))
        b[: len(data)] = data
        return len(data)


def test_oci_layout_dir(tmp_path: Path) -> None:
    src = DirSink(tmp_path / "src")
    item = make_image(src)
    layout = tmp_path / "layout"
    archive.write_oci_layout(layout, [item], src)
    index = json.loads((layout / "index.json").read_text())
    ann = [m["annotations"] for m in index["manifests"]]
    assert {"io.containerd.image.name": "docker.io/library/app:v1",
            "org.opencontainers.image.ref.name": "v1"} in ann
    dst = DirSink(tmp_path / "dst")
    loaded = archive.load(layout, dst, tmp_path, AMD64)
    assert {r for x in loaded for r in x.refs} == {"docker.io/library/app:v1",
                                                   "reg.example/x/app:2"}


def test_diff_id_mismatch_is_refused(tmp_path: Path) -> None:
    layer = _tar({"a": b"a"})
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}})
    data = _tar({"l/layer.tar": layer, "c.json": config.encode(),
                 "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["x:1"],
                                               "Layers": ["l/layer.tar"]}]).encode()})
    (tmp_path / "a.tar").write_bytes(data)
    dst = DirSink(tmp_path / "dst")
    with pytest.raises(DigestMismatch):
        archive.load(tmp_path / "a.tar", dst, tmp_path, AMD64)
    assert not [p for p in dst.d.iterdir() if p.name.startswith("ingest-")]


def test_path_escape_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(_tar({"../evil": b"x", "manifest.json": b"[]"}))
    (tmp_path / "a.tar.gz").write_bytes(data)
    with pytest.raises(UnsafeArchive):
        archive.load(tmp_path / "a.tar.gz", DirSink(tmp_path / "dst"), tmp_path, AMD64)
    assert not (tmp_path.parent / "evil").exists()


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"this is not a tar" * 100)
    with pytest.raises(InvalidData):
        archive.load(tmp_path / "junk", DirSink(tmp_path / "dst"), tmp_path, AMD64)
    (tmp_path / "empty.tar").write_bytes(_tar({"readme": b"hi"}))
    with pytest.raises(InvalidData, match="unrecognized image archive"):
        archive.load(tmp_path / "empty.tar", DirSink(tmp_path / "dst"), tmp_path, AMD64)


def test_oci_layout_with_nested_multi_platform_index(tmp_path: Path) -> None:
    """Docker 25 and buildx write index.json -> index -> one manifest per platform."""
    from pallet.oci.manifest import Index

    layout = tmp_path / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descs = []
    for arch in ("arm64", "amd64"):
        layer = gzip.compress(_tar({"arch": arch.encode()}), mtime=0)
        config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [of_bytes(gzip.decompress(layer))]}}).encode()
        man = Manifest(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, of_bytes(config), len(config)),
                       (Descriptor(mt.OCI_LAYER_GZIP, of_bytes(layer), len(layer)),))
        for b in (layer, config, man.to_json()):
            (blobs / of_bytes(b).split(":")[1]).write_bytes(b)
        descs.append(Descriptor(mt.OCI_MANIFEST, of_bytes(man.to_json()), len(man.to_json()),
                                platform=Platform(arch, "linux")))
    inner = Index(mt.OCI_INDEX, tuple(descs)).to_json()
    (blobs / of_bytes(inner).split(":")[1]).write_bytes(inner)
    top = {"schemaVersion": 2, "manifests": [{
        "mediaType": mt.OCI_INDEX, "digest": of_bytes(inner), "size": len(inner),
        "annotations": {"io.containerd.image.name": "docker.io/library/multi:1",
                        "org.opencontainers.image.ref.name": "1"}}]}
    (layout / "index.json").write_text(json.dumps(top))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for plat, want in ((AMD64, descs[1]), (Platform("arm64", "linux", "v8"), descs[0])):
        dst = DirSink(tmp_path / f"dst-{plat.architecture}")
        loaded = archive.load(layout, dst, tmp_path, plat)
        assert loaded[0].refs == ("docker.io/library/multi:1",)
        assert of_bytes(loaded[0].manifest_bytes) == want.digest
        cfg = json.loads(dst.read(loaded[0].config_digest))
        assert cfg["architecture"] == plat.architecture
    # a corrupted blob is refused
    (blobs / descs[1].digest.split(":")[1]).write_bytes(b"{}")
    with pytest.raises(DigestMismatch):
        archive.load(layout, DirSink(tmp_path / "dst-bad"), tmp_path, AMD64)


@pytest.mark.parametrize("wrap", ["plain", "gzip"])
def test_docker_archive_with_symlinked_layer(tmp_path: Path, wrap: str) -> None:
    """Docker writes a layer shared by two images once, the other path a symlink to it."""
    layer = _tar({"shared": b"same bytes"})
    cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [of_bytes(layer)]},
                      "architecture": "amd64", "os": "linux"}).encode()
    cfg2 = cfg.replace(b'"os"', b'"variant": "", "os"')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("aaa/layer.tar", layer), ("c1.json", cfg), ("c2.json", cfg2),
                           ("manifest.json", json.dumps([
                               {"Config": "c1.json", "RepoTags": ["one:1"],
                                "Layers": ["aaa/layer.tar"]},
                               {"Config": "c2.json", "RepoTags": ["two:1"],
                                "Layers": ["bbb/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bbb/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = "../aaa/layer.tar"
        tf.addfile(link)
    data = buf.getvalue()
    path = tmp_path / "a.tar"
    path.write_bytes(gzip.compress(data) if wrap == "gzip" else data)
    dst = DirSink(tmp_path / "dst")
    loaded = archive.load(path, dst, tmp_path, AMD64)
    assert [x.refs for x in loaded] == [("one:1",), ("two:1",)]
    assert {Manifest.from_json(x.manifest_bytes).layers[0].digest for x in loaded} == {
        of_bytes(layer)}


def test_large_blob_named_for_another_digest_is_refused(tmp_path: Path) -> None:
    """Layers stream into the store while the archive is read; a blob whose content
    does not match its name in an OCI layout is refused and no image comes out."""
    big = os.urandom(archive.SMALL + 1000)
    fake = "sha256:" + "ab" * 32
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [fake]}}).encode()
    man = Manifest(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, of_bytes(config), len(config)),
                   (Descriptor(mt.OCI_LAYER, fake, len(big)),)).to_json()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": of_bytes(man), "size": len(man)}]}).encode()
    data = _tar({"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index,
                 f"blobs/sha256/{fake[7:]}": big, f"blobs/sha256/{of_bytes(config)[7:]}": config,
                 f"blobs/sha256/{of_bytes(man)[7:]}": man})
    (tmp_path / "o.tar").write_bytes(data)
    dst = DirSink(tmp_path / "dst")
    with pytest.raises(DigestMismatch):
        archive.load(tmp_path / "o.tar", dst, tmp_path, AMD64)
    assert not dst.has(fake)
    assert not [p for p in dst.d.iterdir() if p.name.startswith("ingest-")]
