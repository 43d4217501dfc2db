"""Read-only root filesystem images (erofs or ext4) made from a bundle's rootfs directory.

With a cache key (the caller's name for the image content, e.g. its chain ID)
the image is kept under ``<root>/vm/images/`` and reused; without one it is made
into the container's own directory and removed with it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
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


def ensure_image(rootfs: Path, fmt: str, cache_dir: Path, key: str,
                 own_dir: Path) -> tuple[Path, bool, list[tuple[str, bytes, int]]]:
    """The image for ``rootfs``: (path, cached, files to copy in).

    Uncached images are made from the bundle's rootfs into ``own_dir``.  Cached ones
    (``key`` names the image content) are made from the image's layers only, so that
    nothing one container adds reaches another; the regular files its upper layer
    holds before start are returned, to be copied into the guest.
    """
    if not key:
        return make_image(rootfs, fmt, own_dir / f"rootfs.{fmt}"), False, []
    if not _KEY.match(key):
        raise InvalidArgument(f"invalid VM image cache key: {key!r}")
    path = cache_dir / f"{key.replace(':', '-')}.{fmt}"
    ov = _mounted_overlay(rootfs)
    if not path.exists():
        src, ov, done = image_source(rootfs, own_dir / "image-layers")
        try:
            make_image(src, fmt, path)
        finally:
            done()
    return path, True, upper_files(ov.upper) if ov is not None else []


@dataclass(frozen=True)
class Overlay:
    lower: tuple[str, ...]  # top first, as overlayfs lists them
    upper: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def find_overlay(mountinfo: str, target: str) -> Overlay | None:
    """The overlayfs mounted at ``target`` according to a /proc/self/mountinfo text (pure)."""
    found = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3 or _unescape(fields[4]) != target:
            continue
        if rfields[0] != "overlay":
            found = None  # a later mount on top hides earlier ones
            continue
        opts = dict(o.partition("=")[::2] for o in rfields[2].split(","))
        lower = [_unescape(p) for p in re.split(r"(?<!\\):", opts.get("lowerdir", "")) if p]
        found = Overlay(tuple(lower), _unescape(opts.get("upperdir", ""))) if lower else None
    return found


def _mounted_overlay(rootfs: Path) -> Overlay | None:
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return None
    return find_overlay(text, str(rootfs.resolve()))


def upper_files(upper: str, limit_each: int = 1 << 20, limit_total: int = 16 << 20) -> list[tuple[str, bytes, int]]:
    """Regular files a container's upper layer adds before start (e.g. ``cp`` into it): path, data, mode."""
    out: list[tuple[str, bytes, int]] = []
    total = 0
    if not upper or not os.path.isdir(upper):
        return out
    for dirpath, _dirs, names in os.walk(upper):
        for name in names:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode) or st.st_size > limit_each or total + st.st_size > limit_total:
                continue
            total += st.st_size
            rel = "/" + os.path.relpath(p, upper)
            out.append((rel, Path(p).read_bytes(), st.st_mode & 0o7777))
    return out


def image_source(rootfs: Path, scratch: Path) -> tuple[Path, Overlay | None, Callable[[], None]]:
    """What to make a cacheable image from: the image's own layers, never the container's.

    When ``rootfs`` is an overlayfs, its lower layers are the image: one layer is used
    as is, several are stacked read-only at ``scratch``.  Returns the directory, the
    overlay (for its upper layer) and a cleanup to call afterwards.
    """
    ov = _mounted_overlay(rootfs)
    if ov is None:
        return rootfs, None, lambda: None
    if len(ov.lower) == 1:
        return Path(ov.lower[0]), ov, lambda: None
    from pallet.linux.syscalls import MS_RDONLY, umount
    from pallet.linux.syscalls import mount as sys_mount

    scratch.mkdir(parents=True, exist_ok=True)
    sys_mount("overlay", str(scratch), "overlay", MS_RDONLY, "lowerdir=" + ":".join(ov.lower))

    def done() -> None:
        umount(str(scratch))
        scratch.rmdir()

    return scratch, ov, done
