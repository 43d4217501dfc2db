"""Image archives: Docker's ``docker save`` format, the OCI image layout and oci-archive.

Writing them lives in :mod:`pallet.store.archive_save` (its names, ``SaveItem`` and
``write_docker_archive``, ``write_oci_layout``, ``write_oci_archive``, can be taken
from here too; that module is imported only when one is used).

Reading (``load``) takes any of these, plain or compressed with gzip or zstd, and the
combined form newer Docker writes (manifest.json next to an OCI layout).
Every blob is verified against its digest on the way into the store, and the
config's ``rootfs.diff_ids`` against the layers.  Nothing is recorded here:
the caller adds the images once all their blobs are in.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from pallet.errors import DigestMismatch, InvalidData, UnsafeArchive
from pallet.oci import digest as dg
from pallet.oci import mediatypes as mt
from pallet.oci.manifest import Descriptor, Index, Manifest, Platform
from pallet.store.compression import decompressed, sniff

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
BUF = 1 << 20


class BlobIngest(Protocol):
    def has(self, digest: str) -> bool: ...

    def open(self, digest: str) -> BinaryIO: ...

    def writer(self, expected_digest: str | None = None,
               expected_size: int | None = None) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class Loaded:
    """One image read from an archive, its blobs already ingested."""

    manifest_bytes: bytes
    media_type: str
    config_digest: str
    refs: tuple[str, ...]


# -- compression ----------------------------------------------------------------------


def sniff_compression(head: bytes) -> str:
    """'gzip', 'zstd' (or 'xz', 'bzip2') or '' for a stream's first bytes."""
    return sniff(head)


def synced(f: Any) -> Any:
    """Put a buffered file's descriptor where the file object stands: a decompressor
    child process may read the descriptor directly."""
    try:
        fd = f.fileno()
        pos = f.tell()
    except (AttributeError, OSError, ValueError):
        return f
    os.lseek(fd, pos, os.SEEK_SET)
    return f


def diff_id_of(f: BinaryIO, kind: str) -> str:
    """The DiffID (digest of the uncompressed tar) of a layer stream."""
    h = hashlib.sha256()
    try:
        with decompressed(synced(f), kind) as d:
            while chunk := d.read(BUF):
                h.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise InvalidData(f"corrupt compressed layer: {e}") from None
    return "sha256:" + h.hexdigest()


if TYPE_CHECKING:
    from pallet.store.archive_save import BlobReader as BlobReader
    from pallet.store.archive_save import SaveItem as SaveItem
    from pallet.store.archive_save import write_docker_archive as write_docker_archive
    from pallet.store.archive_save import write_oci_archive as write_oci_archive
    from pallet.store.archive_save import write_oci_layout as write_oci_layout

_SAVE_NAMES = frozenset({"BlobReader", "SaveItem", "write_docker_archive", "write_oci_layout", "write_oci_archive"})


def __getattr__(name: str) -> Any:
    if name in _SAVE_NAMES:
        from pallet.store import archive_save

        return getattr(archive_save, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- reading ------------------------------------------------------------------------


class _Source:
    """Files of an OCI layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _safe(self, name: str) -> Path:
        p = (self.root / _clean(name)).resolve()
        if not str(p).startswith(str(self.root.resolve()) + os.sep):
            raise UnsafeArchive(name, "path leaves the archive")
        return p

    def exists(self, name: str) -> bool:
        return self._safe(name).is_file()

    def blob_of(self, name: str) -> tuple[str, int] | None:
        return None

    def open(self, name: str) -> BinaryIO:
        p = self._safe(name)
        if not p.is_file():
            raise InvalidData(f"archive has no {name!r}")
        return open(p, "rb")

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidData(f"{name}: too large")
        return data


SMALL = 1 << 20  # archive files up to this size are kept in memory while scanning


class _Scanned(_Source):
    """Files of a tar read once as a stream: small ones (manifests, configs) kept in
    memory, large ones (layers) already in the blob store, links resolved by name."""

    def __init__(self, blobs: BlobIngest) -> None:
        self.blobs = blobs
        self.small: dict[str, bytes] = {}
        self.large: dict[str, tuple[str, int]] = {}
        self.links: dict[str, str] = {}

    def _resolve(self, name: str) -> str:
        name = _clean(name)
        for _ in range(16):
            if name not in self.links:
                return name
            name = self.links[name]
        raise InvalidData(f"archive entry {name!r}: too many links")

    def exists(self, name: str) -> bool:
        n = self._resolve(name)
        return n in self.small or n in self.large

    def blob_of(self, name: str) -> tuple[str, int] | None:
        return self.large.get(self._resolve(name))

    def open(self, name: str) -> BinaryIO:
        n = self._resolve(name)
        if n in self.small:
            return io.BytesIO(self.small[n])
        if n in self.large:
            return self.blobs.open(self.large[n][0])
        raise InvalidData(f"archive has no {name!r}")

    def scan(self, tf: tarfile.TarFile) -> None:
        for m in tf:
            if ".." in m.name.split("/"):
                raise UnsafeArchive(m.name, "path leaves the archive")
            name = _clean(m.name)
            if not name or name == ".":
                continue
            if m.issym():
                target = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                if m.linkname.startswith("/") or target.startswith(".."):
                    raise UnsafeArchive(m.name, "symlink leaves the archive")
                self.links[name] = target
            elif m.islnk():
                self.links[name] = _clean(m.linkname)
            elif m.isfile():
                f = tf.extractfile(m)
                assert f is not None
                if m.size <= SMALL:
                    self.small[name] = f.read()
                    continue
                with self.blobs.writer() as w:
                    while chunk := f.read(BUF):
                        w.write(chunk)
                self.large[name] = (str(w.digest), int(w.size))
            # directories, devices and fifos have no place in an image archive


def _clean(name: str) -> str:
    """An entry name relative to the archive root; ``..`` cannot climb above it."""
    return posixpath.normpath("/" + name).lstrip("/")


@contextlib.contextmanager
def open_archive(src: Path | BinaryIO, blobs: BlobIngest) -> Iterator[_Source]:
    """Open an OCI layout directory, or read an archive file or stream once: plain,
    gzip or zstd; layers go to the blob store on the way."""
    if isinstance(src, Path) and src.is_dir():
        yield _Source(src)
        return
    f: BinaryIO = open(src, "rb") if isinstance(src, Path) else src  # noqa: SIM115
    try:
        head, untouched = _peek(f, 4)
        if not head:
            raise InvalidData("empty archive" if isinstance(src, Path)
                              else "requested load from stdin, but stdin is empty")
        kind = sniff_compression(head)
        stream: Any = f if untouched else _Prefixed(head, f)
        scanned = _Scanned(blobs)
        try:
            with decompressed(stream, kind) as d, \
                    tarfile.open(fileobj=d, mode="r|") as tf:
                scanned.scan(tf)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise InvalidData(f"invalid archive: {e}") from None
        yield scanned
    finally:
        if isinstance(src, Path):
            f.close()


def _peek(f: BinaryIO, n: int) -> tuple[bytes, bool]:
    """The first ``n`` bytes, and whether ``f`` was left untouched (read with pread on
    a seekable descriptor, so a decompressor child can take the descriptor as is)."""
    try:
        if f.seekable():
            return os.pread(f.fileno(), n, f.tell()), True
    except (AttributeError, OSError, ValueError):
        pass
    return f.read(n), False


class _Prefixed(io.RawIOBase):
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def _ingest(src: _Source, name: str, blobs: BlobIngest, expected: str = "") -> tuple[str, int]:
    """Copy one archive file into the blob store; verify against ``expected`` if given."""
    known = src.blob_of(name)
    if known is not None:
        if expected and known[0] != expected:
            raise DigestMismatch(expected, known[0])
        return known
    if expected:
        digest = expected
        if blobs.has(digest):
            with src.open(name) as f:
                size = _count(f)
            return digest, size
    else:
        with src.open(name) as f:
            digest, _ = dg.of_file(f)
        if blobs.has(digest):
            with src.open(name) as f:
                return digest, _count(f)
    size = 0
    with src.open(name) as f, blobs.writer(digest, None) as w:
        while chunk := f.read(BUF):
            w.write(chunk)
            size += len(chunk)
    return digest, size


def _count(f: BinaryIO) -> int:
    n = 0
    while chunk := f.read(BUF):
        n += len(chunk)
    return n


def _layer_media_type(src: _Source, name: str) -> tuple[str, str]:
    with src.open(name) as f:
        head = f.read(4)
    kind = sniff_compression(head)
    return {"gzip": mt.DOCKER_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "": mt.DOCKER_LAYER}[kind], kind


def load_docker(src: _Source, blobs: BlobIngest) -> list[Loaded]:
    try:
        entries = json.loads(src.read("manifest.json"))
    except ValueError as err:
        raise InvalidData(f"invalid manifest.json: {err}") from None
    if not isinstance(entries, list):
        raise InvalidData("invalid manifest.json: not a list")
    out: list[Loaded] = []
    for entry in entries:
        e: dict[str, Any] = entry if isinstance(entry, dict) else {}
        if "Config" not in e:
            raise InvalidData("invalid manifest.json entry")
        config_bytes = src.read(str(e["Config"]))
        config_digest = dg.of_bytes(config_bytes)
        try:
            config = json.loads(config_bytes)
        except ValueError as err:
            raise InvalidData(f"invalid image config {e['Config']}: {err}") from None
        if not isinstance(config, dict):
            raise InvalidData(f"invalid image config {e['Config']}")
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        layer_names = [str(x) for x in e.get("Layers") or []]
        if len(diff_ids) != len(layer_names):
            raise InvalidData(
                f"image config has {len(diff_ids)} diff_ids for {len(layer_names)} layers"
            )
        layers = []
        any_zstd = False
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            media_type, kind = _layer_media_type(src, name)
            any_zstd |= kind == "zstd"
            if kind == "":
                digest, size = _ingest(src, name, blobs, expected=diff_id)
            else:
                with src.open(name) as f:
                    actual = diff_id_of(f, kind)
                if actual != diff_id:
                    raise DigestMismatch(diff_id, actual)
                digest, size = _ingest(src, name, blobs)
            layers.append(Descriptor(media_type, digest, size))
        with blobs.writer(config_digest, len(config_bytes)) as w:
            w.write(config_bytes)
        if any_zstd:
            layers = [Descriptor(_to_oci(d.media_type), d.digest, d.size) for d in layers]
            man = Manifest(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, config_digest,
                                                       len(config_bytes)), tuple(layers))
        else:
            man = Manifest(mt.DOCKER_MANIFEST, Descriptor(mt.DOCKER_CONFIG, config_digest,
                                                          len(config_bytes)), tuple(layers))
        refs = tuple(str(t) for t in e.get("RepoTags") or [])
        out.append(Loaded(man.to_json(), man.media_type, config_digest, refs))
    return out


def _to_oci(media_type: str) -> str:
    return {mt.DOCKER_LAYER: mt.OCI_LAYER, mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP}.get(
        media_type, media_type)


def _blob_name(digest: str) -> str:
    dg.validate(digest)
    return f"blobs/{dg.algorithm(digest)}/{dg.encoded(digest)}"


def _read_verified(src: _Source, digest: str) -> bytes:
    """A small blob (index, manifest: 4 MiB at most) of the archive, checked against its digest."""
    data = src.read(_blob_name(digest), limit=4 << 20)
    if dg.of_bytes(data) != digest:
        raise DigestMismatch(digest, dg.of_bytes(data))
    return data


def _select(index: Index, want: Platform) -> Descriptor:
    """Host-platform choice without importing the registry layer (store sits below it)."""
    best = None
    for d in index.manifests:
        p = d.platform
        if p is None:
            continue
        if p.os == want.os and p.architecture == want.architecture:
            if not want.variant or p.variant in ("", want.variant):
                return d
            best = best or d
    if best is None:
        if len(index.manifests) == 1:
            return index.manifests[0]
        raise InvalidData(f"no matching manifest for {want} in the manifest list entries")
    return best


def _load_oci(src: _Source, blobs: BlobIngest, want: Platform) -> list[Loaded]:
    try:
        index = Index.from_json(src.read("index.json"), mt.OCI_INDEX)
    except InvalidData as e:
        raise InvalidData(f"invalid index.json: {e}") from None
    out: list[Loaded] = []
    for top in index.manifests:
        refs = _ref_names(top.annotations)
        desc = top
        data = _read_verified(src, desc.digest)
        mtype = desc.media_type or mt.OCI_MANIFEST
        depth = 0
        while mtype in mt.INDEXES:
            depth += 1
            if depth > 4:
                raise InvalidData("index nesting too deep")
            sub = Index.from_json(data, mtype)
            desc = _select(sub, want)
            data = _read_verified(src, desc.digest)
            mtype = desc.media_type or mt.OCI_MANIFEST
        man = Manifest.from_json(data, mtype)
        for layer in (man.config, *man.layers):
            _ingest(src, _blob_name(layer.digest), blobs, expected=layer.digest)
        out.append(Loaded(data, man.media_type, man.config.digest, refs))
    return out


def _ref_names(ann: dict[str, str]) -> tuple[str, ...]:
    full = ann.get(CONTAINERD_NAME, "")
    if full:
        return (full,)
    name = ann.get(REF_NAME, "")
    # A full reference (podman, skopeo) is kept; a bare tag names no repository.
    if name and ("/" in name or ":" in name):
        return (name,)
    return ()


def load(src: Path | BinaryIO, blobs: BlobIngest, tmp: Path, platform: Platform) -> list[Loaded]:
    """Ingest every image of an archive; the caller records them.

    Docker's manifest.json wins when an archive has both it and an OCI index
    (Docker 25 writes both).  ``platform`` picks the manifest of an index entry.
    """
    with open_archive(src, blobs) as s:
        if s.exists("manifest.json"):
            return load_docker(s, blobs)
        if s.exists("index.json"):
            return _load_oci(s, blobs, platform)
    raise InvalidData("unrecognized image archive: no manifest.json nor index.json")
