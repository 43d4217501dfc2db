"""A container's root filesystem: its image's layers under a private overlay upper dir."""

from __future__ import annotations

import os
from pathlib import Path

from pallet.config import Config
from pallet.errors import ImageNotFound
from pallet.linux.mounts import unmount_all
from pallet.oci.image import ImageConfig
from pallet.oci.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record(frozen=True)
class ImageInfo:
    id: str  # sha256:...
    config: ImageConfig
    handle: Any  # the store's image object


class Images:
    """The parts of the image store a container needs (lookup, layers, mount)."""

    def __init__(self, config: Config) -> None:
        from pallet.store.blobs import BlobStore
        from pallet.store.images import ImageStore
        from pallet.store.snapshots import SnapshotStore

        self.config = config
        root = config.root / "store"
        blobs = BlobStore(root)
        self.images = ImageStore(root, blobs)
        self.snapshots = SnapshotStore(root, blobs)

    def get(self, ref: str) -> ImageInfo:
        img = self.images.get(ref)
        if img is None:
            raise ImageNotFound(ref)
        return ImageInfo(str(img.id), img.config, img)

    def mount(self, info: ImageInfo, upper: Path, work: Path, target: Path) -> None:
        """Mount the container's rootfs at ``target``.  A remapped container (its
        directory, ``upper``'s parent, records a user namespace range) gets its
        layers through idmapped mounts, and its upper directory (the top of its
        rootfs) belongs to its mapped root."""
        lowers = self.snapshots.ensure(info.handle)
        upper.mkdir(mode=0o755, exist_ok=True)
        work.mkdir(mode=0o700, exist_ok=True)
        target.mkdir(mode=0o755, exist_ok=True)
        if not (upper.parent / "userns.json").exists():  # userns.RECORD (not imported on the run path)
            self.snapshots.mount(lowers, upper, work, target)
            return
        from pallet.engine import userns

        rng = userns.prepare_container(self.config, upper.parent)
        if rng is None:
            self.snapshots.mount(lowers, upper, work, target)
            return
        st = upper.stat()
        if (st.st_uid, st.st_gid) != (rng.uid, rng.gid):
            os.chown(upper, rng.uid, rng.gid)
        try:
            fd = userns.userns_fd(rng)
            try:
                self.snapshots.mount_idmapped(lowers, upper, work, target, fd)
            finally:
                os.close(fd)
        except OSError as e:
            from pallet.errors import RuntimeFailure

            raise RuntimeFailure(
                f"--userns=auto: cannot mount the image's layers idmapped ({e.strerror or e}); "
                "this needs Linux 5.19 or later"
            ) from None


def is_mountpoint(path: Path) -> bool:
    """``path`` is a mount point (an overlay has its own device: a stat of it and its parent)."""
    return os.path.ismount(path)


def unmount_rootfs(path: Path) -> None:
    """Unmount a container's rootfs; nothing else is mounted below it on the host."""
    import errno

    from pallet.linux.syscalls import MNT_DETACH, umount

    try:
        umount(str(path), MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            unmount_all(path)
            return
    if os.path.ismount(path):
        unmount_all(path)
