"""What push sends for an image whose layers the store keeps uncompressed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from unittest import mock

from pallet.engine import distribution as dist
from pallet.oci import mediatypes as mt
from pallet.oci.digest import of_bytes
from pallet.oci.manifest import Descriptor, Manifest
from pallet.store import Store


def _image(store: Store, media: str, layer_type: str) -> tuple[bytes, bytes]:
    layer = b"layer bytes " * 50000
    store.blobs.put(layer)
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [of_bytes(layer)]}}).encode()
    store.blobs.put(config)
    man = Manifest(media, Descriptor(mt.OCI_CONFIG, of_bytes(config), len(config)),
                   (Descriptor(layer_type, of_bytes(layer), len(layer)),))
    return man.to_json(), layer


def test_uncompressed_layers_become_gzip_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    meta = dist.Metadata(tmp_path)
    data, layer = _image(store, mt.OCI_MANIFEST, mt.OCI_LAYER)
    body, media = dist.distributable(store.blobs, meta, data, mt.OCI_MANIFEST, tmp_path)
    man = Manifest.from_json(body, media)
    (gz,) = man.layers
    assert gz.media_type == mt.OCI_LAYER_GZIP
    assert gzip.decompress(store.blobs.read(gz.digest)) == layer
    assert store.blobs.size(gz.digest) == gz.size
    assert meta.compressed(of_bytes(layer)) == (gz.digest, gz.size)
    # the second time nothing is compressed: the recorded gzip blob is reused
    with mock.patch("pallet.registry.compress.gzip_stream",
                    side_effect=AssertionError("compressed again")):
        again, _ = dist.distributable(store.blobs, meta, data, mt.OCI_MANIFEST, tmp_path)
    assert again == body
    assert not list((tmp_path / "store" / "ingest").iterdir())


def test_docker_manifest_gets_docker_gzip_type(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    data, _ = _image(store, mt.DOCKER_MANIFEST, mt.DOCKER_LAYER)
    body, media = dist.distributable(store.blobs, dist.Metadata(tmp_path), data,
                                     mt.DOCKER_MANIFEST, tmp_path)
    assert media == mt.DOCKER_MANIFEST
    assert Manifest.from_json(body).layers[0].media_type == mt.DOCKER_LAYER_GZIP


def test_compressed_image_is_pushed_byte_for_byte(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    data, _ = _image(store, mt.OCI_MANIFEST, mt.OCI_LAYER_GZIP)
    body, _ = dist.distributable(store.blobs, dist.Metadata(tmp_path), data, mt.OCI_MANIFEST,
                                 tmp_path)
    assert body == data


def test_sources_for_mounts(tmp_path: Path) -> None:
    meta = dist.Metadata(tmp_path)
    d = "sha256:" + "a" * 64
    assert meta.sources(d) == []
    meta.add_source(d, "reg.example/a/b")
    meta.add_source(d, "reg.example/c/d")
    meta.add_source(d, "reg.example/a/b")
    assert meta.sources(d) == ["reg.example/c/d", "reg.example/a/b"]
