"""Image operations the CLI (and the API) call: import, list, inspect, tag, remove, prune, history, df."""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from pallet.config import Config
from pallet.errors import Conflict, ImageNotFound, InvalidArgument, NotFound
from pallet.oci import mediatypes as mt
from pallet.oci.digest import chain_ids
from pallet.oci.image import ContainerConfig, History, ImageConfig
from pallet.oci.manifest import Descriptor, Manifest
from pallet.oci.reference import Reference, parse
from pallet.store import Image, Store


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def host_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


@dataclass(frozen=True)
class RemoveResult:
    untagged: tuple[str, ...]
    deleted: tuple[str, ...]


@dataclass(frozen=True)
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
            return self.add_image(config, [Descriptor(layer.media_type, layer.digest, layer.size)], reference)

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
                images = [i for i in images if _matches_reference(i, value)]
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
        if prune:
            self.gc(_blobs_of(img))
        return RemoveResult(tuple(untagged), (img.id,))

    def prune(self, all_: bool = False, filters: builtins.list[str] | None = None) -> PruneResult:
        """Dangling images (all unused ones with ``all_``) not used by a container.

        ``filters``: ``until=<duration|timestamp>``, ``label=k[=v]``, ``label!=k[=v]``.
        """
        keep = _prune_filter(filters or [])
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


def _epoch(ts: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (nanoseconds allowed)."""
    import datetime
    import re

    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", ts or "")
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(m.group(1) + frac + tz).timestamp()


def _parse_until(value: str) -> float:
    """Docker's ``until``: a Go duration (``24h``, ``90m``) before now, or a timestamp."""
    import re

    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if value and m and any(m.groups()):
        h, mi, se = (float(x or 0) for x in m.groups())
        return time.time() - (h * 3600 + mi * 60 + se)
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    t = _epoch(value) or _epoch(value + "T00:00:00Z")
    if t is None:
        raise InvalidArgument(f"invalid filter 'until={value}'")
    return t


def _prune_filter(filters: builtins.list[str]) -> Any:
    """A predicate: True for images the filters protect from pruning."""
    checks = []
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if key == "until":
            cutoff = _parse_until(value)
            checks.append(lambda img, c=cutoff: (_epoch(img.created) or 0) >= c)
        elif key in ("label", "label!"):
            k, _, v = value.partition("=")

            def has(img: Image, k: str = k, v: str = v) -> bool:
                labels = img.config.config.labels
                return k in labels and (not v or labels[k] == v)

            if key == "label":
                checks.append(lambda img, h=has: not h(img))
            else:
                checks.append(has)
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return lambda img: any(c(img) for c in checks)


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


def _matches_reference(img: Image, pattern: str) -> bool:
    import fnmatch

    for tag in img.repo_tags:
        repo, _, t = tag.rpartition(":")
        if ":" in pattern.rsplit("/", 1)[-1]:
            if fnmatch.fnmatchcase(tag, pattern):
                return True
        elif fnmatch.fnmatchcase(repo, pattern):
            return True
    return False


def inspect_dict(img: Image) -> dict[str, Any]:
    c = img.config.config
    cfg: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": c.user,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
    }
    if c.exposed_ports:
        cfg["ExposedPorts"] = {p: {} for p in c.exposed_ports}
    cfg.update(
        {
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "Env": list(c.env) or None,
            "Cmd": list(c.cmd) if c.cmd is not None else None,
        }
    )
    if c.healthcheck is not None:
        cfg["Healthcheck"] = c.healthcheck.to_dict()
    if c.args_escaped:
        cfg["ArgsEscaped"] = True
    cfg.update(
        {
            "Image": "",
            "Volumes": {v: {} for v in c.volumes} or None,
            "WorkingDir": c.working_dir,
            "Entrypoint": list(c.entrypoint) if c.entrypoint is not None else None,
            "OnBuild": list(c.on_build) or None,
            "Labels": dict(c.labels) or None,
        }
    )
    if c.stop_signal:
        cfg["StopSignal"] = c.stop_signal
    if c.shell:
        cfg["Shell"] = list(c.shell)
    d: dict[str, Any] = {
        "Id": img.id,
        "RepoTags": list(img.repo_tags),
        "RepoDigests": list(img.repo_digests),
        "Parent": str(img.config.extra.get("parent", "")),
        "Comment": str(img.config.extra.get("comment", "")),
        "Created": img.created,
        "DockerVersion": str(img.config.extra.get("docker_version", "")),
        "Author": img.config.author,
        "Config": cfg,
        "Architecture": img.config.architecture,
    }
    if img.config.variant:
        d["Variant"] = img.config.variant
    d.update(
        {
            "Os": img.config.os,
            "Size": img.size,
            "GraphDriver": {"Data": None, "Name": "overlayfs"},
            "RootFS": {"Type": "layers", "Layers": list(img.config.diff_ids)},
            "Metadata": {"LastTagTime": img.last_tag_time or "0001-01-01T00:00:00Z"},
            "Descriptor": {
                "mediaType": img.manifest.media_type,
                "digest": img.manifest_digest,
                "size": len(img.manifest.to_json()),
            },
        }
    )
    return d


def history_rows(img: Image) -> builtins.list[dict[str, Any]]:
    layers = list(img.manifest.layers)
    hist = list(img.config.history) or [History(created=img.created) for _ in layers]
    rows: builtins.list[dict[str, Any]] = []
    li = 0
    for h in hist:
        size = 0
        if not h.empty_layer and li < len(layers):
            size = layers[li].size
            li += 1
        rows.append(
            {"Id": "<missing>", "Created": h.created, "CreatedBy": h.created_by,
             "Size": size, "Comment": h.comment, "Tags": None}
        )
    rows.reverse()
    if rows:
        rows[0]["Id"] = img.id
        rows[0]["Tags"] = list(img.repo_tags) or None
    return rows


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


__all__ = ["ImageService", "RemoveResult", "PruneResult", "inspect_dict", "history_rows", "replace"]


def export_container(config: Config, name: str, out: BinaryIO) -> None:
    """Write a container's merged filesystem (image layers + its changes) as a tar stream."""
    import shutil
    import subprocess

    from pallet.errors import Unavailable

    try:
        from pallet.engine.containers import ContainerService
        from pallet.engine.rootfs import is_mountpoint
    except ImportError:
        raise Unavailable("export needs the container engine, which is not installed") from None
    c = ContainerService(config).get(name)
    store = Store(config.root / "store")
    tmp: Path | None = None
    src = c.rootfs
    if not is_mountpoint(c.rootfs):
        img = store.images.get(c.spec.image_id)
        lowers = store.snapshots.ensure(img)
        tmp = config.run_root / "export" / f"{c.id[:12]}-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        store.snapshots.mount(lowers, c.dir / "upper", c.dir / "work", tmp, readonly=True)
        src = tmp
    try:
        argv = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=security.capability",
                "-C", str(src), "-cf", "-", "."]
        if _has_fileno(out):
            out.flush()
            r = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE)
        else:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert p.stdout is not None
            shutil.copyfileobj(p.stdout, out, 1 << 20)
            err = p.stderr.read() if p.stderr else b""
            r = subprocess.CompletedProcess(argv, p.wait(), b"", err)
        if r.returncode == -13 or b"Broken pipe" in (r.stderr or b""):
            raise BrokenPipeError
        if r.returncode not in (0, 1):  # 1: a file changed while read (running container)
            raise Unavailable(f"export failed: {r.stderr.decode(errors='replace').strip()}")
    finally:
        if tmp is not None:
            store.snapshots.unmount(tmp)
            with contextlib.suppress(OSError):
                tmp.rmdir()


def _has_fileno(f: object) -> bool:
    try:
        f.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return True
