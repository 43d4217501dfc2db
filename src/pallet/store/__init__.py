"""The image store: blobs, the image index, layers and snapshots under one OCI image layout."""

from __future__ import annotations

from pathlib import Path

from pallet.store.blobs import BlobStore
from pallet.store.images import Image, ImageStore
from pallet.store.snapshots import SnapshotStore


class Store:
    """Blobs, images and snapshots of one store root (``Config.root / "store"``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = BlobStore(self.root)
        self.images = ImageStore(self.root, self.blobs)
        self.snapshots = SnapshotStore(self.root, self.blobs)


__all__ = ["BlobStore", "Image", "ImageStore", "SnapshotStore", "Store"]
