"""Content-addressed blobs: ``<root>/blobs/sha256/<hex>``, written atomically.

A write goes to an ingest file under ``<root>/ingest/`` that the writer holds
an ``flock`` on; on a clean finish its size and digest are verified, the data
is fsynced and the file is renamed into place.  Concurrent writers of the same
blob are safe: the content is identical, the last rename wins.  Ingest files
left by a killed writer (no lock held any more) are removed by the next
writer or by :meth:`BlobStore.gc_ingest`.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pallet.errors import BlobNotFound, DigestMismatch, InvalidData
from pallet.oci.digest import encoded, validate

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import BinaryIO

_FSYNC_DIRS = True


class BlobWriter:
    """Streams bytes into an ingest file while hashing them."""

    def __init__(self, fd: int, path: Path) -> None:
        import hashlib  # on first write: reading blobs does not need OpenSSL loaded

        self._fd = fd
        self.path = path
        self._h = hashlib.sha256()
        self.size = 0
        self._digest = ""

    def write(self, chunk: bytes | bytearray | memoryview) -> int:
        self._h.update(chunk)
        view = memoryview(chunk)
        n = len(view)
        while view:
            w = os.write(self._fd, view)
            view = view[w:]
        self.size += n
        return n

    @property
    def digest(self) -> str:
        """The digest of what was written so far (final once the writer is closed)."""
        return self._digest or "sha256:" + self._h.hexdigest()

    def _finish(self) -> str:
        self._digest = "sha256:" + self._h.hexdigest()
        return self._digest


class BlobStore:
    """The blob half of an OCI image layout rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"

    # -- reading ------------------------------------------------------------

    def path(self, digest: str) -> Path:
        validate(digest)
        if not digest.startswith("sha256:"):
            raise InvalidData(f"unsupported digest algorithm: {digest}")
        return self.blob_dir / encoded(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")  # noqa: SIM115 - returned to caller
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def list(self) -> builtins.list[str]:
        try:
            return sorted("sha256:" + n for n in os.listdir(self.blob_dir) if len(n) == 64)
        except FileNotFoundError:
            return []

    # -- writing ------------------------------------------------------------

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data``; returns its digest.  A present blob is not rewritten."""
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is not None and expected != digest:
            raise DigestMismatch(expected, digest)
        if self.has(digest):
            return digest
        with self.writer(expected_digest=digest, expected_size=len(data)) as w:
            w.write(data)
        return digest

    @contextlib.contextmanager
    def writer(
        self, expected_digest: str | None = None, expected_size: int | None = None
    ) -> Iterator[BlobWriter]:
        """A writer whose content becomes a blob on clean exit (verified, fsynced, renamed)."""
        if expected_digest is not None:
            validate(expected_digest)
        self._ensure_dirs()
        self.gc_ingest()
        import tempfile  # only writers need it (reading an image does not)

        while True:
            fd, name = tempfile.mkstemp(dir=self.ingest_dir, prefix="ingest-")
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                break
            os.close(fd)  # a concurrent gc_ingest removed it before we locked it
        path = Path(name)
        w = BlobWriter(fd, path)
        done = False
        try:
            yield w
            digest = w._finish()
            if expected_size is not None and w.size != expected_size:
                raise InvalidData(
                    f"size mismatch for {expected_digest or digest}: "
                    f"expected {expected_size} bytes, got {w.size}"
                )
            if expected_digest is not None and digest != expected_digest:
                raise DigestMismatch(expected_digest, digest)
            os.fsync(fd)
            os.fchmod(fd, 0o644)
            os.rename(path, self.blob_dir / encoded(digest))
            if _FSYNC_DIRS:
                _fsync_dir(self.blob_dir)
            done = True
        finally:
            os.close(fd)
            if not done:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def gc_ingest(self) -> int:
        """Remove ingest files no live writer holds (left by a killed process)."""
        removed = 0
        try:
            names = os.listdir(self.ingest_dir)
        except FileNotFoundError:
            return 0
        for n in names:
            p = self.ingest_dir / n
            try:
                fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                p.unlink()
                removed += 1
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        return removed

    def _ensure_dirs(self) -> None:
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
