"""Pull, push, save and load: the registry client and the archive formats over the store.

Distribution metadata lives beside the store in ``<root>/distribution/``:

* ``sources/<hex>``: the repositories (``domain/path``) a blob was pulled from or
  pushed to, so a later push to another repository of the same registry can
  mount it instead of uploading it;
* ``compressed/<hex>``: for a layer the store keeps uncompressed (loaded from a
  Docker archive, built or imported locally), the digest and size of its gzip
  form, compressed once and kept in the store, so pushing it again is cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from pallet.config import Config
from pallet.errors import ImageNotFound, InvalidArgument
from pallet.oci import digest as dg
from pallet.oci import mediatypes as mt
from pallet.oci.manifest import Descriptor, Manifest, Platform
from pallet.oci.reference import Reference, parse
from pallet.registry.auth import AuthStore, Credentials
from pallet.registry.platform import host_platform
from pallet.registry.progress import NullProgress, Progress
from pallet.registry.transport import Options, Registry

GZIP_LEVEL = 6
BUF = 1 << 20


# -- store access ---------------------------------------------------------------------


def stores(config: Config) -> tuple[Any, Any]:
    """``(blobs, images)`` of the image store under ``config.root``."""
    from pallet.store import Store

    store = Store(config.root / "store")
    return store.blobs, store.images


@contextlib.contextmanager
def _writing(config: Config) -> Iterator[None]:
    """Hold the store's GC lock shared while blobs not yet recorded are written."""
    from pallet.engine.images import ImageService

    with ImageService(config).gc_lock():
        yield


def _tmpdir(config: Config) -> Path:
    d = config.root / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return d


class Metadata:
    """Blob sources and compressed forms (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root / "distribution"

    def _file(self, kind: str, digest: str) -> Path:
        return self.root / kind / dg.encoded(dg.validate(digest))

    def _read(self, kind: str, digest: str) -> Any:
        try:
            return json.loads(self._file(kind, digest).read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def _write(self, kind: str, digest: str, obj: Any) -> None:
        p = self._file(kind, digest)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}")
        tmp.write_text(json.dumps(obj))
        os.replace(tmp, p)

    def sources(self, digest: str) -> list[str]:
        v = self._read("sources", digest)
        return [str(x) for x in v] if isinstance(v, list) else []

    def add_source(self, digest: str, repository: str) -> None:
        cur = self.sources(digest)
        if repository in cur:
            return
        self._write("sources", digest, ([repository] + cur)[:16])

    def compressed(self, digest: str) -> tuple[str, int] | None:
        v = self._read("compressed", digest)
        if isinstance(v, dict) and dg.is_digest(str(v.get("digest"))):
            return str(v["digest"]), int(v.get("size", 0))
        return None

    def set_compressed(self, digest: str, gz_digest: str, size: int) -> None:
        self._write("compressed", digest, {"digest": gz_digest, "size": size})


def options(config: Config, tls_verify: bool = True) -> Options:
    extra = config.extra.get("insecure-registries", "")
    kw: dict[str, Any] = {"tls_verify": tls_verify}
    opts = Options.from_env(**kw)
    if extra:
        more = tuple(s.strip() for s in extra.split(",") if s.strip())
        opts = Options.from_env(insecure_registries=opts.insecure_registries + more, **kw)
    return opts


def credentials(domain: str) -> Credentials:
    return AuthStore().get(domain)


# -- pull -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PullResult:
    reference: Reference
    image_id: str
    repo_digest: str
    downloaded: bool


def pull(config: Config, name: str, *, platform: str = "", tls_verify: bool = True,
         progress: Progress | None = None, out: TextIO | None = None) -> PullResult:
    """Pull ``name`` and record it; prints Docker's status lines to ``out``."""
    from pallet.registry.pull import pull as do_pull

    ref = parse(name)
    progress = progress or NullProgress()
    plat = Platform.parse(platform) if platform else None
    blobs, images = stores(config)
    say = out.write if out is not None else (lambda s: 0)
    say(f"{ref.tag or ref.digest}: Pulling from {ref.path}\n")
    if out is not None:
        out.flush()
    before = _image_id_for(images, str(ref)) if ref.tag else ""
    with _writing(config):
        try:
            with Registry(ref.domain, credentials(ref.domain),
                          options(config, tls_verify)) as reg:
                got = do_pull(reg, ref, blobs, platform=plat, progress=progress)
        finally:
            progress.close()
        refs = [ref.with_digest(got.repo_digest)]
        if ref.tag:
            refs.insert(0, ref)
        image = images.add(got.manifest_bytes, got.media_type, refs)
    meta = Metadata(config.root)
    for d in (got.manifest.config, *got.manifest.layers):
        meta.add_source(d.digest, ref.repository)
    say(f"Digest: {got.repo_digest}\n")
    image_id = str(getattr(image, "id", ""))
    fresh = bool(got.downloaded) or before != image_id
    say(f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'} for "
        f"{ref.familiar()}\n")
    return PullResult(ref, image_id, got.repo_digest, fresh)


def remote_tags(config: Config, name: str, tls_verify: bool = True) -> list[str]:
    """``pull --all-tags``: the references of every tag of a remote repository."""
    from pallet.registry.pull import list_tags

    ref = parse(name, default_tag=False)
    if ref.tag or ref.digest:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    with Registry(ref.domain, credentials(ref.domain), options(config, tls_verify)) as reg:
        return [str(ref.with_tag(t)) for t in sorted(list_tags(reg, ref.path))]


def _image_id_for(images: Any, name: str) -> str:
    try:
        return str(images.get(name).id)
    except ImageNotFound:
        return ""
    except Exception:  # noqa: BLE001 - a missing image is all that matters here
        return ""


# -- push -----------------------------------------------------------------------------


def _manifest_bytes(blobs: Any, image: Any) -> tuple[bytes, str]:
    data = blobs.read(image.manifest_digest)
    man = getattr(image, "manifest", None)
    media_type = getattr(man, "media_type", "") or ""
    if not media_type:
        from pallet.oci.manifest import sniff_media_type

        media_type = sniff_media_type(data)
    return data, media_type


def _gzip_layer(blobs: Any, meta: Metadata, desc: Descriptor, tmp: Path) -> Descriptor:
    """The gzip form of an uncompressed layer, made once and kept in the store."""
    media = mt.OCI_LAYER_GZIP if desc.media_type.startswith("application/vnd.oci") \
        else mt.DOCKER_LAYER_GZIP
    cached = meta.compressed(desc.digest)
    if cached and blobs.has(cached[0]):
        return Descriptor(media, cached[0], cached[1], desc.annotations)
    from pallet.registry.compress import gzip_stream

    with blobs.writer() as w, blobs.open(desc.digest) as src:
        gzip_stream(src, w.write, level=GZIP_LEVEL)
    digest, size = w.digest, w.size
    meta.set_compressed(desc.digest, digest, size)
    return Descriptor(media, digest, size, desc.annotations)


def distributable(blobs: Any, meta: Metadata, data: bytes, media_type: str,
                  tmp: Path) -> tuple[bytes, str]:
    """The manifest to push: as stored when every layer is compressed, else one whose
    uncompressed layers are replaced by their gzip form."""
    man = Manifest.from_json(data, media_type)
    if all(mt.compression(d.media_type) for d in man.layers):
        return data, media_type
    from concurrent.futures import ThreadPoolExecutor

    def one(d: Descriptor) -> Descriptor:
        return d if mt.compression(d.media_type) else _gzip_layer(blobs, meta, d, tmp)

    # zlib releases the GIL: layers compress in parallel on several cores
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        layers = tuple(pool.map(one, man.layers))
    new = Manifest(man.media_type, man.config, layers, man.annotations, man.schema_version)
    body = json.dumps(new.to_dict(), indent=3).encode()
    return body, man.media_type


def push(config: Config, name: str, *, tls_verify: bool = True, chunk_size: int = 0,
         progress: Progress | None = None, out: TextIO | None = None) -> str:
    """Push a local image; returns the manifest digest the registry holds."""
    from pallet.registry.push import push as do_push

    ref = parse(name)
    blobs, images = stores(config)
    image = images.get(name)
    progress = progress or NullProgress()
    say = out.write if out is not None else (lambda s: 0)
    say(f"The push refers to repository [{ref.repository}]\n")
    if out is not None:
        out.flush()
    meta = Metadata(config.root)
    data, media_type = _manifest_bytes(blobs, image)
    with _writing(config):
        data, media_type = distributable(blobs, meta, data, media_type, _tmpdir(config))

    def candidates(digest: str) -> tuple[str, ...]:
        out_: list[str] = []
        for r in meta.sources(digest):
            dom, _, path = r.partition("/")
            if dom == ref.domain and path != ref.path:
                out_.append(path)
        return tuple(out_[:3])

    try:
        with Registry(ref.domain, credentials(ref.domain), options(config, tls_verify)) as reg:
            res = do_push(reg, ref, blobs, data, media_type, mount_candidates=candidates,
                          chunk_size=chunk_size, progress=progress)
    finally:
        progress.close()
    man = Manifest.from_json(data, media_type)
    for d in (man.config, *man.layers):
        meta.add_source(d.digest, ref.repository)
    say(f"{ref.tag or 'latest'}: digest: {res.digest} size: {res.size}\n")
    return res.digest


def tags_of_repository(config: Config, name: str) -> list[str]:
    """``push --all-tags``: every local tag of the repository ``name`` names."""
    ref = parse(name, default_tag=False)
    if ref.tag or ref.digest:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    _, images = stores(config)
    out = sorted({str(r) for img in images.list() for r in img.references
                  if r.tag and not r.digest and r.repository == ref.repository})
    if not out:
        raise InvalidArgument(f"An image does not exist locally with the tag: "
                              f"{ref.familiar_repository}")
    return out


# -- save / load ----------------------------------------------------------------------

FORMATS = ("docker-archive", "oci-archive", "oci-dir")


def _save_items(config: Config, names: list[str]) -> list[Any]:
    from pallet.store.archive import SaveItem

    blobs, images = stores(config)
    items: list[SaveItem] = []
    for name in names:
        repo_items = _repository_items(blobs, images, name)
        if repo_items:
            items += repo_items
            continue
        image = images.get(name)
        data, media_type = _manifest_bytes(blobs, image)
        tags: tuple[str, ...] = ()
        by_id = dg.is_hex_id(name) or name.startswith("sha256:") or (
            len(name) < 64 and all(c in "0123456789abcdef" for c in name)
            and str(image.id).replace("sha256:", "").startswith(name)
        )
        if not by_id:
            ref = parse(name)
            if ref.tag:
                tags = (ref.familiar(),)
        items.append(SaveItem(Manifest.from_json(data, media_type), data, media_type, tags))
    return items


def _repository_items(blobs: Any, images: Any, name: str) -> list[Any]:
    """``save REPO`` without a tag: every tagged image of that repository, as Docker."""
    from pallet.errors import InvalidReference
    from pallet.store.archive import SaveItem

    try:
        ref = parse(name, default_tag=False)
    except InvalidReference:
        return []
    if ref.tag or ref.digest:
        return []
    by_image: dict[str, tuple[Any, list[str]]] = {}
    for img in images.list():
        for r in img.references:
            if r.repository == ref.repository and r.tag and not r.digest:
                by_image.setdefault(img.id, (img, []))[1].append(r.familiar())
    out = []
    for img, tags in by_image.values():
        data, media_type = _manifest_bytes(blobs, img)
        out.append(SaveItem(Manifest.from_json(data, media_type), data, media_type,
                            tuple(sorted(tags))))
    return out


def save(config: Config, names: list[str], output: str = "", fmt: str = "docker-archive",
         stdout: BinaryIO | None = None) -> None:
    """Write images to ``output`` (a file, or a directory for oci-dir) or to stdout."""
    from pallet.store import archive

    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown format {fmt!r} (want one of {', '.join(FORMATS)})")
    if not names:
        raise InvalidArgument('"save" requires at least 1 argument.')
    blobs, _ = stores(config)
    items = _save_items(config, names)
    tmp = _tmpdir(config)
    if fmt == "oci-dir":
        if not output:
            raise InvalidArgument("--format oci-dir needs -o DIRECTORY")
        archive.write_oci_layout(Path(output), items, blobs)
        return
    with _output(output, stdout) as f:
        if fmt == "docker-archive":
            archive.write_docker_archive(f, items, blobs, tmp)
        else:
            archive.write_oci_archive(f, items, blobs)


@contextlib.contextmanager
def _output(output: str, stdout: BinaryIO | None) -> Iterator[BinaryIO]:
    if not output:
        out = stdout or sys.stdout.buffer
        if out.isatty():
            raise InvalidArgument(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect"
            )
        yield out
        out.flush()
        return
    target = Path(output)
    if target.is_dir():
        raise InvalidArgument(f"{output} is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    fd, tmpname = tempfile.mkstemp(prefix=f".{target.name}.", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f  # type: ignore[misc]
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmpname, 0o600)
        os.replace(tmpname, target)
    except BaseException:
        Path(tmpname).unlink(missing_ok=True)
        raise


def load(config: Config, input_: str = "", stdin: BinaryIO | None = None,
         platform: str = "") -> list[str]:
    """Load every image of an archive; returns Docker's ``Loaded image...`` lines."""
    from pallet.errors import InvalidData
    from pallet.store import archive

    blobs, images = stores(config)
    plat = Platform.parse(platform) if platform else host_platform()
    tmp = _tmpdir(config)
    lines: list[str] = []
    with _writing(config):
        if input_:
            p = Path(input_)
            if not p.exists():
                raise InvalidArgument(f"open {input_}: no such file or directory")
            loaded = archive.load(p, blobs, tmp, plat)
        else:
            src = stdin or sys.stdin.buffer
            if src.isatty():
                raise InvalidArgument("requested load from stdin, but stdin is empty")
            loaded = archive.load(src, blobs, tmp, plat)
        if not loaded:
            raise InvalidData("the archive holds no image")
        for item in loaded:
            refs = [parse(r) for r in item.refs]
            image = images.add(item.manifest_bytes, item.media_type, refs)
            if item.refs:
                lines += [f"Loaded image: {parse(r).familiar()}" for r in item.refs]
            else:
                lines.append(f"Loaded image ID: {getattr(image, 'id', item.config_digest)}")
    return lines
