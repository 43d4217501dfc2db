"""Pull: resolve a reference to a manifest (choosing a platform from an index) and
download its config and layers into a content store, verified, in parallel.

Nothing here records an image: the caller does that once every blob is in the
store, so a failed pull leaves no image behind (complete, verified blobs stay,
as Docker keeps them; partial downloads are removed by the store's writer).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from pallet.errors import DigestMismatch, InvalidData, NotFound
from pallet.oci import digest as dg
from pallet.oci import mediatypes as mt
from pallet.oci.manifest import Descriptor, Index, Manifest, Platform, sniff_media_type
from pallet.oci.reference import Reference
from pallet.registry.auth import scope_for
from pallet.registry.errors import RegistryInvalidData, RegistryNotFound, RegistryUnavailable
from pallet.registry.parallel import Cancelled, run_all
from pallet.registry.platform import host_platform, select
from pallet.registry.progress import NullProgress, Progress
from pallet.registry.transport import Registry

MANIFEST_ACCEPT = ", ".join(
    [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST]
)
MAX_MANIFEST = 4 << 20  # registries cap manifests at 4 MiB
CHUNK = 1 << 20


class BlobWriter(Protocol):
    def write(self, data: bytes) -> Any: ...


class BlobSink(Protocol):
    """What pull needs of a content store."""

    def has(self, digest: str) -> bool: ...

    def writer(self, expected_digest: str,
               expected_size: int | None = None) -> AbstractContextManager[Any]: ...

    def read(self, digest: str) -> bytes: ...


def short_id(digest: str) -> str:
    return dg.encoded(digest)[:12]


@dataclass(frozen=True)
class Fetched:
    """A manifest or index as the registry sent it."""

    data: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class Pulled:
    reference: Reference
    repo_digest: str  # what the tag pointed to (an index or a manifest)
    manifest_digest: str
    manifest_bytes: bytes
    media_type: str
    manifest: Manifest
    index: Fetched | None
    downloaded: tuple[str, ...]
    existing: tuple[str, ...]


def get_manifest(reg: Registry, path: str, tag_or_digest: str, what: str = "") -> Fetched:
    """GET a manifest or index, verified against the digest asked for or announced."""
    with reg.stream(
        "GET", f"/v2/{path}/manifests/{tag_or_digest}", scope=scope_for(path),
        headers={"Accept": MANIFEST_ACCEPT}, what=what or f"{reg.domain}/{path}:{tag_or_digest}",
    ) as resp:
        declared = int(resp.headers.get("content-length") or 0)
        if declared > MAX_MANIFEST:
            raise RegistryInvalidData(f"manifest too big: {declared} bytes")
        buf = bytearray()
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > MAX_MANIFEST:
                raise RegistryInvalidData(f"manifest too big: more than {MAX_MANIFEST} bytes")
        data = bytes(buf)
        header_digest = resp.headers.get("docker-content-digest", "")
        ctype = resp.headers.get("content-type", "").split(";")[0].strip()
    actual = dg.of_bytes(data)
    if dg.is_digest(tag_or_digest) and actual != tag_or_digest:
        raise DigestMismatch(tag_or_digest, actual)
    if header_digest and dg.is_digest(header_digest) and header_digest != actual:
        raise DigestMismatch(header_digest, actual)
    media_type = sniff_media_type(data)
    if media_type not in mt.MANIFESTS | mt.INDEXES and ctype in mt.MANIFESTS | mt.INDEXES:
        media_type = ctype
    if media_type not in mt.MANIFESTS | mt.INDEXES:
        raise RegistryInvalidData(f"unsupported manifest media type: {media_type or ctype}")
    return Fetched(data, media_type, actual)


def list_tags(reg: Registry, path: str, page: int = 1000) -> list[str]:
    """Every tag of a repository (``GET /v2/<name>/tags/list``, following ``Link``)."""
    tags: list[str] = []
    url = f"/v2/{path}/tags/list?n={page}"
    for _ in range(10000):
        with reg.stream("GET", url, scope=scope_for(path), what=f"{reg.domain}/{path}") as resp:
            resp.read()
            link = resp.headers.get("link", "")
            try:
                body = resp.json()
            except ValueError:
                raise RegistryInvalidData(f"invalid tag list from {reg.domain}") from None
        tags += [str(t) for t in body.get("tags") or []]
        # Link: </v2/name/tags/list?last=x&n=100>; rel="next"
        if 'rel="next"' not in link or "<" not in link:
            break
        url = link[link.index("<") + 1 : link.index(">")]
    return tags


def resolve(reg: Registry, ref: Reference, platform: Platform | None = None
            ) -> tuple[Fetched, Fetched | None]:
    """``(manifest, index)`` for a reference; the index is None for a single manifest."""
    what = ref.familiar()
    top = get_manifest(reg, ref.path, ref.digest or ref.tag, what)
    if top.media_type not in mt.INDEXES:
        return top, None
    index = Index.from_json(top.data, top.media_type)
    want = platform or host_platform()
    desc = select(index, want)
    man = get_manifest(reg, ref.path, desc.digest, what)
    if man.media_type in mt.INDEXES:
        raise RegistryInvalidData(f"nested index for {want} in {what} is not supported")
    return man, top


def fetch_blob(reg: Registry, path: str, desc: Descriptor, sink: BlobSink,
               progress: Progress | None = None, key: str = "",
               cancel: threading.Event | None = None) -> None:
    """Download one blob into ``sink``, verified; resume (Range) after a dropped
    connection or a short body, within the retry budget."""
    import httpx

    progress = progress or NullProgress()
    key = key or short_id(desc.digest)
    url = f"/v2/{path}/blobs/{desc.digest}"
    attempts = timeouts = 0
    with sink.writer(desc.digest, desc.size) as w:
        got = 0
        progress.start(key, desc.size, "Downloading")
        while True:
            headers = {"Range": f"bytes={got}-"} if got else {}
            try:
                with reg.stream("GET", url, scope=scope_for(path), headers=headers,
                                ok=(200, 206), what=f"blob {desc.digest}") as resp:
                    skip = got if resp.status_code == 200 else 0
                    for chunk in resp.iter_raw():
                        if cancel is not None and cancel.is_set():
                            raise Cancelled(desc.digest)
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        got += len(chunk)
                        if got > desc.size:
                            raise RegistryInvalidData(
                                f"blob {desc.digest}: more data than the {desc.size} bytes "
                                "announced"
                            )
                        w.write(chunk)
                        progress.advance(key, len(chunk))
            except RegistryNotFound:
                raise RegistryNotFound(
                    f"blob unknown: {desc.digest} (the manifest points to a missing blob)",
                    404, "BLOB_UNKNOWN",
                ) from None
            except httpx.TimeoutException:
                # the body stalled; one more try from where it stopped, then give up
                if timeouts >= 1:
                    raise RegistryUnavailable(
                        f"failed to download {desc.digest}: timeout: no data within "
                        f"{reg.options.timeout:g}s ({got} of {desc.size} bytes)"
                    ) from None
                timeouts += 1
                continue
            except httpx.TransportError as e:
                if attempts >= reg.options.retries:
                    why = (f"unexpected EOF ({got} of {desc.size} bytes)"
                           if isinstance(e, httpx.RemoteProtocolError) else _why(e))
                    raise RegistryUnavailable(
                        f"failed to download {desc.digest}: {why} after {attempts + 1} attempts"
                    ) from None
                attempts += 1
                reg.options.sleep(reg.options.backoff * (2 ** (attempts - 1)))
                continue
            if got == desc.size:
                break
            if attempts >= reg.options.retries:
                raise RegistryInvalidData(
                    f"failed to download {desc.digest}: unexpected EOF "
                    f"({got} of {desc.size} bytes)"
                )
            attempts += 1
            reg.options.sleep(reg.options.backoff * (2 ** (attempts - 1)))
        progress.status(key, "Verifying Checksum")
    progress.status(key, "Download complete")


def _why(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__


def _check_platform(sink: BlobSink, config_digest: str, want: Platform, ref: Reference) -> None:
    import json

    from pallet.registry.platform import matches

    try:
        cfg = json.loads(sink.read(config_digest))
    except (ValueError, UnicodeDecodeError):
        raise RegistryInvalidData(f"invalid image config {config_digest}") from None
    have = Platform(architecture=str(cfg.get("architecture") or ""), os=str(cfg.get("os") or ""),
                    variant=str(cfg.get("variant") or ""))
    if not matches(have, want):
        raise NotFound(f"image with reference {ref.familiar()} was found but does not match the "
                       f"specified platform: wanted {want}, actual: {have}")


def pull(reg: Registry, ref: Reference, sink: BlobSink, *, platform: Platform | None = None,
         progress: Progress | None = None) -> Pulled:
    """Fetch everything ``ref`` needs into ``sink``; the caller records the image."""
    progress = progress or NullProgress()
    man, index = resolve(reg, ref, platform)
    manifest = Manifest.from_json(man.data, man.media_type)
    for d in manifest.layers:
        if d.urls and d.media_type == mt.DOCKER_LAYER_FOREIGN:
            raise InvalidData(f"foreign layer {d.digest} is not supported")
    # the config first (small): a single-platform image must match --platform
    config_new = not sink.has(manifest.config.digest)
    if config_new:
        fetch_blob(reg, ref.path, manifest.config, sink)
    if platform is not None and index is None:
        _check_platform(sink, manifest.config.digest, platform, ref)
    seen: set[str] = {manifest.config.digest}
    todo: list[Descriptor] = []
    existing: list[str] = [] if config_new else [manifest.config.digest]
    for d in manifest.layers:
        if d.digest in seen:
            continue
        seen.add(d.digest)
        if sink.has(d.digest):
            existing.append(d.digest)
            progress.status(short_id(d.digest), "Already exists")
        else:
            todo.append(d)
            progress.status(short_id(d.digest), "Pulling fs layer")

    def one(d: Descriptor, cancel: threading.Event) -> None:
        fetch_blob(reg, ref.path, d, sink, progress, cancel=cancel)

    run_all(one, todo, reg.options.max_workers, "pull")
    for d in manifest.layers:
        if d.digest in {x.digest for x in todo}:
            progress.status(short_id(d.digest), "Pull complete")
    return Pulled(
        reference=ref,
        repo_digest=(index or man).digest,
        manifest_digest=man.digest,
        manifest_bytes=man.data,
        media_type=man.media_type,
        manifest=manifest,
        index=index,
        downloaded=tuple(d.digest for d in todo) + ((manifest.config.digest,) if config_new
                                                     else ()),
        existing=tuple(existing),
    )
