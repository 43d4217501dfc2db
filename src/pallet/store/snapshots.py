"""Snapshots: each layer unpacked once, keyed by its chain ID, shared by every image.

``<root>/snapshots/<chainid-hex>/fs`` holds the layer's files exactly as
overlayfs wants a lower directory (whiteouts as 0/0 devices, opaque xattrs).
``<root>/snapshots/l/<short>`` are short symlinks to the ``fs`` directories,
used when a deep image would make the overlay mount options too long.  A
snapshot appears by an atomic rename once complete; a per-chain ``flock``
makes concurrent unpackers of one layer do the work once.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pallet.errors import InvalidData
from pallet.linux import syscalls
from pallet.oci.digest import chain_ids, encoded
from pallet.store.blobs import BlobStore
from pallet.store.images import Image

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any


def unpack(*args: Any, **kwargs: Any) -> int:
    """:func:`pallet.store.layers.unpack`, imported on first use (tar and the decompressors
    are not needed to mount what is already unpacked)."""
    from pallet.store.layers import unpack as _unpack

    return _unpack(*args, **kwargs)


# The kernel takes mount options up to one page.
_MAX_OPTIONS = 4000
SHORT = 16


class SnapshotStore:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = Path(root) / "snapshots"
        self.blobs = blobs
        # mount overlays with an upper directory "volatile": the kernel then never syncs
        # the upper filesystem for them, also not when the overlay is unmounted (which
        # otherwise syncs the whole filesystem holding the upper directory: milliseconds
        # to tens of them on a busy host).  For an upper directory thrown away with its
        # container (``run --rm``); its content may not survive a host crash.
        self.volatile = False

    # -- paths ------------------------------------------------------------------

    def dir(self, chain_id: str) -> Path:
        return self.root / encoded(chain_id)

    def fs(self, chain_id: str) -> Path:
        return self.dir(chain_id) / "fs"

    def has(self, chain_id: str) -> bool:
        return self.fs(chain_id).is_dir()

    def empty_dir(self) -> Path:
        p = self.root / "empty"
        if not p.is_dir():
            p.mkdir(parents=True, exist_ok=True)
        return p

    def list(self) -> builtins.list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + n for n in names if len(n) == 64 and (self.root / n / "fs").is_dir())

    def size(self, chain_id: str) -> int:
        """Bytes of file content in one snapshot (recorded when it was unpacked)."""
        try:
            return int((self.dir(chain_id) / "size").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    # -- unpacking ----------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, chain_id: str) -> Iterator[None]:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / encoded(chain_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def ensure(self, image: Image) -> builtins.list[Path]:
        """Unpack the image's missing layers; returns lower dirs, top layer first."""
        layers = image.manifest.layers
        diff_ids = list(image.config.diff_ids)
        if len(diff_ids) != len(layers):
            raise InvalidData(f"image {image.short_id}: config and manifest disagree on layers")
        chains = chain_ids(diff_ids)
        missing = [
            (desc, diff_id, chain)
            for desc, diff_id, chain in zip(layers, diff_ids, chains, strict=True)
            if not self.has(chain)
        ]

        def one(item: tuple[Any, str, str]) -> None:
            desc, diff_id, chain = item
            with self._lock(chain):
                if not self.has(chain):
                    self._unpack(desc.digest, desc.media_type, chain, diff_id)

        if len(missing) == 1:
            one(missing[0])
        elif missing:
            # layers unpack independently (each into its own directory): overlap them
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(4, len(missing))) as pool:
                for fut in [pool.submit(one, m) for m in missing]:
                    fut.result()
        return [self.fs(c) for c in reversed(chains)]

    def _unpack(self, digest: str, media_type: str, chain: str, diff_id: str | None = None) -> None:
        blob = self.blobs.path(digest)
        if not blob.is_file():
            from pallet.errors import BlobNotFound

            raise BlobNotFound(digest)
        import shutil  # here, not at import time: shutil loads bz2 and lzma

        self.root.mkdir(parents=True, exist_ok=True)
        # we hold this chain's lock: any other temporary dir of it was left by a killed unpacker
        for stale in self.root.glob(f"tmp-{encoded(chain)[:16]}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.root / f"tmp-{encoded(chain)[:16]}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(mode=0o700)
        try:
            size = unpack(blob, media_type, tmp / "fs", diff_id=diff_id)
            (tmp / "size").write_text(str(size))
            (tmp / "diff").write_text(digest)
            os.rename(tmp, self.dir(chain))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._link(chain)

    def _link(self, chain: str) -> Path:
        links = self.root / "l"
        links.mkdir(exist_ok=True)
        link = links / encoded(chain)[:SHORT]
        if not link.is_symlink():
            with contextlib.suppress(FileExistsError):
                os.symlink(f"../{encoded(chain)}/fs", link)
        return link

    # -- mounting ---------------------------------------------------------------

    def mount_options(self, lowerdirs: builtins.list[Path], upper: Path | None, work: Path | None) -> tuple[str, Path | None]:
        """Overlay options; a relative form (and the directory to mount from) when long."""
        lowers = [str(p) for p in lowerdirs] or [str(self.empty_dir())]
        def opts(ls: builtins.list[str]) -> str:
            s = "lowerdir=" + ":".join(ls)
            if upper is not None and work is not None:
                s += f",upperdir={upper},workdir={work}"
                # pinned, whatever the kernel's defaults: diff() reads the upper dir
                # as a plain tree with whiteouts and opaque dirs, no redirects or metacopy
                s += ",index=off,redirect_dir=off,metacopy=off"
                if self.volatile:
                    s += ",volatile"
            return s
        o = opts(lowers)
        if len(o) <= _MAX_OPTIONS:
            return o, None
        short = []
        for p in lowerdirs:
            pp = Path(p)
            if pp.parent.parent == self.root:
                short.append(str(self._link("sha256:" + pp.parent.name).relative_to(self.root)))
            else:
                short.append(str(pp))
        o = opts(short)
        if len(o) > _MAX_OPTIONS:
            raise InvalidData(f"too many layers to mount ({len(lowerdirs)})")
        return o, self.root

    def mount(
        self,
        lowerdirs: builtins.list[Path],
        upper: Path,
        work: Path,
        target: Path,
        readonly: bool = False,
    ) -> None:
        """Mount an overlay of ``lowerdirs`` (top first) with ``upper`` at ``target``.

        ``readonly`` mounts without an upper directory (``upper``, if it exists,
        becomes the top lower layer) and with MS_RDONLY.
        """
        lowers = list(lowerdirs) or [self.empty_dir()]
        flags = 0
        if readonly:
            if upper is not None and Path(upper).is_dir():
                lowers = [Path(upper), *lowers]
            if len(lowers) < 2:
                lowers.append(self.empty_dir())
            options, cwd = self.mount_options(lowers, None, None)
            flags |= syscalls.MS_RDONLY
        else:
            Path(upper).mkdir(parents=True, exist_ok=True)
            Path(work).mkdir(parents=True, exist_ok=True)
            options, cwd = self.mount_options(lowers, upper, work)
            self._allow_remount(work)
        Path(target).mkdir(parents=True, exist_ok=True)
        if cwd is None:
            syscalls.mount("overlay", str(target), "overlay", flags, options)
            return
        old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.chdir(cwd)
            syscalls.mount("overlay", str(Path(target).absolute()), "overlay", flags, options)
        finally:
            os.fchdir(old)
            os.close(old)

    def _allow_remount(self, work: Path) -> None:
        """A volatile overlay leaves ``work/work/incompat/volatile`` behind, and the kernel
        refuses to mount that work directory again while it is there; a container started
        again (restart) mounts it again: remove the marker."""
        if self.volatile:
            with contextlib.suppress(OSError):
                os.rmdir(Path(work) / "work" / "incompat" / "volatile")

    def mount_idmapped(
        self,
        lowerdirs: builtins.list[Path],
        upper: Path,
        work: Path,
        target: Path,
        userns_fd: int,
    ) -> None:
        """Like :meth:`mount`, with every lower layer seen through an idmapped mount of
        the user namespace ``userns_fd``: a file owned by id N on disk appears owned by
        whatever N maps to in that namespace (a remapped container's range).

        Each layer is cloned (open_tree), idmapped (mount_setattr) and attached
        (move_mount) below a private directory beside ``target``; the overlay takes
        its own private copies of its layers, so those attachments are unmounted and
        the directory removed right after the overlay is mounted.  The upper layer
        is not idmapped: what the container writes is stored with host ids."""
        import shutil

        lowers = list(lowerdirs) or [self.empty_dir()]
        Path(upper).mkdir(parents=True, exist_ok=True)
        Path(work).mkdir(parents=True, exist_ok=True)
        Path(target).mkdir(parents=True, exist_ok=True)
        staging = Path(target).absolute().parent / f".idmap-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        attached: builtins.list[str] = []
        old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i, lower in enumerate(lowers):
                point = staging / str(i)
                point.mkdir()
                fd = syscalls.open_tree(str(Path(lower).absolute()))
                try:
                    syscalls.mount_setattr_idmap(fd, userns_fd)
                    syscalls.move_mount(fd, str(point))
                finally:
                    os.close(fd)
                attached.append(str(point))
            # short relative lower paths (from the staging directory) keep the options small
            options = "lowerdir=" + ":".join(str(i) for i in range(len(lowers)))
            options += f",upperdir={Path(upper).absolute()},workdir={Path(work).absolute()}"
            options += ",index=off,redirect_dir=off,metacopy=off"
            if self.volatile:
                options += ",volatile"
            self._allow_remount(work)
            if len(options) > _MAX_OPTIONS:
                raise InvalidData(f"too many layers to mount ({len(lowers)})")
            os.chdir(staging)
            syscalls.mount("overlay", str(Path(target).absolute()), "overlay", 0, options)
        finally:
            os.fchdir(old)
            os.close(old)
            for attached_at in reversed(attached):
                with contextlib.suppress(OSError):
                    syscalls.umount(attached_at, syscalls.MNT_DETACH | syscalls.UMOUNT_NOFOLLOW)
            shutil.rmtree(staging, ignore_errors=True)

    def unmount(self, target: Path) -> None:
        try:
            syscalls.umount(str(target), syscalls.UMOUNT_NOFOLLOW)
        except OSError as e:
            import errno

            if e.errno == errno.EINVAL:  # not mounted
                return
            if e.errno == errno.EBUSY:
                syscalls.umount(str(target), syscalls.MNT_DETACH | syscalls.UMOUNT_NOFOLLOW)
                return
            raise

    # -- pruning ----------------------------------------------------------------

    def remove(self, chain_id: str) -> None:
        with self._lock(chain_id):
            d = self.dir(chain_id)
            if d.exists():
                gone = self.root / f"gone-{encoded(chain_id)[:16]}-{os.getpid()}"
                os.rename(d, gone)
                import shutil

                shutil.rmtree(gone, ignore_errors=True)
            link = self.root / "l" / encoded(chain_id)[:SHORT]
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.root / "locks" / encoded(chain_id)).unlink()

    def remove_unused(self, in_use_chain_ids: set[str] | builtins.list[str]) -> builtins.list[str]:
        """Remove every snapshot not in ``in_use_chain_ids``; returns the removed chain IDs."""
        keep = set(in_use_chain_ids)
        removed = []
        for chain in self.list():
            if chain not in keep:
                self.remove(chain)
                removed.append(chain)
        # leftovers of killed unpackers
        with contextlib.suppress(FileNotFoundError):
            for n in os.listdir(self.root):
                if n.startswith(("tmp-", "gone-")) and not _pid_alive(n.rsplit("-", 1)[-1]):
                    import shutil

                    shutil.rmtree(self.root / n, ignore_errors=True)
        return removed


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
