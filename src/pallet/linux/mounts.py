"""Removing a directory tree that may still have mounts below it."""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def unmount_all(path: Path | str) -> None:
    """Unmount ``path`` and anything below it (deepest first), lazily if busy."""
    from pallet.linux.syscalls import MNT_DETACH, umount

    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        targets = [line.split(" ", 5)[4] for line in f]
    for t in sorted({t for t in targets if t == prefix or t.startswith(prefix + "/")}, key=len, reverse=True):
        with contextlib.suppress(OSError):
            umount(t, MNT_DETACH)


def remove_tree(path: Path | str) -> None:
    """rm -rf that never crosses into a mount still below ``path`` (a bind mount's
    source would lose its files): those are unmounted first."""
    import shutil

    unmount_all(path)
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        # overlay work dirs keep root-only 000 "work" subdirs; make them removable
        for dirpath, dirs, _files in os.walk(path):
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(dirpath, d), 0o700)
        shutil.rmtree(path, ignore_errors=True)
