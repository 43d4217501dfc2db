"""Push: blobs first (HEAD to skip, cross-repository mount, monolithic or chunked
upload), the manifest last, so a registry never holds a manifest whose blobs are
missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlencode

from pallet.oci import digest as dg
from pallet.oci.manifest import Descriptor, Manifest
from pallet.oci.reference import Reference
from pallet.registry.auth import scope_for
from pallet.registry.errors import RegistryError, RegistryInvalidData
from pallet.registry.parallel import Cancelled, run_all
from pallet.registry.progress import NullProgress, Progress
from pallet.registry.pull import short_id
from pallet.registry.transport import Registry

CHUNK = 1 << 20


class BlobSource(Protocol):
    def open(self, digest: str) -> BinaryIO: ...


@dataclass(frozen=True)
class Pushed:
    reference: Reference
    digest: str
    size: int
    uploaded: tuple[str, ...]
    mounted: tuple[str, ...]
    existing: tuple[str, ...]


def _with_param(location: str, **params: str) -> str:
    sep = "&" if "?" in location else "?"
    return location + sep + urlencode(params)


def blob_exists(reg: Registry, path: str, digest: str) -> bool:
    resp = reg.send("HEAD", f"/v2/{path}/blobs/{digest}", scope=scope_for(path, push=True))
    resp.close()
    if resp.status_code == 200:
        return True
    if resp.status_code == 404:
        return False
    from pallet.registry.errors import from_response

    raise from_response(resp.status_code, b"")


def _file_body(src: BlobSource, digest: str, start: int, length: int,
               progress: Progress, key: str) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        with src.open(digest) as f:
            f.seek(start)
            left = length
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise RegistryInvalidData(f"blob {digest} is shorter than its descriptor")
                left -= len(chunk)
                progress.advance(key, len(chunk))
                yield chunk

    return gen


def start_upload(reg: Registry, path: str, digest: str = "",
                 mount_from: str = "") -> tuple[str, bool]:
    """POST an upload session; ``(location, mounted)``.  With ``mount_from`` the
    registry may mount the blob from that repository at once (201)."""
    scope = scope_for(path, push=True)
    params = {}
    if mount_from and digest:
        params = {"mount": digest, "from": mount_from}
        scope += " " + scope_for(mount_from)
    resp = reg.request("POST", f"/v2/{path}/blobs/uploads/", scope=scope, params=params or None,
                       ok=(201, 202), what=f"upload to {reg.domain}/{path}")
    resp.close()
    if resp.status_code == 201 and mount_from:
        return "", True
    loc = resp.headers.get("location", "")
    if not loc:
        raise RegistryError(f"{reg.domain}: upload started without a Location")
    return reg.url(loc) if loc.startswith("/") else loc, False


def upload_blob(reg: Registry, path: str, src: BlobSource, desc: Descriptor,
                location: str, *, chunk_size: int = 0,
                progress: Progress | None = None) -> None:
    """Send a blob to an upload session: one PUT, or PATCH chunks then PUT."""
    progress = progress or NullProgress()
    key = short_id(desc.digest)
    scope = scope_for(path, push=True)
    progress.start(key, desc.size, "Pushing")
    octet = {"Content-Type": "application/octet-stream"}
    if chunk_size <= 0 or desc.size <= chunk_size:
        resp = reg.request(
            "PUT", _with_param(location, digest=desc.digest), scope=scope, ok=(201, 204),
            headers={**octet, "Content-Length": str(desc.size)},
            body=_file_body(src, desc.digest, 0, desc.size, progress, key),
            what=f"blob {desc.digest}",
        )
        resp.close()
        return
    offset = 0
    while offset < desc.size:
        n = min(chunk_size, desc.size - offset)
        resp = reg.request(
            "PATCH", location, scope=scope, ok=(202, 204),
            headers={**octet, "Content-Length": str(n),
                     "Content-Range": f"{offset}-{offset + n - 1}"},
            body=_file_body(src, desc.digest, offset, n, progress, key),
            what=f"blob {desc.digest}",
        )
        resp.close()
        loc = resp.headers.get("location", "")
        if loc:
            location = reg.url(loc) if loc.startswith("/") else loc
        offset += n
    resp = reg.request("PUT", _with_param(location, digest=desc.digest), scope=scope,
                       ok=(201, 204), headers={"Content-Length": "0"},
                       what=f"blob {desc.digest}")
    resp.close()


def push_blob(reg: Registry, path: str, src: BlobSource, desc: Descriptor, *,
              mount_candidates: tuple[str, ...] = (), chunk_size: int = 0,
              progress: Progress | None = None, show: bool = True) -> str:
    """Make sure the registry holds a blob: 'exists', 'mounted' or 'uploaded'."""
    progress = progress or NullProgress()
    key = short_id(desc.digest)
    if show:
        progress.status(key, "Preparing")
    if blob_exists(reg, path, desc.digest):
        if show:
            progress.status(key, "Layer already exists")
        return "exists"
    location = ""
    for repo in mount_candidates:
        if repo == path:
            continue
        location, mounted = start_upload(reg, path, desc.digest, mount_from=repo)
        if mounted:
            if show:
                progress.status(key, f"Mounted from {repo}")
            return "mounted"
        break
    attempt = 0
    while True:
        if not location:
            location, _ = start_upload(reg, path)
        try:
            upload_blob(reg, path, src, desc, location, chunk_size=chunk_size,
                        progress=progress if show else NullProgress())
            break
        except RegistryError as e:
            # the registry lost or refused the upload session (after a dropped
            # connection, say): start a new one, twice at most
            if attempt >= 2 or e.code not in ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"):
                raise
            attempt += 1
            location = ""
            reg.options.sleep(reg.options.backoff * (2 ** (attempt - 1)))
    if show:
        progress.status(key, "Pushed")
    return "uploaded"


def push_manifest(reg: Registry, path: str, tag_or_digest: str, data: bytes,
                  media_type: str) -> str:
    digest = dg.of_bytes(data)
    resp = reg.request(
        "PUT", f"/v2/{path}/manifests/{tag_or_digest}", scope=scope_for(path, push=True),
        ok=(200, 201, 202), headers={"Content-Type": media_type}, body=lambda: data,
        what=f"{reg.domain}/{path}:{tag_or_digest}",
    )
    resp.close()
    announced = resp.headers.get("docker-content-digest", "")
    if announced and announced != digest:
        raise RegistryInvalidData(
            f"registry stored the manifest as {announced}, expected {digest}"
        )
    return digest


def push(reg: Registry, ref: Reference, src: BlobSource, manifest_bytes: bytes,
         media_type: str, *, mount_candidates: Callable[[str], tuple[str, ...]] | None = None,
         chunk_size: int = 0, progress: Progress | None = None) -> Pushed:
    """Push one image manifest and everything it references, the manifest last."""
    progress = progress or NullProgress()
    manifest = Manifest.from_json(manifest_bytes, media_type)
    blobs: list[tuple[Descriptor, bool]] = [(d, True) for d in manifest.layers]
    blobs.append((manifest.config, False))
    uniq: dict[str, tuple[Descriptor, bool]] = {}
    for d, show in blobs:
        uniq.setdefault(d.digest, (d, show))

    def one(item: tuple[Descriptor, bool], cancel: threading.Event) -> tuple[str, str]:
        d, show = item
        if cancel.is_set():
            raise Cancelled(d.digest)
        cands = mount_candidates(d.digest) if mount_candidates else ()
        return d.digest, push_blob(reg, ref.path, src, d, mount_candidates=cands,
                                   chunk_size=chunk_size, progress=progress, show=show)

    results = dict(run_all(one, list(uniq.values()), reg.options.max_workers, "push"))
    digest = push_manifest(reg, ref.path, ref.digest or ref.tag or "latest", manifest_bytes,
                           media_type)
    by: dict[str, list[str]] = {"exists": [], "mounted": [], "uploaded": []}
    for k, v in results.items():
        by[v].append(k)
    return Pushed(ref, digest, len(manifest_bytes), tuple(by["uploaded"]),
                  tuple(by["mounted"]), tuple(by["exists"]))


def push_raw(reg: Registry, path: str, data: bytes, media_type: str = "") -> Descriptor:
    """Upload small in-memory content (a config, a test layer) as a blob."""

    class _Mem:
        def open(self, digest: str) -> Any:
            import io

            return io.BytesIO(data)

    desc = Descriptor(media_type or "application/octet-stream", dg.of_bytes(data), len(data))
    push_blob(reg, path, _Mem(), desc, show=False)
    return desc
