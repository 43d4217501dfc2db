"""The image index: which manifests the store holds and the names that point at them.

The store root is an OCI image layout (``oci-layout``, ``index.json``,
``blobs/``), so tools such as skopeo and umoci can read it as it is.  Each
name is one descriptor in ``index.json`` annotated with the full reference
(``io.containerd.image.name``, as containerd and Docker write it, and
``org.opencontainers.image.ref.name``, so that OCI tools can address it); an image without names (dangling)
keeps one descriptor without them.  Updates are serialized with an ``flock``
on ``index.lock`` and written with write-fsync-rename, so a killed process
leaves either the old or the new index, never a torn one.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pallet.errors import BlobNotFound, ImageNotFound, InvalidData, InvalidReference
from pallet.oci import mediatypes as mt
from pallet.oci.digest import is_digest
from pallet.oci.image import ImageConfig
from pallet.oci.manifest import Descriptor, Manifest, canonical_json
from pallet.oci.record import field, record
from pallet.oci.reference import Reference, parse
from pallet.store.blobs import BlobStore

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
TAG_TIME_ANNOTATION = "io.pallet.image.last-tag-time"
# on a layer descriptor: bytes of regular files in the layer (Docker's notion of its size)
CONTENT_SIZE_ANNOTATION = "io.pallet.layer.content-size"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


@record(frozen=True)
class Image:
    """An image in the store, as the engine and the CLI see it."""

    id: str  # config digest
    manifest_digest: str
    manifest: Manifest
    config: ImageConfig
    repo_tags: tuple[str, ...] = ()  # familiar form: "busybox:latest"
    repo_digests: tuple[str, ...] = ()  # familiar form: "busybox@sha256:..."
    size: int = 0
    created: str = ""
    last_tag_time: str = ""
    references: tuple[Reference, ...] = field(default=(), compare=False)

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def dangling(self) -> bool:
        return not self.repo_tags

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return self.config.diff_ids


@record
class _Entry:
    desc: Descriptor
    name: str  # full reference, "" for a dangling entry


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class ImageStore:
    """Names and manifests of the images in one OCI image layout."""

    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = Path(root)
        self.blobs = blobs
        self.index_path = self.root / "index.json"
        self.lock_path = self.root / "index.lock"
        self._cache: dict[str, tuple[Manifest, ImageConfig]] = {}
        self._manifests: dict[str, Manifest] = {}
        self._sizes: dict[str, int] = {}

    # -- index file -----------------------------------------------------------

    def _read_entries(self) -> builtins.list[_Entry]:
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            d = json.loads(data)
            out = []
            for m in d.get("manifests") or []:
                desc = Descriptor.from_dict(m)
                out.append(_Entry(desc, desc.annotations.get(NAME_ANNOTATION, "")))
            return out
        except (ValueError, TypeError, AttributeError, InvalidData) as e:
            raise InvalidData(f"corrupt image index {self.index_path}: {e}") from None

    def _write_entries(self, entries: builtins.list[_Entry]) -> None:
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [e.desc.to_dict() for e in entries],
        }
        data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
        _remove_stale_temps(self.root, ".index.json.")
        tmp = self.root / f".index.json.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.index_path)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[builtins.list[_Entry]]:
        """Hold the index lock; yields the entries, written back on clean exit."""
        self.ensure_layout()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = self._read_entries()
            yield entries
            self._write_entries(entries)
        finally:
            os.close(fd)

    def ensure_layout(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            tmp = self.root / f".oci-layout.{os.getpid()}"
            tmp.write_bytes(OCI_LAYOUT)
            os.replace(tmp, layout)

    # -- loading --------------------------------------------------------------

    def _manifest(self, manifest_digest: str) -> Manifest:
        m = self._manifests.get(manifest_digest)
        if m is None:
            m = self._manifests[manifest_digest] = Manifest.from_json(self.blobs.read(manifest_digest))
        return m

    def _load(self, manifest_digest: str) -> tuple[Manifest, ImageConfig]:
        hit = self._cache.get(manifest_digest)
        if hit is None:
            manifest = self._manifest(manifest_digest)
            config = ImageConfig.from_json(self.blobs.read(manifest.config.digest))
            hit = (manifest, config)
            self._cache[manifest_digest] = hit
        return hit

    def _images(self, entries: builtins.list[_Entry]) -> builtins.list[Image]:
        by_id: dict[str, dict[str, Any]] = {}
        order: builtins.list[str] = []
        for e in entries:
            try:
                manifest, config = self._load(e.desc.digest)
            except (BlobNotFound, InvalidData):
                continue  # an entry whose blobs are gone is not an image
            iid = manifest.config.digest
            rec = by_id.get(iid)
            if rec is None:
                rec = by_id[iid] = {
                    "manifest_digest": e.desc.digest,
                    "manifest": manifest,
                    "config": config,
                    "tags": [],
                    "digests": [],
                    "refs": [],
                    "tag_time": "",
                }
                order.append(iid)
            if e.name:
                try:
                    ref = parse(e.name, default_tag=False)
                except InvalidReference:
                    continue
                rec["refs"].append(ref)
                if ref.digest:
                    rec["digests"].append(ref.familiar())
                elif ref.tag:
                    rec["tags"].append(ref.familiar())
                    rec["manifest_digest"] = e.desc.digest
                    rec["manifest"], rec["config"] = manifest, config
            rec["tag_time"] = max(rec["tag_time"], e.desc.annotations.get(TAG_TIME_ANNOTATION, ""))
        out = []
        for iid in order:
            r = by_id[iid]
            m: Manifest = r["manifest"]
            out.append(
                Image(
                    id=iid,
                    manifest_digest=r["manifest_digest"],
                    manifest=m,
                    config=r["config"],
                    repo_tags=tuple(r["tags"]),
                    repo_digests=tuple(dict.fromkeys(r["digests"])),
                    size=self._size(m),
                    created=r["config"].created,
                    last_tag_time=r["tag_time"],
                    references=tuple(r["refs"]),
                )
            )
        return out

    def _size(self, m: Manifest) -> int:
        """Unpacked size, as Docker shows it: the layers' content sizes where recorded,
        else their tar sizes (gzip's trailer gives them cheaply)."""
        total = 0
        for layer in m.layers:
            n = self._sizes.get(layer.digest)
            if n is None and layer.annotations.get(CONTENT_SIZE_ANNOTATION, "").isdigit():
                n = int(layer.annotations[CONTENT_SIZE_ANNOTATION])
            if n is None:
                n = layer.size
                if mt.compression(layer.media_type) == "gzip":
                    n = _gzip_isize(self.blobs.path(layer.digest), layer.size)
                self._sizes[layer.digest] = n
            total += n
        return total

    # -- queries --------------------------------------------------------------

    def list(self) -> builtins.list[Image]:
        return self._images(self._read_entries())

    def get(self, name: str) -> Image:
        """Find an image by full or short ID, ``sha256:`` prefix, reference or ``name@digest``."""
        images = self.list()
        return _resolve(images, name)

    def lookup(self, name: str) -> Image:
        """The image ``name`` names, found directly: what a container needs to run.

        It accepts the names :meth:`get` accepts, in the same order (full ID, ``sha256:``
        prefix, ``name@digest``, reference, ID prefix) with the same errors, but reads the
        index once and then one manifest and one config (an ID or an ID prefix also reads
        the other manifests, never their configs); :meth:`get` reads every image.  The
        Image carries the names of the index entries that point at its manifest; its
        ``size`` is not computed (0).  When several manifests share one config (the same
        image pulled and loaded), a name gives the manifest it points at.
        """
        entries = self._read_entries()
        if not name:
            raise ImageNotFound(name)
        if name.startswith("sha256:"):
            if is_digest(name):
                img = self._lookup_id(entries, {name})
                if img is not None:
                    return img
            return self._lookup_prefix(entries, name[7:], name)
        try:
            ref = parse(name)
        except InvalidReference:
            if _is_hex(name):
                return self._lookup_prefix(entries, name, name)
            raise
        if ref.digest:
            same = [e for e in entries if e.desc.digest == ref.digest]
            named = [e for e in same if e.name and _repository(e.name) == ref.repository]
            for e in (*named, *same):
                img = self._image_at(entries, e.desc.digest)
                if img is not None:
                    return img
            raise ImageNotFound(name)
        full = str(ref)
        # the index's names are written normalized: compare the strings, and parse them
        # only when that finds nothing (a name another tool wrote)
        hits = [e for e in entries if e.name == full] or [
            e for e in entries if e.name and e.name != full and _normalized(e.name) == full
        ]
        for e in hits:
            img = self._image_at(entries, e.desc.digest)
            if img is not None:
                return img
        if _is_hex(name) and ":" not in name:
            return self._lookup_prefix(entries, name, name)
        raise ImageNotFound(name)

    def _lookup_prefix(self, entries: builtins.list[_Entry], hexpart: str, name: str) -> Image:
        if not _is_hex(hexpart):
            raise ImageNotFound(name)
        ids = {iid for iid in (self._config_digest(e.desc.digest) for e in entries) if iid}
        hits = {iid for iid in ids if iid[7:].startswith(hexpart)}
        if len(hits) == 1:
            img = self._lookup_id(entries, hits)
            if img is not None:
                return img
        raise ImageNotFound(name)

    def _config_digest(self, manifest_digest: str) -> str:
        try:
            return self._manifest(manifest_digest).config.digest
        except (BlobNotFound, InvalidData):
            return ""

    def _lookup_id(self, entries: builtins.list[_Entry], ids: set[str]) -> Image | None:
        """The image whose ID is in ``ids``, at the manifest :meth:`get` would give it
        (the last one named by a tag, else the first)."""
        mine = [e for e in entries if self._config_digest(e.desc.digest) in ids]
        tagged = [e for e in mine if e.name and _is_tag_name(e.name)]
        for e in (*reversed(tagged), *mine):
            img = self._image_at(entries, e.desc.digest)
            if img is not None:
                return img
        return None

    def _image_at(self, entries: builtins.list[_Entry], manifest_digest: str) -> Image | None:
        """The image of one manifest, named by the entries pointing at it (None if its
        blobs are gone: such an entry is not an image)."""
        try:
            manifest, config = self._load(manifest_digest)
        except (BlobNotFound, InvalidData):
            return None
        tags: builtins.list[str] = []
        digests: builtins.list[str] = []
        refs: builtins.list[Reference] = []
        tag_time = ""
        for e in entries:
            if e.desc.digest != manifest_digest:
                continue
            if e.name:
                try:
                    ref = parse(e.name, default_tag=False)
                except InvalidReference:
                    continue
                refs.append(ref)
                if ref.digest:
                    digests.append(ref.familiar())
                elif ref.tag:
                    tags.append(ref.familiar())
            tag_time = max(tag_time, e.desc.annotations.get(TAG_TIME_ANNOTATION, ""))
        return Image(
            id=manifest.config.digest,
            manifest_digest=manifest_digest,
            manifest=manifest,
            config=config,
            repo_tags=tuple(tags),
            repo_digests=tuple(dict.fromkeys(digests)),
            created=config.created,
            last_tag_time=tag_time,
            references=tuple(refs),
        )

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except (ImageNotFound, InvalidReference):
            return False
        return True

    # -- updates --------------------------------------------------------------

    def add(self, manifest_bytes: bytes, media_type: str, refs: builtins.list[Reference]) -> Image:
        """Record an image whose blobs are all in the blob store; point ``refs`` at it."""
        manifest = Manifest.from_json(manifest_bytes, media_type)
        for d in (manifest.config, *manifest.layers):
            if not self.blobs.has(d.digest):
                raise BlobNotFound(d.digest)
        config = ImageConfig.from_json(self.blobs.read(manifest.config.digest))
        if len(config.diff_ids) != len(manifest.layers):
            raise InvalidData(
                f"image config lists {len(config.diff_ids)} layers, manifest {len(manifest.layers)}"
            )
        mdigest = self.blobs.put(manifest_bytes)
        desc = Descriptor(manifest.media_type, mdigest, len(manifest_bytes))
        with self._locked() as entries:
            self._drop_names(entries, [str(r) for r in refs])
            now = _now()
            if not refs and not any(e.desc.digest == mdigest for e in entries):
                entries.append(_Entry(desc, ""))
            for r in refs:
                entries.append(_Entry(_named(desc, r, now), str(r)))
            if refs:
                # a named image needs no dangling entry
                entries[:] = [e for e in entries if e.name or e.desc.digest != mdigest]
            images = self._images(entries)
        return _resolve(images, manifest.config.digest)

    def tag(self, image: str, ref: Reference) -> Image:
        """Point ``ref`` at an image (by name or ID); the name leaves any other image."""
        with self._locked() as entries:
            img = _resolve(self._images(entries), image)
            self._drop_names(entries, [str(ref)])
            src = next(e for e in entries if e.desc.digest == img.manifest_digest)
            desc = Descriptor(src.desc.media_type, src.desc.digest, src.desc.size)
            entries[:] = [e for e in entries if e.name or e.desc.digest != img.manifest_digest]
            entries.append(_Entry(_named(desc, ref, _now()), str(ref)))
            return _resolve(self._images(entries), img.id)

    def untag(self, ref: Reference | str) -> Image:
        """Remove one name; the image stays (dangling if it was its last name)."""
        name = str(ref)
        with self._locked() as entries:
            hit = [e for e in entries if e.name == name]
            if not hit:
                raise ImageNotFound(ref.familiar() if isinstance(ref, Reference) else name)
            self._drop_names(entries, [name])
            return _resolve(self._images(entries), self._image_id_of(hit[0].desc.digest))

    def remove(self, image_id: str) -> None:
        """Forget an image and every name pointing at it (blobs stay until a GC)."""
        with self._locked() as entries:
            img = _resolve(self._images(entries), image_id)
            keep = []
            for e in entries:
                try:
                    m, _ = self._load(e.desc.digest)
                except (BlobNotFound, InvalidData):
                    continue
                if m.config.digest != img.id:
                    keep.append(e)
            entries[:] = keep

    def _drop_names(self, entries: builtins.list[_Entry], names: builtins.list[str]) -> None:
        """Remove names; an image that loses its last name keeps a dangling entry."""
        if not names:
            return
        drop = set(names)
        lost = [e for e in entries if e.name in drop]
        entries[:] = [e for e in entries if e.name not in drop]
        for e in lost:
            iid = self._image_id_of(e.desc.digest)
            still = any(self._image_id_of(x.desc.digest) == iid for x in entries)
            if not still:
                entries.append(_Entry(Descriptor(e.desc.media_type, e.desc.digest, e.desc.size), ""))

    def _image_id_of(self, manifest_digest: str) -> str:
        try:
            return self._load(manifest_digest)[0].config.digest
        except (BlobNotFound, InvalidData):
            return ""

    # -- blobs referenced by the index ---------------------------------------

    def referenced_blobs(self) -> set[str]:
        out: set[str] = set()
        for e in self._read_entries():
            out.add(e.desc.digest)
            try:
                m, _ = self._load(e.desc.digest)
            except (BlobNotFound, InvalidData):
                continue
            out.add(m.config.digest)
            out.update(layer.digest for layer in m.layers)
        return out


def _gzip_isize(path: Path, default: int) -> int:
    """The uncompressed size a gzip member records in its last 4 bytes (mod 2**32)."""
    try:
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            n = int.from_bytes(f.read(4), "little")
    except OSError:
        return default
    while n < default // 2:  # a layer over 4 GiB: the field wrapped around
        n += 1 << 32
    return n


def _remove_stale_temps(root: Path, prefix: str) -> None:
    """Temporary index files of processes that died before renaming them."""
    try:
        names = [n for n in os.listdir(root) if n.startswith(prefix)]
    except FileNotFoundError:
        return
    for n in names:
        pid = n[len(prefix) :]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(FileNotFoundError):
                (root / n).unlink()


def _named(desc: Descriptor, ref: Reference, now: str) -> Descriptor:
    ann = {NAME_ANNOTATION: str(ref), TAG_TIME_ANNOTATION: now}
    if ref.tag and not ref.digest:
        # the full name, not only the tag: unique in a layout holding many repositories
        # (skopeo copy oci:/var/lib/pallet/store:docker.io/library/busybox:latest ...)
        ann[REF_ANNOTATION] = str(ref)
    return Descriptor(desc.media_type, desc.digest, desc.size, annotations=ann)


def _resolve(images: builtins.list[Image], name: str) -> Image:
    """Docker's lookup order: full ID, ``name@digest``, reference, then ID prefix."""
    if not name:
        raise ImageNotFound(name)
    if name.startswith("sha256:"):
        hexpart = name[7:]
        if is_digest(name):
            for img in images:
                if img.id == name:
                    return img
        return _by_prefix(images, hexpart, name)
    ref: Reference | None = None
    try:
        ref = parse(name)
    except InvalidReference:
        if _is_hex(name):
            return _by_prefix(images, name, name)
        raise
    if ref.digest:
        for img in images:
            if img.manifest_digest == ref.digest and any(
                r.repository == ref.repository for r in img.references
            ):
                return img
        for img in images:
            if img.manifest_digest == ref.digest:
                return img
        raise ImageNotFound(name)
    full = str(ref)
    for img in images:
        if any(str(r) == full for r in img.references):
            return img
    if _is_hex(name) and ":" not in name:
        return _by_prefix(images, name, name)
    raise ImageNotFound(name)


def _normalized(name: str) -> str:
    try:
        return str(parse(name, default_tag=False))
    except InvalidReference:
        return ""


def _repository(name: str) -> str:
    try:
        return parse(name, default_tag=False).repository
    except InvalidReference:
        return ""


def _is_tag_name(name: str) -> bool:
    try:
        ref = parse(name, default_tag=False)
    except InvalidReference:
        return False
    return bool(ref.tag) and not ref.digest


def _is_hex(s: str) -> bool:
    return 0 < len(s) <= 64 and all(c in "0123456789abcdef" for c in s)


def _by_prefix(images: builtins.list[Image], hexpart: str, name: str) -> Image:
    if not _is_hex(hexpart):
        raise ImageNotFound(name)
    hits = [img for img in images if img.id[7:].startswith(hexpart)]
    if len(hits) == 1:
        return hits[0]
    raise ImageNotFound(name)


# keep canonical_json importable from here for callers that build manifests
__all__ = ["Image", "ImageStore", "canonical_json"]
