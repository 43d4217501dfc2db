"""The step cache index, the --cache-from rule (with a blob store in a temp dir) and the
parser's records kept by Dockerfile content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet.build import parser
from pallet.build.cache import ParseCache, StepCache
from pallet.oci import mediatypes as mt
from pallet.oci.image import ContainerConfig, History, ImageConfig
from pallet.oci.manifest import Descriptor, Manifest
from pallet.store import BlobStore, Image


def _image(cfg: ImageConfig, layers: list[Descriptor]) -> Image:
    m = Manifest(media_type=mt.OCI_MANIFEST, config=Descriptor(mt.OCI_CONFIG, "sha256:" + "1" * 64, 1),
                 layers=tuple(layers))
    return Image(id="sha256:" + "2" * 64, manifest_digest="", manifest=m, config=cfg)


def test_entries_survive_and_merge(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "store")
    cfg = ImageConfig(config=ContainerConfig(env=("A=1",)))
    digest = blobs.put(cfg.to_json())
    layer = Descriptor(mt.OCI_LAYER, blobs.put(b"layer"), 5)
    a = StepCache(tmp_path / "b", blobs)
    b = StepCache(tmp_path / "b", blobs)
    a.put("k1", digest, [layer])
    b.put("k2", digest, [])
    a.save()
    b.save()  # a concurrent build: both entries are kept
    c = StepCache(tmp_path / "b", blobs)
    hit = c.get("k1")
    assert hit is not None and hit[0].config.env == ("A=1",) and hit[1] == [layer]
    assert c.get("k2") is not None
    blobs.delete(layer.digest)
    assert c.get("k1") is None  # a step whose layer is gone is a miss
    assert c.get("nope") is None


def test_one_file_per_step_and_the_old_single_index(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "store")
    digest = blobs.put(ImageConfig(config=ContainerConfig(cmd=("x",))).to_json())
    k1, k2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    a = StepCache(tmp_path / "b", blobs)
    a.put(k1, digest, [])
    assert a.get(k1) is not None and not (tmp_path / "b" / "steps").exists()  # written at save
    a.save()
    assert sorted(p.name for p in (tmp_path / "b" / "steps").iterdir()) == ["1" * 64 + ".json"]
    # an earlier version's cache.json is split into step files on the first miss, then removed
    legacy = {k2: {"config": digest, "layers": []}, k1: {"config": "sha256:" + "f" * 64, "layers": []}}
    (tmp_path / "b" / "cache.json").write_text(json.dumps(legacy))
    c = StepCache(tmp_path / "b", blobs)
    hit = c.get(k2)
    assert hit is not None and hit[2] == digest
    assert not (tmp_path / "b" / "cache.json").exists()
    assert c.get(k1) is not None  # a step file is newer than the old index's entry
    assert sorted(StepCache(tmp_path / "b", blobs).step_keys()) == [k1, k2]


def test_cache_from_rule(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "store")
    base_hist = (History(created_by="base"),)
    l0 = Descriptor(mt.OCI_LAYER, "sha256:" + "a" * 64, 1)
    l1 = Descriptor(mt.OCI_LAYER, "sha256:" + "b" * 64, 1)
    final_cc = ContainerConfig(cmd=("run",))
    src = ImageConfig(config=final_cc, diff_ids=(l0.digest, l1.digest), history=(
        *base_hist, History(created_by="RUN make"), History(created_by="CMD run", empty_layer=True)))
    cache = StepCache(tmp_path / "b", blobs)
    cache.sources = [_image(src, [l0, l1])]
    state = ImageConfig(diff_ids=(l0.digest,), history=base_hist)
    mid = ContainerConfig(env=("X=1",))
    got = cache.from_sources(state, [l0], mid, "RUN make")
    assert got is not None
    cfg, layers = got
    assert layers == [l0, l1] and cfg.config == mid and cfg.history[-1].created_by == "RUN make"
    assert cache.from_sources(state, [l0], mid, "RUN other") is None
    # the last step gives the image itself when the configurations agree
    last = cache.from_sources(cfg, layers, final_cc, "CMD run")
    assert last is not None and last[0] == src
    assert cache.from_sources(cfg, layers, ContainerConfig(cmd=("x",)), "CMD run") is None
    # a different base does not match
    other = ImageConfig(diff_ids=(l1.digest,), history=base_hist)
    assert cache.from_sources(other, [l1], mid, "RUN make") is None


DOCKERFILE = """# escape=`
ARG BASE=busybox
FROM $BASE AS first
RUN <<EOF
echo hi
EOF
COPY --chown=1:1 --chmod=644 a b/
ONBUILD RUN true
FROM first
CMD ["sh", "-c", "echo `
  done"]
"""


def test_parse_cache_keeps_the_parsers_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ParseCache(tmp_path).records(DOCKERFILE, "Dockerfile")
    assert parser.parse(DOCKERFILE, "Dockerfile", first) == parser.parse(DOCKERFILE)
    calls: list[str] = []
    real = parser.go_parse

    def counting(text: str, filename: str = "Dockerfile") -> list[dict[str, object]]:
        calls.append(text)
        return real(text, filename)

    monkeypatch.setattr(parser, "go_parse", counting)
    assert ParseCache(tmp_path).records(DOCKERFILE, "Dockerfile") == first
    assert calls == []  # a kept parse: the parser is not called
    other = DOCKERFILE.replace("echo hi", "echo ho")
    recs = ParseCache(tmp_path).records(other, "Dockerfile")
    assert calls == [other] and parser.parse(other, "Dockerfile", recs) == parser.parse(other)


def test_parse_cache_errors_and_damage(tmp_path: Path) -> None:
    pc = ParseCache(tmp_path)
    with pytest.raises(parser.ParseError, match="Dockerfile.x:2"):
        pc.records("FROM busybox\nRUN <<EOF\necho\n", "Dockerfile.x")
    assert not pc.path.exists()  # an error is not kept
    pc.records("FROM busybox\n", "Dockerfile")
    pc.path.write_text('{"x": [1]')  # a damaged file is a miss, then rewritten
    assert pc.records("FROM busybox\n", "Dockerfile")[0]["cmd"].upper() == "FROM"
    # records of the wrong shape are not used
    data = {k: [{"cmd": "RUN"}] for k in json.loads(pc.path.read_text())}
    pc.path.write_text(json.dumps(data))
    assert pc.records("FROM busybox\n", "Dockerfile")[0]["value"] == ["busybox"]
