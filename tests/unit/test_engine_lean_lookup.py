"""ImageStore.lookup (the run path's direct lookup) finds what the full scan (get) finds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pallet.errors import ImageNotFound, InvalidReference, PalletError
from pallet.oci import mediatypes as mt
from pallet.oci.reference import parse
from pallet.store import Image, Store
from tests.support.store_helpers import make_image, new_store, tar_of


def _outcome(fn: Any, name: str) -> tuple[str, ...]:
    try:
        img = fn(name)
    except PalletError as e:
        return ("error", type(e).__name__, str(e))
    return ("image", img.id, img.manifest_digest)


def _same_image(a: Image, b: Image) -> None:
    assert (a.id, a.manifest_digest, a.manifest, a.config, a.created) == (
        b.id, b.manifest_digest, b.manifest, b.config, b.created)


def _names_of(img: Image) -> list[str]:
    hexid = img.id[7:]
    out = [img.id, hexid, hexid[:12], hexid[:3], "sha256:" + hexid[:5], "sha256:" + hexid]
    for t in img.repo_tags:
        out.append(t)
        ref = parse(t)
        out.append(str(ref))  # docker.io/library/busybox:latest
        out.append(f"{ref.familiar_repository}@{img.manifest_digest}")
        if t.endswith(":latest"):
            out.append(t[: -len(":latest")])  # a name without its tag
    out.extend(img.repo_digests)
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = new_store(tmp_path)
    make_image(s, [tar_of({"a": b"1"})], "busybox")
    make_image(s, [tar_of({"b": b"2"})], "app:1")
    s.images.tag("app:1", parse("app:2"))
    s.images.tag("app:1", parse("docker.io/someone/app"))
    make_image(s, [tar_of({"c": b"3"}), tar_of({"d": b"4"})], "localhost:5000/tools/x:v1")
    make_image(s, [tar_of({"e": b"5"})])  # dangling
    make_image(s, [tar_of({"f": b"6"})], "old:1")
    make_image(s, [tar_of({"g": b"7"})], "old:1")  # takes the name: the first one dangles
    d = make_image(s, [tar_of({"h": b"8"})], "pinned:1")
    s.images.add(s.blobs.read(d.manifest_digest), mt.OCI_MANIFEST, [parse(f"pinned@{d.manifest_digest}")])
    return s


def test_lookup_agrees_with_the_scan_for_every_name(store: Store) -> None:
    images = store.images.list()
    assert len(images) == 7
    names = [n for img in images for n in _names_of(img)]
    names += [*"0123456789abcdef", "nope", "busybox:other", "app:3", "Bad/Name", "", "sha256:",
              "sha256:zz", "a" * 64, "sha256:" + "0" * 64, "busybox@sha256:" + "0" * 64,
              "localhost:5000/tools/x", "tools/x:v1", "someone/app", "library/busybox:latest"]
    for name in names:
        scan = _outcome(store.images.get, name)
        assert _outcome(store.images.lookup, name) == scan, name
        if scan[0] == "image":
            _same_image(store.images.lookup(name), store.images.get(name))


def test_lookup_gives_the_image_its_names(store: Store) -> None:
    for img in store.images.list():
        got = store.images.lookup(img.id)
        assert got.repo_tags == img.repo_tags
        assert got.repo_digests == img.repo_digests
        assert got.last_tag_time == img.last_tag_time
        assert got.dangling == img.dangling
        assert got.short_id == img.short_id
    pinned = store.images.lookup("pinned:1")
    assert pinned.repo_digests == (f"pinned@{pinned.manifest_digest}",)


def test_lookup_by_name_reads_one_manifest_and_one_config(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    want = store.images.get("localhost:5000/tools/x:v1")
    fresh = Store(store.root)
    reads: list[str] = []
    real = fresh.blobs.read

    def read(digest: str) -> bytes:
        reads.append(digest)
        return real(digest)

    monkeypatch.setattr(fresh.blobs, "read", read)
    got = fresh.images.lookup("localhost:5000/tools/x:v1")
    _same_image(got, want)
    assert reads == [want.manifest_digest, want.id]
    reads.clear()
    by_id = fresh.images.lookup(want.id[7:19])
    _same_image(by_id, want)
    # an ID reads the manifests to know their configs, but only the one config it needs
    assert reads.count(want.id) == 0  # already read, kept
    assert not [d for d in reads if d in {i.id for i in store.images.list()}]


def test_lookup_skips_entries_whose_blobs_are_gone(store: Store) -> None:
    victim = store.images.get("old:1")
    os.unlink(store.blobs.path(victim.manifest_digest))
    for name in ("old:1", "old", victim.id, victim.id[7:19], "busybox"):
        assert _outcome(store.images.lookup, name) == _outcome(store.images.get, name), name


def test_lookup_finds_a_name_another_tool_wrote_unnormalized(store: Store) -> None:
    idx_path = store.root / "index.json"
    idx = json.loads(idx_path.read_text())
    for m in idx["manifests"]:
        ann = m.get("annotations") or {}
        if ann.get("io.containerd.image.name") == "docker.io/library/busybox:latest":
            ann["io.containerd.image.name"] = "busybox:latest"
    idx_path.write_text(json.dumps(idx))
    for name in ("busybox", "busybox:latest", "docker.io/library/busybox"):
        assert _outcome(store.images.lookup, name) == _outcome(store.images.get, name), name
        assert _outcome(store.images.lookup, name)[0] == "image"


def test_lookup_errors_match(store: Store) -> None:
    with pytest.raises(ImageNotFound, match="No such image: nope"):
        store.images.lookup("nope")
    with pytest.raises(InvalidReference):
        store.images.lookup("Bad/Name")
    with pytest.raises(ImageNotFound):
        store.images.lookup("")


def test_two_manifests_of_one_config(tmp_path: Path) -> None:
    """The same image under two manifests: a name gives the manifest it points at, the ID
    the one the scan gives; the image is the same (ID and config)."""
    s = new_store(tmp_path)
    a = make_image(s, [tar_of({"a": b"1"})], "one:1")
    doc = json.loads(s.blobs.read(a.manifest_digest))
    doc["annotations"] = {"another": "manifest"}
    other = json.dumps(doc).encode()
    s.images.add(other, mt.OCI_MANIFEST, [parse("two:1")])
    assert len(s.images.list()) == 1
    for name in ("one:1", "two:1", a.id, a.id[7:19]):
        got, scan = s.images.lookup(name), s.images.get(name)
        assert (got.id, got.config) == (scan.id, scan.config), name
    assert s.images.lookup("one:1").manifest_digest == a.manifest_digest
    _same_image(s.images.lookup(a.id), s.images.get(a.id))


def test_engine_finds_a_containers_image_by_its_name_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pallet.config import Config
    from pallet.engine.containers import ContainerService

    s = new_store(tmp_path)
    app = make_image(s, [tar_of({"a": b"1"})], "app:1")
    for i in range(5):
        make_image(s, [tar_of({"n": str(i).encode()})], f"other{i}")
    svc = ContainerService(Config(root=tmp_path, run_root=tmp_path / "run"))
    reads: list[str] = []
    real = svc.images().images.blobs.read

    def read(digest: str) -> bytes:
        reads.append(digest)
        return real(digest)

    monkeypatch.setattr(svc.images().images.blobs, "read", read)
    info = svc.image(app.id, "app:1")
    assert (info.id, info.config) == (app.id, app.config)
    assert reads == [app.manifest_digest, app.id]  # no other image's manifest read
    # the name now names another image, or nothing: the ID decides
    s.images.tag("other0", parse("app:1"))
    for name in ("app:1", "gone:1", "Bad/Name", ""):
        fresh = ContainerService(Config(root=tmp_path, run_root=tmp_path / "run"))
        got = fresh.image(app.id, name)
        assert (got.id, got.config) == (app.id, app.config), name
    with pytest.raises(ImageNotFound):
        ContainerService(Config(root=tmp_path, run_root=tmp_path / "run")).image("sha256:" + "0" * 64, "app:1")
