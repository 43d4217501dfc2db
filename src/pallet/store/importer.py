"""Turn a (possibly compressed) tar stream into a validated, uncompressed layer blob.

One pass: the stream is decompressed (in a child process for gzip/zstd), every
byte is hashed and written to an ingest file, and every tar header is checked
by the same rules extraction applies.  The layer is stored uncompressed
(``application/vnd.oci.image.layer.v1.tar``), so its digest is its DiffID and
no compression is paid at import; a push compresses.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from pallet.errors import InvalidData
from pallet.oci import mediatypes as mt
from pallet.store.blobs import BlobStore, BlobWriter
from pallet.store.compression import CHUNK, decompressed
from pallet.store.layers import TarChecker, tar_errors


@dataclass(frozen=True)
class LayerBlob:
    digest: str  # == diff_id (uncompressed)
    size: int
    media_type: str = mt.OCI_LAYER
    entries: int = 0

    @property
    def diff_id(self) -> str:
        return self.digest


class _Tee:
    """Reads from ``src`` and copies every byte read into ``w``."""

    def __init__(self, src: BinaryIO, w: BlobWriter) -> None:
        self._src = src
        self._w = w

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self._w.write(data)
        return data


def import_layer(src: BinaryIO, blobs: BlobStore, compression: str | None = None) -> LayerBlob:
    """Store the tar read from ``src`` as a layer blob; refuses unsafe or corrupt archives."""
    with decompressed(src, compression) as plain, blobs.writer() as w:
        tee = _Tee(plain, w)
        checker = TarChecker()
        n = 0
        with tar_errors():
            tf = tarfile.open(fileobj=tee, mode="r|", bufsize=CHUNK)  # type: ignore[call-overload]  # noqa: SIM115
            for m in tf:
                checker.check(m)
                n += 1
        # the rest (end-of-archive blocks and padding) belongs to the layer too
        while tee.read(CHUNK):
            pass
        if w.size < tf.offset + 512:
            raise InvalidData("invalid tar archive: unexpected end of data (truncated archive)")
        if n == 0:
            raise InvalidData("invalid tar archive: no entries")
    return LayerBlob(w.digest, w.size, mt.OCI_LAYER, n)
