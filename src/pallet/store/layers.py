"""Layer tarballs: safe extraction into an overlay-ready directory, and diffs back to tar.

Extraction (:func:`unpack`) never writes outside its target: names with
``..`` or a leading ``/`` are refused, as are entries that would be written
through a symbolic link, hard links to anything not extracted earlier from the
same archive, and device nodes (except under ``dev/``, which is skipped: the
runtime mounts its own ``/dev``).  It unpacks into a fresh directory next to
the target and renames it into place, so a refused archive leaves nothing.
Whiteouts become what overlayfs understands: ``.wh.NAME`` a 0/0 character
device ``NAME``, ``.wh..wh..opq`` the ``trusted.overlay.opaque=y`` xattr on
its directory.  :func:`diff` does the reverse for an overlay upper directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pallet.errors import DigestMismatch, InvalidData, UnsafeArchive
from pallet.oci import mediatypes as mt
from pallet.store.blobs import BlobStore
from pallet.store.compression import CHUNK, decompressed

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX = "SCHILY.xattr."
# xattrs an archive may set; trusted.* (overlay's own metadata among them) never.
_ALLOWED_XATTR_PREFIXES = ("security.capability", "user.")

IS_ROOT = os.geteuid() == 0


@dataclass
class TarChecker:
    """Validates tar members in order, remembering what the archive created so far."""

    allow_devices: bool = False
    symlinks: set[str] = field(default_factory=set)
    nondirs: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)
    existed: bool = False  # whether the last recorded path had an earlier entry

    def clean(self, raw: str, what: str = "path") -> str:
        """The entry's path relative to the root ("" for the root itself)."""
        name = raw
        if name.startswith("/"):
            raise UnsafeArchive(raw, f"absolute {what}")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UnsafeArchive(raw, f"{what} escapes the target directory (..)")
        if any("\x00" in p for p in parts):
            raise UnsafeArchive(raw, "NUL in name")
        return "/".join(parts)

    def check_parents(self, raw: str, rel: str) -> None:
        i = rel.find("/")
        while i != -1:
            prefix = rel[:i]
            if prefix in self.symlinks:
                raise UnsafeArchive(raw, f"path goes through the symbolic link {prefix!r}")
            if prefix in self.nondirs:
                raise UnsafeArchive(raw, f"parent {prefix!r} is not a directory")
            i = rel.find("/", i + 1)

    def check(self, m: tarfile.TarInfo) -> tuple[str, str]:
        """Returns (kind, rel) where kind is file|dir|symlink|hardlink|device|fifo|
        whiteout|opaque|skip; raises UnsafeArchive for a refused entry."""
        rel = self.clean(m.name)
        if not rel:
            return ("skip", rel) if m.isdir() else self._refuse(m.name, "entry without a name")
        self.check_parents(m.name, rel)
        base = rel.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE:
                return "opaque", rel
            target = base[len(WHITEOUT_PREFIX) :]
            if target in ("", ".", "..") or target.startswith(WHITEOUT_PREFIX):
                raise UnsafeArchive(m.name, "malformed whiteout")
            return "whiteout", rel
        if m.isdir():
            kind = "dir"
        elif m.issym():
            kind = "symlink"
        elif m.islnk():
            target = self.clean(m.linkname, "hard link target")
            if not target:
                raise UnsafeArchive(m.name, "hard link to the root directory")
            self.check_parents(m.linkname, target)
            if target in self.symlinks:
                pass  # a link to the symlink itself (never followed) is fine
            elif target not in self.nondirs:
                what = "a directory" if target in self.dirs else "a file outside the archive"
                raise UnsafeArchive(m.name, f"hard link to {what} ({m.linkname!r})")
            kind = "hardlink"
        elif m.ischr() or m.isblk():
            if not self.allow_devices:
                if rel == "dev" or rel.startswith("dev/"):
                    return "skip", rel
                raise UnsafeArchive(m.name, "device nodes are not allowed")
            kind = "device"
        elif m.isfifo():
            kind = "fifo"
        elif m.isreg():
            kind = "file"
        else:
            raise UnsafeArchive(m.name, f"unsupported entry type {m.type!r}")
        self.record(kind, rel)
        return kind, rel

    def record(self, kind: str, rel: str) -> None:
        self.existed = rel in self.nondirs or rel in self.symlinks or rel in self.dirs
        self.symlinks.discard(rel)
        self.nondirs.discard(rel)
        if kind == "dir":
            self.dirs.add(rel)
            return
        if rel in self.dirs:
            # a directory replaced by something else: forget what was under it
            self.dirs.discard(rel)
            pre = rel + "/"
            self.dirs = {d for d in self.dirs if not d.startswith(pre)}
            self.nondirs = {d for d in self.nondirs if not d.startswith(pre)}
            self.symlinks = {d for d in self.symlinks if not d.startswith(pre)}
        if kind == "symlink":
            self.symlinks.add(rel)
        else:
            self.nondirs.add(rel)
        # implicit parents are directories
        i = rel.find("/")
        while i != -1:
            self.dirs.add(rel[:i])
            i = rel.find("/", i + 1)

    @staticmethod
    def _refuse(name: str, why: str) -> tuple[str, str]:
        raise UnsafeArchive(name, why)


class ForwardReader:
    """A forward-only seekable view of a stream, for tarfile's random-access mode.

    tarfile's stream mode copies its whole buffer on every small read; its
    normal mode only needs ``seek`` forward, which this provides by reading
    through.  Every byte read from the underlying stream is also passed to
    ``sink`` (hashing, writing a blob), in order, exactly once.
    """

    def __init__(self, raw: BinaryIO, sink: Callable[[bytes], object] | None = None) -> None:
        self._raw = raw
        self._sink = sink
        self._buf = b""
        self._off = 0
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._raw.read(CHUNK)
        if not data:
            self._eof = True
            return False
        if self._sink is not None:
            self._sink(data)
        self._buf = self._buf[self._off :] + data if self._off < len(self._buf) else data
        self._off = 0
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._off :]]
            self._buf, self._off = b"", 0
            while self._fill():
                parts.append(self._buf)
                self._buf = b""
            out = b"".join(parts)
            self._pos += len(out)
            return out
        while len(self._buf) - self._off < n and self._fill():
            pass
        out = self._buf[self._off : self._off + n]
        self._off += len(out)
        self._pos += len(out)
        return out

    def drain(self) -> None:
        """Read (and pass to the sink) everything left."""
        while self._fill():
            self._pos += len(self._buf) - self._off
            self._buf, self._off = b"", 0

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence != 0:
            raise OSError("ForwardReader cannot seek from the end")
        if pos < self._pos:
            raise OSError("ForwardReader cannot seek backwards")
        skip = pos - self._pos
        while skip:
            avail = len(self._buf) - self._off
            if not avail:
                if not self._fill():
                    break
                continue
            k = min(avail, skip)
            self._off += k
            self._pos += k
            skip -= k
        return self._pos

    @property
    def at_eof(self) -> bool:
        return self._eof and self._off >= len(self._buf)


def open_tar(f: ForwardReader) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=f, mode="r:")  # type: ignore[call-overload]
    except tarfile.ReadError as e:
        raise InvalidData(f"invalid tar archive: {e}") from None


def check_end(tf: tarfile.TarFile, f: ForwardReader) -> None:
    """A complete archive has at least one end-of-archive block after its last entry."""
    f.drain()
    if f.tell() < tf.offset + 512:
        raise InvalidData("invalid tar archive: unexpected end of data (truncated archive)")


@contextlib.contextmanager
def tar_errors() -> Iterator[None]:
    """Map tarfile's errors to InvalidData with one clear line."""
    try:
        yield
    except (tarfile.ReadError, tarfile.HeaderError, EOFError) as e:
        why = str(e) or "unexpected end of data"
        raise InvalidData(f"invalid tar archive: {why}") from None
    except tarfile.TarError as e:
        raise InvalidData(f"invalid tar archive: {e}") from None


def scan(f: BinaryIO, allow_devices: bool = False) -> int:
    """Read a whole (uncompressed) tar stream, validating every entry; returns the count."""
    checker = TarChecker(allow_devices=allow_devices)
    n = 0
    fr = ForwardReader(f)
    with tar_errors():
        tf = open_tar(fr)
        for m in tf:
            checker.check(m)
            n += 1
        check_end(tf, fr)
    if n == 0:
        raise InvalidData("invalid tar archive: no entries")
    return n


def compression_of(media_type: str) -> str | None:
    """'gzip'/'zstd'/'' for a layer media type; None (sniff) when unknown."""
    if media_type in mt.LAYERS or media_type.startswith("application/vnd."):
        return mt.compression(media_type)
    return None


def unpack(
    blob_path: Path,
    media_type: str,
    target_dir: Path,
    allow_devices: bool = False,
    diff_id: str | None = None,
) -> int:
    """Extract a layer blob into ``target_dir`` (which must not exist yet).

    With ``diff_id``, the uncompressed stream must have that digest.  Returns
    the number of bytes of file content written.  On any error nothing is left
    behind.
    """
    target_dir = Path(target_dir)
    if target_dir.exists():
        raise FileExistsError(17, "target exists", str(target_dir))
    tmp = target_dir.parent / f".{target_dir.name}.unpack-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(mode=0o755, parents=True)
    try:
        with open(blob_path, "rb") as raw, decompressed(raw, compression_of(media_type)) as f:
            h = hashlib.sha256()
            fr = ForwardReader(f, h.update if diff_id is not None else None)
            size = _extract(fr, tmp, allow_devices)
        if diff_id is not None and "sha256:" + h.hexdigest() != diff_id:
            raise DigestMismatch(diff_id, "sha256:" + h.hexdigest())
        os.rename(tmp, target_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return size


def _umask() -> int:
    """The process umask, read without changing it (other threads may be creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _extract(f: ForwardReader, root: Path, allow_devices: bool) -> int:
    umask = _umask()
    checker = TarChecker(allow_devices=allow_devices)
    roots = str(root)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    made: set[str] = {""}  # directories known to exist (relative)
    written = 0
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    open_flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with tar_errors():
        tf = open_tar(f)
        for m in tf:
            kind, rel = checker.check(m)
            if kind == "skip":
                if not rel and m.isdir():
                    dirs.append((roots, m))
                continue
            full = f"{roots}/{rel}"
            i = rel.rfind("/")
            parent = rel[:i] if i != -1 else ""
            if parent not in made:
                # every component was checked not to be a symlink of this archive
                _makedirs(f"{roots}/{parent}")
                while parent and parent not in made:
                    made.add(parent)
                    parent = parent.rpartition("/")[0]
            if kind == "opaque":
                os.setxattr(full.rsplit("/", 1)[0], OPAQUE_XATTR, b"y", follow_symlinks=False)
                continue
            if kind == "whiteout":
                d, base = full.rsplit("/", 1)
                path = f"{d}/{base[len(WHITEOUT_PREFIX):]}"
                if _clear(path):
                    made = {""}
                os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
                continue
            if kind == "dir":
                if rel not in made:
                    if checker.existed and _clear(full):
                        made = {""}
                    try:
                        os.mkdir(full, 0o700)
                    except FileExistsError:
                        if not os.path.isdir(full) or os.path.islink(full):
                            raise
                    made.add(rel)
                _own(full, m)
                _xattrs(full, m)
                dirs.append((full, m))
                continue
            if checker.existed and _clear(full):
                made = {""}
            mtime_ns = int(m.mtime * 1e9)
            if kind == "file":
                fd = os.open(full, open_flags, m.mode & 0o777)
                try:
                    if m.size:
                        src = tf.extractfile(m)
                        assert src is not None
                        left = m.size
                        while left:
                            n = src.readinto(mv[: min(left, CHUNK)])  # type: ignore[attr-defined]
                            if not n:
                                raise InvalidData("invalid tar archive: unexpected end of data")
                            view = mv[:n]
                            while view:
                                w = os.write(fd, view)
                                view = view[w:]
                            left -= n
                        written += m.size
                    if IS_ROOT and (m.uid or m.gid):
                        os.fchown(fd, m.uid, m.gid)
                    if m.mode & (0o7000 | umask):
                        os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears set-id bits
                    if m.pax_headers:
                        _xattrs(fd, m)
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
                finally:
                    os.close(fd)
            elif kind == "symlink":
                os.symlink(m.linkname, full)
                if m.uid or m.gid:
                    _own(full, m)
                os.utime(full, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
            elif kind == "hardlink":
                src_rel = checker.clean(m.linkname)
                os.link(f"{roots}/{src_rel}", full, follow_symlinks=False)
            elif kind == "device":
                mode = (stat.S_IFCHR if m.ischr() else stat.S_IFBLK) | (m.mode & 0o7777)
                os.mknod(full, mode, os.makedev(m.devmajor, m.devminor))
                _own(full, m)
                os.chmod(full, m.mode & 0o7777)
            elif kind == "fifo":
                os.mkfifo(full, 0o600)
                _own(full, m)
                os.chmod(full, m.mode & 0o7777)
                os.utime(full, ns=(mtime_ns, mtime_ns))
        check_end(tf, f)
    # directory modes and times last: children changed their mtime
    for full, m in reversed(dirs):
        os.chmod(full, m.mode & 0o7777)
        os.utime(full, ns=(int(m.mtime * 1e9),) * 2)
    return written


def _makedirs(path: str) -> None:
    """Implicit parent directories: 0755 whatever the umask, as tar makes them."""
    if os.path.isdir(path):
        return
    _makedirs(os.path.dirname(path))
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    os.chmod(path, 0o755)


def _clear(path: str) -> bool:
    """Remove whatever is at ``path``; True when it was a directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
        return True
    os.unlink(path)
    return False


def _own(path: str, m: tarfile.TarInfo) -> None:
    if IS_ROOT:
        os.lchown(path, m.uid, m.gid)


def _xattrs(target: str | int, m: tarfile.TarInfo) -> None:
    for k, v in m.pax_headers.items():
        if not k.startswith(XATTR_PAX):
            continue
        name = k[len(XATTR_PAX) :]
        if not name.startswith(_ALLOWED_XATTR_PREFIXES):
            continue
        with contextlib.suppress(OSError):
            os.setxattr(target, name, v.encode("utf-8", "surrogateescape"))


# -- diff -------------------------------------------------------------------------


class _HashingWriter:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, b: bytes) -> int:
        self.h.update(b)
        self.size += len(b)
        self._f.write(b)
        return len(b)

    def flush(self) -> None:
        flush = getattr(self._f, "flush", None)
        if flush is not None:
            flush()


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    for name in (OPAQUE_XATTR, "user.overlay.opaque"):  # the latter: mounts with userxattr
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def diff(upper_dir: Path, out: BinaryIO | Path) -> tuple[str, int]:
    """Write an uncompressed layer tar of an overlay upper directory to ``out``.

    Whiteout devices become ``.wh.NAME`` entries and opaque directories get a
    ``.wh..wh..opq`` entry.  Returns (diff_id, size).
    """
    if isinstance(out, (str, Path)):
        with open(out, "wb") as f:
            return diff(upper_dir, f)
    hw = _HashingWriter(out)
    root = str(upper_dir)
    with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            prefix = "" if rel_dir == "." else rel_dir + "/"
            if prefix and _is_opaque(dirpath):
                _add_empty(tf, prefix + OPAQUE, os.lstat(dirpath).st_mtime)
            names = sorted(filenames + [d for d in dirnames])
            keep_dirs = []
            for name in names:
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                arc = prefix + name
                if _is_whiteout(st):
                    _add_empty(tf, prefix + WHITEOUT_PREFIX + name, st.st_mtime)
                    continue
                ti = tf.gettarinfo(full, arcname=arc)
                if ti is None:  # a socket: not part of an image
                    continue
                ti.uname = ti.gname = ""
                _read_xattrs(full, ti)
                if ti.isreg():
                    with open(full, "rb") as src:
                        tf.addfile(ti, src)
                else:
                    tf.addfile(ti)
                if stat.S_ISDIR(st.st_mode):
                    keep_dirs.append(name)
            dirnames[:] = keep_dirs
    hw.flush()
    return "sha256:" + hw.h.hexdigest(), hw.size


def diff_to_blob(upper_dir: Path, blobs: BlobStore) -> tuple[str, int]:
    """:func:`diff` straight into the blob store as an uncompressed layer: (digest == diff_id, size)."""
    with blobs.writer() as w:
        diff_id, size = diff(upper_dir, w)  # type: ignore[arg-type]
    return diff_id, size


def _add_empty(tf: tarfile.TarFile, name: str, mtime: float) -> None:
    ti = tarfile.TarInfo(name)
    ti.mode = 0o600
    ti.mtime = int(mtime)
    tf.addfile(ti)


def _read_xattrs(path: str, ti: tarfile.TarInfo) -> None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for n in names:
        if not n.startswith(_ALLOWED_XATTR_PREFIXES):
            continue
        try:
            v = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            continue
        ti.pax_headers = {**ti.pax_headers, XATTR_PAX + n: v.decode("utf-8", "surrogateescape")}
