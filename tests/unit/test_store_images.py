"""ImageStore: names, lookups, dangling images, the OCI layout on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet.errors import BlobNotFound, ImageNotFound, InvalidReference
from pallet.oci import mediatypes as mt
from pallet.oci.manifest import Descriptor, Manifest
from pallet.oci.reference import parse
from tests.support.store_helpers import make_image, new_store, tar_of


def test_add_and_lookup_every_way(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    img = make_image(s, [tar_of({"a": b"1"})], "busybox")
    assert img.repo_tags == ("busybox:latest",)
    assert img.id.startswith("sha256:") and img.id == img.manifest.config.digest
    hexid = img.id[7:]
    for name in (
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        "library/busybox",
        img.id,
        hexid,
        hexid[:12],
        "sha256:" + hexid[:5],
        f"busybox@{img.manifest_digest}",
    ):
        assert s.images.get(name).id == img.id, name
    with pytest.raises(ImageNotFound, match="No such image: nope"):
        s.images.get("nope")
    with pytest.raises(ImageNotFound):
        s.images.get("busybox:other")
    with pytest.raises(InvalidReference):
        s.images.get("Bad/Name")


def test_oci_layout_on_disk(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    img = make_image(s, [tar_of({"a": b"1"})], "localhost:5000/app:v1")
    root = tmp_path / "store"
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    idx = json.loads((root / "index.json").read_text())
    assert idx["schemaVersion"] == 2
    (m,) = idx["manifests"]
    assert m["digest"] == img.manifest_digest
    assert m["annotations"]["org.opencontainers.image.ref.name"] == "localhost:5000/app:v1"
    assert m["annotations"]["io.containerd.image.name"] == "localhost:5000/app:v1"
    assert img.repo_tags == ("localhost:5000/app:v1",)


def test_add_requires_blobs(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    cfg = s.blobs.put(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:' + b"0" * 64 + b'"]}}')
    m = Manifest(
        mt.OCI_MANIFEST,
        Descriptor(mt.OCI_CONFIG, cfg, 10),
        (Descriptor(mt.OCI_LAYER, "sha256:" + "0" * 64, 1),),
    )
    with pytest.raises(BlobNotFound):
        s.images.add(m.to_json(), mt.OCI_MANIFEST, [parse("x")])
    assert s.images.list() == []


def test_tag_moves_name_and_leaves_dangling(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    a = make_image(s, [tar_of({"a": b"1"})], "app:1")
    b = make_image(s, [tar_of({"b": b"2"})], "app:1")
    assert s.images.get("app:1").id == b.id
    old = s.images.get(a.id)
    assert old.dangling and old.repo_tags == ()
    s.images.tag(b.id, parse("app:2"))
    s.images.tag("app:2", parse("other"))
    assert set(s.images.get(b.id).repo_tags) == {"app:1", "app:2", "other:latest"}
    assert len(s.images.list()) == 2


def test_untag_and_remove(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    img = make_image(s, [tar_of({"a": b"1"})], "app:1")
    s.images.tag(img.id, parse("app:2"))
    after = s.images.untag(parse("app:1"))
    assert after.repo_tags == ("app:2",)
    after = s.images.untag(parse("app:2"))
    assert after.dangling
    with pytest.raises(ImageNotFound):
        s.images.untag(parse("app:2"))
    s.images.remove(img.id)
    assert s.images.list() == []
    with pytest.raises(ImageNotFound):
        s.images.get(img.id)


def test_short_id_prefix_ambiguity(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    imgs = [make_image(s, [tar_of({str(i): b"x"})], f"i{i}") for i in range(20)]
    first = {i.id[7] for i in imgs}
    # with 20 images, at least two share a first hex digit: that prefix is ambiguous
    shared = next(c for c in first if sum(1 for i in imgs if i.id[7] == c) > 1)
    with pytest.raises(ImageNotFound):
        s.images.get(shared)


def test_same_image_added_twice_is_one_image(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    layer = tar_of({"a": b"1"})
    a = make_image(s, [layer], "x:1")
    b = make_image(s, [layer], "x:2")
    assert a.id == b.id
    (img,) = s.images.list()
    assert set(img.repo_tags) == {"x:1", "x:2"}


def test_repo_digests(tmp_path: Path) -> None:
    s = new_store(tmp_path)
    img = make_image(s, [tar_of({"a": b"1"})], "app:1")
    s.images.add(s.blobs.read(img.manifest_digest), mt.OCI_MANIFEST, [parse(f"app@{img.manifest_digest}")])
    got = s.images.get("app:1")
    assert got.repo_digests == (f"app@{img.manifest_digest}",)
    assert s.images.get(f"app@{img.manifest_digest}").id == img.id


def test_size_of_gzip_layers_is_unpacked_size(tmp_path: Path) -> None:
    import gzip

    from pallet.oci.image import ImageConfig

    s = new_store(tmp_path)
    raw = tar_of({"zeros": b"\0" * 500_000})
    gz = gzip.compress(raw)
    ld = s.blobs.put(gz)
    cfg = ImageConfig(diff_ids=("sha256:" + __import__("hashlib").sha256(raw).hexdigest(),)).to_json()
    cd = s.blobs.put(cfg)
    m = Manifest(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, cd, len(cfg)),
                 (Descriptor(mt.OCI_LAYER_GZIP, ld, len(gz)),))
    img = s.images.add(m.to_json(), mt.OCI_MANIFEST, [parse("gz:1")])
    assert len(gz) < 10_000 and img.size == len(raw)
