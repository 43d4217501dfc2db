"""Writing image archives (``pallet save``): docker-archive, OCI image layout, oci-archive.

* docker-archive, as Docker 20.10 writes it: ``<config-hex>.json``, one
  ``<v1-id>/`` directory per layer (``layer.tar`` uncompressed, ``json``,
  ``VERSION``), ``manifest.json`` (``Config``, ``RepoTags``, ``Layers``) and
  ``repositories``;
* OCI image layout (a directory, or a tar of it: oci-archive): ``oci-layout``,
  ``index.json`` (ref names in ``org.opencontainers.image.ref.name`` and the full
  name in ``io.containerd.image.name``, as containerd and Docker 25 do) and
  ``blobs/sha256/...`` with blobs as the store keeps them.

Reading them back is :mod:`pallet.store.archive`'s job (which also offers these names).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from pallet.errors import InvalidData
from pallet.oci import digest as dg
from pallet.oci import mediatypes as mt
from pallet.oci.manifest import Descriptor, Manifest, canonical_json
from pallet.oci.reference import parse as parse_ref
from pallet.store.archive import BUF, CONTAINERD_NAME, REF_NAME, sniff_compression, synced
from pallet.store.compression import decompressed

EPOCH_CREATED = "1970-01-01T00:00:00Z"


class BlobReader(Protocol):
    def open(self, digest: str) -> BinaryIO: ...


@dataclass(frozen=True)
class SaveItem:
    """One image to write: its manifest and the names to record."""

    manifest: Manifest
    manifest_bytes: bytes
    media_type: str
    repo_tags: tuple[str, ...]  # familiar names: busybox:latest


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tf.addfile(info, io.BytesIO(data))


def _add_dir(tf: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tf.addfile(info)


def _add_stream(tf: tarfile.TarFile, name: str, f: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    tf.addfile(info, f)


def _v1_ids(diff_ids: list[str]) -> list[str]:
    """Stable legacy layer IDs: one per layer, each depending on all below it."""
    out: list[str] = []
    for chain in dg.chain_ids(diff_ids):
        parent = out[-1] if out else ""
        out.append(hashlib.sha256(f"{chain} {parent}".encode()).hexdigest())
    return out


def _uncompressed_copy(blobs: BlobReader, desc: Descriptor, tmp: Path) -> tuple[IO[bytes], int]:
    """The layer as an uncompressed tar, and its size (decompressed to a temp file if needed)."""
    kind = mt.compression(desc.media_type)
    f = blobs.open(desc.digest)
    if kind == "":
        head = f.read(4)
        f.seek(0)
        kind = sniff_compression(head)
        if kind == "":
            size = os.fstat(f.fileno()).st_size if hasattr(f, "fileno") else desc.size
            return f, size
    out = tempfile.TemporaryFile(dir=tmp)  # noqa: SIM115 - returned open
    try:
        with f, decompressed(synced(f), kind) as d:
            shutil.copyfileobj(d, out, BUF)
    except (OSError, EOFError, zlib.error) as e:
        out.close()
        raise InvalidData(f"layer {desc.digest}: {e}") from None
    size = out.tell()
    out.seek(0)
    return out, size


def write_docker_archive(out: BinaryIO, items: list[SaveItem], blobs: BlobReader,
                         tmp: Path) -> None:
    """Write ``items`` as one Docker archive (``docker save`` format) to ``out``."""
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for item in items:
            with blobs.open(item.manifest.config.digest) as f:
                config_bytes = f.read()
            config = json.loads(config_bytes)
            diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
            if len(diff_ids) != len(item.manifest.layers):
                raise InvalidData(
                    f"image {item.manifest.config.digest}: {len(diff_ids)} diff_ids for "
                    f"{len(item.manifest.layers)} layers"
                )
            v1 = _v1_ids(diff_ids)
            layer_paths: list[str] = []
            for i, desc in enumerate(item.manifest.layers):
                name = f"{v1[i]}/layer.tar"
                layer_paths.append(name)
                if v1[i] in written:
                    continue
                written.add(v1[i])
                _add_dir(tf, v1[i] + "/")
                _add_bytes(tf, f"{v1[i]}/VERSION", b"1.0")
                legacy: dict[str, Any] = {"id": v1[i], "created": EPOCH_CREATED,
                                          "container_config": {"Cmd": None}}
                if i:
                    legacy["parent"] = v1[i - 1]
                if i == len(v1) - 1:
                    for k in ("architecture", "os", "config", "created"):
                        if k in config:
                            legacy[k] = config[k]
                _add_bytes(tf, f"{v1[i]}/json", json.dumps(legacy).encode())
                f2, size = _uncompressed_copy(blobs, desc, tmp)
                with f2:
                    _add_stream(tf, name, f2, size)
            cfg_name = dg.encoded(item.manifest.config.digest) + ".json"
            if cfg_name not in written:
                written.add(cfg_name)
                _add_bytes(tf, cfg_name, config_bytes)
            manifest_json.append({"Config": cfg_name, "RepoTags": list(item.repo_tags) or None,
                                  "Layers": layer_paths})
            for t in item.repo_tags:
                repo, _, tag = t.rpartition(":")
                if v1:
                    repositories.setdefault(repo, {})[tag] = v1[-1]
        _add_bytes(tf, "manifest.json", json.dumps(manifest_json).encode())
        if repositories:
            _add_bytes(tf, "repositories", json.dumps(repositories).encode())


def _index_entries(items: list[SaveItem]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        base = Descriptor(item.media_type, dg.of_bytes(item.manifest_bytes),
                          len(item.manifest_bytes)).to_dict()
        if not item.repo_tags:
            out.append(base)
        for t in item.repo_tags:
            ref = parse_ref(t)
            out.append({**base, "annotations": {CONTAINERD_NAME: str(ref), REF_NAME: ref.tag}})
    return out


def write_oci_layout(dest: Path, items: list[SaveItem], blobs: BlobReader) -> None:
    """Write (or add to) an OCI image layout directory."""
    bdir = dest / "blobs" / "sha256"
    bdir.mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for item in items:
        (bdir / dg.encoded(dg.of_bytes(item.manifest_bytes))).write_bytes(item.manifest_bytes)
        for desc in (item.manifest.config, *item.manifest.layers):
            target = bdir / dg.encoded(desc.digest)
            if not target.exists():
                with blobs.open(desc.digest) as src, open(target, "wb") as w:
                    shutil.copyfileobj(src, w, BUF)
    index_path = dest / "index.json"
    old: list[dict[str, Any]] = []
    if index_path.exists():
        old = list(json.loads(index_path.read_bytes()).get("manifests") or [])
    new = _index_entries(items)
    names = {(e.get("annotations") or {}).get(CONTAINERD_NAME) for e in new} - {None}
    keep = [e for e in old if (e.get("annotations") or {}).get(CONTAINERD_NAME) not in names]
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": keep + new}
    index_path.write_bytes(canonical_json(index))


def write_oci_archive(out: BinaryIO, items: list[SaveItem], blobs: BlobReader) -> None:
    """An OCI image layout as one tar stream."""
    entries = _index_entries(items)
    seen: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_dir(tf, "blobs/")
        _add_dir(tf, "blobs/sha256/")
        for item in items:
            for desc in (*item.manifest.layers, item.manifest.config):
                if desc.digest in seen:
                    continue
                seen.add(desc.digest)
                with blobs.open(desc.digest) as f:
                    size = os.fstat(f.fileno()).st_size if hasattr(f, "fileno") else desc.size
                    _add_stream(tf, f"blobs/sha256/{dg.encoded(desc.digest)}", f, size)
            md = dg.of_bytes(item.manifest_bytes)
            if md not in seen:
                seen.add(md)
                _add_bytes(tf, f"blobs/sha256/{dg.encoded(md)}", item.manifest_bytes)
        _add_bytes(tf, "index.json", canonical_json(
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}))
