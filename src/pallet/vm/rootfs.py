"""Read-only root filesystem images (erofs or ext4) made from a bundle's rootfs directory.

With a cache key (the caller's name for the image content, e.g. its chain ID)
the image is kept under ``<root>/vm/images/`` and reused; without one it is made
into the container's own directory and removed with it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pallet.errors import InvalidArgument, RuntimeFailure, Unavailable

TOOLS = {"erofs": ("mkfs.erofs", "erofs-utils"), "ext4": ("mkfs.ext4", "e2fsprogs")}


def mkfs_argv(fmt: str, tool: str, source: str, image: str, size_bytes: int = 0) -> list[str]:
    """The command making ``image`` from the directory ``source`` (pure)."""
    if fmt == "erofs":
        return [tool, "--quiet", image, source]
    if fmt == "ext4":
        return [tool, "-q", "-F", "-t", "ext4", "-d", source, "-O", "^has_journal",
                "-m", "0", "-L", "pallet-root", image, f"{max(size_bytes // 1024, 8192)}k"]
    raise InvalidArgument(f"invalid VM root filesystem image format: {fmt}")


def tree_size(path: Path) -> tuple[int, int]:
    """Bytes and inodes under ``path`` (not following symlinks, same file system)."""
    total, count = 0, 0
    for dirpath, dirnames, filenames in os.walk(path):
        count += 1 + len(dirnames)
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_blocks * 512 if st.st_blocks else st.st_size
            count += 1
    return total, count


def ext4_size(data_bytes: int, inodes: int) -> int:
    """Room for the data, its inodes and metadata, with some slack."""
    return int(data_bytes * 1.25) + inodes * 512 + 16 * 1024 * 1024


_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def make_image(rootfs: Path, fmt: str, dest: Path) -> Path:
    tool_name, package = TOOLS.get(fmt, ("", ""))
    if not tool_name:
        raise InvalidArgument(f"invalid VM root filesystem image format: {fmt}")
    tool = shutil.which(tool_name) or shutil.which(tool_name, path="/usr/sbin:/sbin")
    if tool is None:
        raise Unavailable(f"{fmt} root filesystem images need {tool_name}: apt-get install {package}")
    if not rootfs.is_dir():
        raise InvalidArgument(f"rootfs {rootfs} is not a directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    size = 0
    if fmt == "ext4":
        size = ext4_size(*tree_size(rootfs))
    r = subprocess.run(mkfs_argv(fmt, tool, str(rootfs), str(tmp), size), capture_output=True, text=True)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        last = (r.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeFailure(f"making the VM's {fmt} root filesystem: {last}")
    os.replace(tmp, dest)
    return dest


def ensure_image(rootfs: Path, fmt: str, cache_dir: Path, key: str, own_dir: Path) -> tuple[Path, bool]:
    """The image for ``rootfs``; returns (path, cached).  Uncached images live in ``own_dir``."""
    if key:
        if not _KEY.match(key):
            raise InvalidArgument(f"invalid VM image cache key: {key!r}")
        path = cache_dir / f"{key.replace(':', '-')}.{fmt}"
        if not path.exists():
            make_image(rootfs, fmt, path)
        return path, True
    return make_image(rootfs, fmt, own_dir / f"rootfs.{fmt}"), False
