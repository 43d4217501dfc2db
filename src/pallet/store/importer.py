"""Turn a (possibly compressed) tar stream into a validated, uncompressed layer blob.

One pass: the stream is decompressed (in a child process for gzip/zstd), every
byte is hashed and written to an ingest file, and every tar header is checked
by the same rules extraction applies.  The layer is stored uncompressed
(``application/vnd.oci.image.layer.v1.tar``), so its digest is its DiffID and
no compression is paid at import; a push compresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from pallet.errors import InvalidData
from pallet.oci import mediatypes as mt
from pallet.oci.manifest import Descriptor
from pallet.store.blobs import BlobStore
from pallet.store.compression import decompressed
from pallet.store.images import CONTENT_SIZE_ANNOTATION
from pallet.store.layers import ForwardReader, TarChecker, check_end, open_tar, tar_errors


@dataclass(frozen=True)
class LayerBlob:
    digest: str  # == diff_id (uncompressed)
    size: int
    media_type: str = mt.OCI_LAYER
    entries: int = 0
    content_size: int = 0  # bytes of regular files: what Docker counts as a layer's size

    def descriptor(self) -> Descriptor:
        """The layer's descriptor, with its content size as an annotation."""
        return Descriptor(self.media_type, self.digest, self.size,
                          annotations={CONTENT_SIZE_ANNOTATION: str(self.content_size)})

    @property
    def diff_id(self) -> str:
        return self.digest


def import_layer(src: BinaryIO, blobs: BlobStore, compression: str | None = None) -> LayerBlob:
    """Store the tar read from ``src`` as a layer blob; refuses unsafe or corrupt archives."""
    with decompressed(src, compression) as plain, blobs.writer() as w:
        fr = ForwardReader(plain, w.write)
        checker = TarChecker()
        n = 0
        content = 0
        with tar_errors():
            tf = open_tar(fr)
            for m in tf:
                checker.check(m)
                n += 1
                if m.isreg():
                    content += m.size
            # the rest (end-of-archive blocks and padding) belongs to the layer too
            check_end(tf, fr)
        if n == 0:
            raise InvalidData("invalid tar archive: no entries")
    return LayerBlob(w.digest, w.size, mt.OCI_LAYER, n, content)
