"""Image operations the CLI (and the API) call: import, list, inspect, tag, remove, prune, history, df."""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pallet.config import Config
from pallet.engine.image_filters import matches_reference, prune_filter
from pallet.engine.image_views import history_rows, inspect_dict
from pallet.errors import Conflict, ImageNotFound, InvalidArgument, NotFound
from pallet.oci import mediatypes as mt
from pallet.oci.digest import chain_ids
from pallet.oci.image import ContainerConfig, History, ImageConfig
from pallet.oci.manifest import Descriptor, Manifest
from pallet.oci.record import record
from pallet.oci.reference import Reference, parse
from pallet.store import Image, Store

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from typing import Any, BinaryIO


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def host_arch() -> str:
    m = os.uname().machine  # what platform.machine() reads, without importing platform
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


@record(frozen=True)
class RemoveResult:
    untagged: tuple[str, ...]
    deleted: tuple[str, ...]


@record(frozen=True)
class PruneResult:
    deleted: tuple[str, ...]  # "Untagged: x" / "Deleted: sha256:..." lines in order
    reclaimed: int


class ImageService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.root / "store")

    # -- locks ----------------------------------------------------------------------

    @contextlib.contextmanager
    def gc_lock(self, shared: bool = True, wait: bool = True) -> Iterator[bool]:
        """Writers of new content hold it shared; garbage collection exclusive."""
        self.store.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.store.root / "gc.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            try:
                fcntl.flock(fd, flags | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    # -- import ---------------------------------------------------------------------

    def import_(
        self,
        source: str,
        ref: str | None = None,
        changes: builtins.list[str] | None = None,
        message: str = "",
        platform_: str = "",
        stdin: BinaryIO | None = None,
        base_config: ContainerConfig | None = None,
    ) -> Image:
        """``docker import``: a one-layer image from a rootfs tarball (file, URL or ``-``)."""
        from pallet.engine.image_changes import apply_changes
        from pallet.store.importer import import_layer

        reference = parse(ref) if ref else None
        cfg = apply_changes(base_config or ContainerConfig(), changes or [])
        arch, os_name, variant = host_arch(), "linux", ""
        if platform_:
            parts = platform_.split("/")
            os_name = parts[0] or "linux"
            if len(parts) > 1:
                arch = parts[1]
            if len(parts) > 2:
                variant = parts[2]
        with self.gc_lock(), _open_source(source, stdin) as src:
            layer = import_layer(src, self.store.blobs)
            created = now_rfc3339()
            comment = message or f"Imported from {source}"
            extra: dict[str, Any] = {"comment": message} if message else {}
            config = ImageConfig(
                architecture=arch,
                os=os_name,
                variant=variant,
                created=created,
                config=cfg,
                diff_ids=(layer.diff_id,),
                history=(History(created=created, comment=comment),),
                extra=extra,
            )
            return self.add_image(config, [layer.descriptor()], reference)

    def add_image(
        self, config: ImageConfig, layers: builtins.list[Descriptor], ref: Reference | None
    ) -> Image:
        """Store a config and an OCI manifest for layers already in the blob store."""
        config_bytes = config.to_json()
        config_digest = self.store.blobs.put(config_bytes)
        manifest = Manifest(
            media_type=mt.OCI_MANIFEST,
            config=Descriptor(mt.OCI_CONFIG, config_digest, len(config_bytes)),
            layers=tuple(layers),
        )
        data = manifest.to_json()
        return self.store.images.add(data, mt.OCI_MANIFEST, [ref] if ref else [])

    # -- queries --------------------------------------------------------------------

    def get(self, name: str) -> Image:
        return self.store.images.get(name)

    def list(self, all_: bool = False, filters: builtins.list[str] | None = None) -> builtins.list[Image]:
        images = self.store.images.list()
        for f in filters or []:
            key, eq, value = f.partition("=")
            if not eq:
                raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
            key = key.strip().lower()
            if key == "dangling":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise InvalidArgument(f"invalid filter 'dangling={value}'")
                want = value.lower() in ("true", "1")
                images = [i for i in images if i.dangling == want]
            elif key == "reference":
                images = [i for i in images if matches_reference(i, value)]
            elif key == "label":
                k, _, v = value.partition("=")
                images = [
                    i
                    for i in images
                    if k in i.config.config.labels and (not v or i.config.config.labels[k] == v)
                ]
            elif key in ("before", "since"):
                pivot = self.get(value)
                images = [
                    i
                    for i in images
                    if (i.created < pivot.created if key == "before" else i.created > pivot.created)
                ]
            else:
                raise InvalidArgument(f"invalid filter '{key}'")
        images.sort(key=lambda i: i.created, reverse=True)
        return images

    def inspect(self, name: str) -> dict[str, Any]:
        return inspect_dict(self.get(name))

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """Rows top layer first: Id, Created, CreatedBy, Size, Comment, Tags."""
        img = self.get(name)
        return history_rows(img)

    # -- names ----------------------------------------------------------------------

    def tag(self, source: str, target: str) -> Image:
        ref = parse(target)
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        return self.store.images.tag(source, ref)

    def remove(self, name: str, force: bool = False, prune: bool = True) -> RemoveResult:
        """``docker rmi NAME``: untag, and delete the image once no name is left."""
        img = self.get(name)
        users = _containers_using(self.config).get(img.id, [])
        by_ref = _names_a_reference(img, name)
        if by_ref is not None:
            if users and not force and len(img.repo_tags) <= 1:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {users[0]} is using its referenced image {img.short_id}"
                )
            self.store.images.untag(by_ref)
            untagged = [by_ref.familiar()]
            left = self.get(img.id)
            if left.repo_tags:
                return RemoveResult(tuple(untagged), ())
            untagged += list(left.repo_digests)
        else:
            if len(img.repo_tags) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {img.short_id} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
            if users and not force:
                raise Conflict(
                    f"conflict: unable to delete {img.short_id} (must be forced) - "
                    f"image is being used by stopped container {users[0]}"
                )
            untagged = list(img.repo_tags) + list(img.repo_digests)
        if users:
            # a container still needs its files: keep the image, dangling
            for t in img.repo_tags:
                with contextlib.suppress(ImageNotFound):
                    self.store.images.untag(parse(t))
            return RemoveResult(tuple(untagged), ())
        self.store.images.remove(img.id)
        layers = self._unshared_layers(img)
        if prune:
            self.gc(_blobs_of(img))
        return RemoveResult(tuple(untagged), (img.id, *layers))

    def _unshared_layers(self, removed: Image) -> builtins.list[str]:
        """Chain IDs of a removed image's layers that no remaining image has (top first),
        which Docker lists as deleted after the image."""
        left: set[str] = set()
        for img in self.store.images.list():
            left.update(chain_ids(list(img.config.diff_ids)))
        mine = chain_ids(list(removed.config.diff_ids))
        return [c for c in reversed(mine) if c not in left]

    def prune(self, all_: bool = False, filters: builtins.list[str] | None = None) -> PruneResult:
        """Dangling images (all unused ones with ``all_``) not used by a container.

        ``filters``: ``until=<duration|timestamp>``, ``label=k[=v]``, ``label!=k[=v]``.
        """
        keep = prune_filter(filters or [])
        used = _containers_using(self.config)
        before = self.disk_usage_bytes()
        lines: builtins.list[str] = []
        cands: set[str] = set()
        for img in self.store.images.list():
            if img.id in used or keep(img):
                continue
            if not all_ and not img.dangling:
                continue
            lines += [f"untagged: {t}" for t in img.repo_tags + img.repo_digests]
            self.store.images.remove(img.id)
            cands |= _blobs_of(img)
            lines.append(f"deleted: {img.id}")
            lines += [f"deleted: {c}" for c in self._unshared_layers(img)]
        self.gc(cands)
        return PruneResult(tuple(lines), max(0, before - self.disk_usage_bytes()))

    # -- garbage collection ---------------------------------------------------------

    def gc(self, candidates: set[str] | None = None, grace: float = 3600.0) -> int:
        """Remove blobs and snapshots no image refers to.

        Unreferenced blobs in ``candidates`` (those of images just removed) go
        at once; other unreferenced blobs only once older than ``grace``
        seconds, since a pull or a build may be writing blobs it has not yet
        recorded in the index.  Skipped while an import holds the GC lock.
        """
        with self.gc_lock(shared=False, wait=False) as got:
            if not got:
                return 0
            keep = self.store.images.referenced_blobs()
            cands = candidates or set()
            cutoff = time.time() - grace
            freed = 0
            for d in self.store.blobs.list():
                if d in keep:
                    continue
                try:
                    st = self.store.blobs.path(d).stat()
                except OSError:
                    continue
                if d in cands or st.st_mtime < cutoff:
                    self.store.blobs.delete(d)
                    freed += st.st_size
            chains: set[str] = set()
            for img in self.store.images.list():
                chains.update(chain_ids(list(img.config.diff_ids)))
            for c in self.store.snapshots.remove_unused(chains):
                freed += self.store.snapshots.size(c)
            self.store.blobs.gc_ingest()
            return freed

    def disk_usage_bytes(self) -> int:
        total = 0
        for d in self.store.blobs.list():
            with contextlib.suppress(Exception):
                total += self.store.blobs.size(d)
        return total

    def df(self) -> dict[str, Any]:
        """Figures for ``system df``: images total/active/size/reclaimable."""
        images = self.store.images.list()
        used = _containers_using(self.config)
        blob_size: dict[str, int] = {}
        for img in images:
            for layer in img.manifest.layers:
                blob_size[layer.digest] = layer.size
        active_layers = {
            layer.digest for img in images if img.id in used for layer in img.manifest.layers
        }
        total = sum(blob_size.values())
        reclaim = sum(s for d, s in blob_size.items() if d not in active_layers)
        return {
            "Images": {
                "TotalCount": len(images),
                "Active": sum(1 for i in images if i.id in used),
                "Size": total,
                "Reclaimable": reclaim,
            },
            "ImageList": images,
            "ContainersUsing": used,
        }


def _blobs_of(img: Image) -> set[str]:
    return {img.manifest_digest, img.manifest.config.digest, *(x.digest for x in img.manifest.layers)}


def _containers_using(config: Config) -> dict[str, builtins.list[str]]:
    try:
        from pallet.engine.containers import image_ids_in_use
    except ImportError:
        return {}
    try:
        return image_ids_in_use(config)
    except NotFound:
        return {}


def _names_a_reference(img: Image, name: str) -> Reference | None:
    """The tag ``name`` designates, when it is a reference to ``img`` (not an ID)."""
    if name.startswith("sha256:"):
        return None
    try:
        ref = parse(name)
    except Exception:
        return None
    full = str(ref)
    for r in img.references:
        if str(r) == full:
            return r
    return None


@contextlib.contextmanager
def _open_source(source: str, stdin: BinaryIO | None) -> Iterator[BinaryIO]:
    if source == "-":
        yield stdin if stdin is not None else sys.stdin.buffer
        return
    if source.startswith(("http://", "https://")):
        import httpx

        from pallet.errors import Unavailable

        try:
            with httpx.stream("GET", source, follow_redirects=True, timeout=60) as r:
                if r.status_code != 200:
                    raise NotFound(f"Get {source!r}: HTTP {r.status_code}")
                yield _HttpReader(r.iter_raw())  # type: ignore[misc]
        except httpx.HTTPError as e:
            raise Unavailable(f"Get {source!r}: {e}") from None
        return
    p = Path(source)
    try:
        f = open(p, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise NotFound(f"open {source}: no such file or directory") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{source} is a directory, not a tarball") from None
    with f:
        yield f


class _HttpReader:
    def __init__(self, it: Iterator[bytes]) -> None:
        self._it = it
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._it, b"")
            if not chunk:
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


__all__ = ["ImageService", "RemoveResult", "PruneResult", "inspect_dict", "history_rows"]


