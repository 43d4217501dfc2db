"""COPY and ADD without a container: plan the files a step adds, hash them for the cache, and
write the layer tar straight from the sources (ownership, modes, mtimes as Docker sets them)."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import time
from collections.abc import Callable
from pathlib import Path

from pallet.build.parser import BuildError

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    import tarfile
    from typing import BinaryIO, Protocol

    class Source(Protocol):
        """Where COPY's sources are: the context, or a mounted stage or image."""

        def resolve(self, src: str, allow_wildcards: bool = True) -> list[str]: ...
        def below(self, rel_dir: str) -> list[str]: ...
        def path(self, rel: str) -> Path: ...

WILDCARDS = set("*?[")


class TreeSource:
    """Files of a mounted image or stage (``COPY --from``): nothing is excluded."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _walk(self, top: Path) -> list[str]:
        out = []
        base = str(top)
        for dirpath, dirnames, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, base)
            rel = "" if rel == "." else rel + "/"
            out += [rel + d for d in dirnames] + [rel + f for f in filenames]
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        return sorted(out)

    def resolve(self, src: str, allow_wildcards: bool = True) -> list[str]:
        import fnmatch

        clean = posixpath.normpath("/" + src).lstrip("/") or "."
        if allow_wildcards and any(c in WILDCARDS for c in clean):
            # walk only the fixed leading directories of the pattern
            fixed = []
            for part in clean.split("/"):
                if any(c in WILDCARDS for c in part):
                    break
                fixed.append(part)
            top = "/".join(fixed)
            cands = [(top + "/" + p if top else p) for p in self._walk(self.path(top or "."))]
            hits = [p for p in cands if fnmatch.fnmatchcase(p, clean) and p.count("/") == clean.count("/")]
            if not hits:
                raise BuildError("COPY failed: no source files were specified")
            return hits
        if clean != "." and not os.path.lexists(self.root / clean):
            raise BuildError(f"COPY failed: stat {src}: file does not exist")
        return [clean]

    def below(self, rel_dir: str) -> list[str]:
        return self._walk(self.path(rel_dir))

    def path(self, rel: str) -> Path:
        return self.root if rel == "." else self.root / rel


class Item:
    """One entry of the layer a COPY/ADD writes."""

    __slots__ = ("data", "dest", "gid", "kind", "linkname", "mode", "mtime", "size", "src", "src_stat", "uid")

    def __init__(self, dest: str, kind: str, mode: int, mtime: float, uid: int = 0, gid: int = 0,
                 src: Path | str | None = None, linkname: str = "", data: bytes = b"", size: int = 0,
                 src_stat: os.stat_result | None = None) -> None:
        self.dest = dest  # path in the image, relative ("app/x")
        self.kind = kind  # file | dir | symlink | data | archive
        self.mode = mode
        self.mtime = mtime
        self.uid = uid
        self.gid = gid
        self.src = src
        self.linkname = linkname
        self.data = data
        self.size = size
        self.src_stat = src_stat  # the source's stat when planned (its digest's signature)

    def __repr__(self) -> str:
        return f"Item({self.dest!r}, {self.kind}, {self.mode:o}, {self.uid}:{self.gid}, src={self.src})"


class Plan:
    """What a COPY/ADD adds: items by destination, archives ADD extracts, the sources' kinds."""

    __slots__ = ("archives", "items", "kinds")

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.archives: list[tuple[Path, str]] = []  # (tarball, dest dir)
        self.kinds: list[str] = []  # "file" or "dir" per resolved source

    def hash_kind(self) -> str:
        """Docker's label of the sources in history: file:, dir: or multi:."""
        if len(self.kinds) > 1:
            return "multi"
        return self.kinds[0] if self.kinds else "file"

    def add(self, it: Item) -> None:
        self.items[it.dest] = it


def _rel(image_path: str) -> str:
    return posixpath.normpath("/" + image_path).lstrip("/")


def plan(
    source: Source | None,
    srcs: list[str],
    dest: str,
    *,
    workdir: str,
    chown: tuple[int, int] | None,
    chmod: int | None,
    is_add: bool,
    image_stat: Callable[[str], os.stat_result | None],
    resolve: Callable[[str], str] | None = None,
    heredocs: dict[str, bytes] | None = None,
    downloads: dict[str, tuple[Path, float]] | None = None,
    cmd: str = "COPY",
) -> Plan:
    """What a COPY/ADD adds to the image, following Docker's rules for directories and dests."""
    if not dest.startswith("/"):
        trailing = dest.endswith("/") or dest in (".", "")
        dest = posixpath.join(workdir or "/", dest)
        if trailing and not dest.endswith("/"):
            dest += "/"
    dest_dir = dest.endswith("/") or dest.endswith("/.")
    multi = len(srcs) > 1 or any(any(c in WILDCARDS for c in s) for s in srcs if "://" not in s)
    if multi and not dest_dir:
        st = image_stat(_rel(dest))
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise BuildError(f"When using {cmd} with more than one source file, "
                             "the destination must be a directory and end with a /")
    uid, gid = chown if chown is not None else (0, 0)
    p = Plan()
    base = _rel(dest)
    if resolve is not None and base not in ("", "."):
        base = resolve(base)  # the image's links on the way are followed, as Docker does

    def target_for(name: str) -> str:
        if dest_dir:
            return posixpath.join(base, name) if base != "." else name
        st = image_stat(base)
        if st is not None and stat.S_ISDIR(st.st_mode):
            return posixpath.join(base, name)
        return base

    def mode_of(st_mode: int) -> int:
        return chmod if chmod is not None else stat.S_IMODE(st_mode)

    for s in srcs:
        if heredocs is not None and s in heredocs:
            p.kinds.append("file")
            p.add(Item(target_for(s), "data", chmod if chmod is not None else 0o644, time.time(), uid, gid,
                       data=heredocs[s], size=len(heredocs[s])))
            continue
        if downloads is not None and s in downloads:
            path, mtime = downloads[s]
            name = posixpath.basename(s.split("?", 1)[0].rstrip("/")) or "index.html"
            p.kinds.append("file")
            p.add(Item(target_for(name), "file", chmod if chmod is not None else 0o600, mtime, uid, gid,
                       src=path, size=path.stat().st_size))
            continue
        if source is None:
            raise BuildError(f"{cmd} failed: no build context (the Dockerfile came from stdin)")
        for rel in source.resolve(s):
            full = source.path(rel)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                # a source named directly is followed (Docker copies what the link points to)
                try:
                    target_st = os.stat(full)
                except OSError:
                    target_st = st
                if stat.S_ISREG(target_st.st_mode):
                    st = target_st
            p.kinds.append("dir" if stat.S_ISDIR(st.st_mode) else "file")
            if stat.S_ISDIR(st.st_mode):
                root_dest = base
                if root_dest != ".":
                    p.add(Item(root_dest, "dir", mode_of(st.st_mode), st.st_mtime, uid, gid))
                # plain string joins (``sub`` is relative): Path objects and os.path.join for
                # each file were a third of a cached COPY of a large tree
                top = str(full)
                src_prefix = top if top.endswith("/") else top + "/"
                dest_prefix = "" if root_dest in (".", "") else root_dest.rstrip("/") + "/"
                for sub in source.below(rel):
                    f = src_prefix + sub
                    p.add(_item(dest_prefix + sub, f, os.lstat(f), uid, gid, mode_of))
                continue
            if is_add and not isinstance(source, TreeSource):
                from pallet.build.context import is_archive

                if is_archive(full):
                    p.archives.append((full, base))
                    continue
            p.add(_item(target_for(posixpath.basename(rel)), full, st, uid, gid, mode_of))
    _add_parents(p, image_stat, uid if chown is not None else 0, gid if chown is not None else 0)
    return p


def _item(dest: str, path: Path | str, st: os.stat_result, uid: int, gid: int,
          mode_of: Callable[[int], int]) -> Item:
    if stat.S_ISLNK(st.st_mode):
        return Item(dest, "symlink", 0o777, st.st_mtime, uid, gid, linkname=os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return Item(dest, "dir", mode_of(st.st_mode), st.st_mtime, uid, gid)
    if stat.S_ISREG(st.st_mode):
        return Item(dest, "file", mode_of(st.st_mode), st.st_mtime, uid, gid, src=path, size=st.st_size,
                    src_stat=st)
    raise BuildError(f"COPY failed: unsupported file type: {os.path.basename(path)}")


def _add_parents(p: Plan, image_stat: Callable[[str], os.stat_result | None], uid: int, gid: int) -> None:
    now = time.time()
    dests = list(p.items) + [d for _, d in p.archives]
    for d in dests:
        parts = d.split("/")
        for k in range(1, len(parts) + (1 if d in [a for _, a in p.archives] else 0)):
            parent = "/".join(parts[:k])
            if not parent or parent == "." or parent in p.items:
                continue
            st = image_stat(parent)
            if st is not None and stat.S_ISDIR(st.st_mode):
                p.items[parent] = Item(parent, "dir", stat.S_IMODE(st.st_mode), st.st_mtime, st.st_uid, st.st_gid)
            else:
                p.items[parent] = Item(parent, "dir", 0o755, now, uid, gid)


# -- hashing -----------------------------------------------------------------------------------


class HashCache:
    """Content digests of files keyed by (path, inode, size, mtime, ctime): rehash only what changed.

    Only files under ``scope`` (a build's context) are remembered, when it is given: the
    sources of ``COPY --from`` and downloads live in temporary directories.
    """

    def __init__(self, path: Path | None, scope: Path | None = None) -> None:
        self.path = path
        self.scope = None if scope is None else str(scope).rstrip("/") + "/"
        self.data: dict[str, list[object]] = {}
        self.dirty = False
        if path is not None:
            try:
                self.data = json.loads(path.read_text())
            except (OSError, ValueError):
                self.data = {}

    def digest(self, f: Path | str, st: os.stat_result) -> str:
        key = str(f)
        sig = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        hit = self.data.get(key)
        if hit is not None and hit[:4] == sig:
            return str(hit[4])
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        d = h.hexdigest()
        if self.scope is None or key.startswith(self.scope):
            self.data[key] = [*sig, d]
            self.dirty = True
        return d

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def plan_digest(p: Plan, cache: HashCache) -> str:
    """The cache key part of a COPY: names, modes, owners and contents (not mtimes, as Docker)."""
    h = hashlib.sha256()
    for dest in sorted(p.items):
        it = p.items[dest]
        content = ""
        if it.kind == "file" and it.src is not None:
            content = cache.digest(it.src, it.src_stat or os.stat(it.src))
        elif it.kind == "data":
            content = hashlib.sha256(it.data).hexdigest()
        h.update(f"{it.dest}\0{it.kind}\0{it.mode:o}\0{it.uid}:{it.gid}\0{it.linkname}\0{content}\n".encode())
    for tarball, d in p.archives:
        h.update(f"archive\0{d}\0{cache.digest(tarball, os.stat(tarball))}\n".encode())
    return "sha256:" + h.hexdigest()


# -- writing the layer ---------------------------------------------------------------------------


def write_layer(p: Plan, out: BinaryIO) -> None:
    """The layer tar of a plan (entries in path order, parents first)."""
    import tarfile

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for dest in sorted(p.items, key=lambda d: d.split("/")):
            it = p.items[dest]
            ti = tarfile.TarInfo(it.dest)
            ti.mode = it.mode
            ti.mtime = int(it.mtime)
            ti.uid, ti.gid = it.uid, it.gid
            ti.uname = ti.gname = ""
            if it.kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif it.kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = it.linkname
                tf.addfile(ti)
            elif it.kind == "data":
                import io

                ti.size = len(it.data)
                tf.addfile(ti, io.BytesIO(it.data))
            else:
                assert it.src is not None
                with open(it.src, "rb") as f:
                    ti.size = os.fstat(f.fileno()).st_size
                    tf.addfile(ti, f)
        for tarball, d in p.archives:
            _append_archive(tf, tarball, d, set(p.items))


def _append_archive(tf: tarfile.TarFile, tarball: Path, dest: str, seen: set[str]) -> None:
    """ADD's auto-extraction: the archive's entries re-rooted at ``dest`` (unsafe ones refused)."""
    import tarfile

    from pallet.errors import UnsafeArchive

    with tarfile.open(tarball, "r:*") as src:
        for m in src:
            name = posixpath.normpath("/" + m.name).lstrip("/")
            if not name or name == ".":
                continue
            if m.islnk():
                link = posixpath.normpath("/" + m.linkname).lstrip("/")
                m.linkname = posixpath.join(dest, link) if dest != "." else link
            if m.isdev() or m.isfifo():
                raise UnsafeArchive(m.name, "device files are not extracted by ADD")
            m.name = posixpath.join(dest, name) if dest != "." else name
            if m.name in seen and m.isdir():
                continue
            m.uname = m.gname = ""
            if m.isreg():
                tf.addfile(m, src.extractfile(m))
            else:
                tf.addfile(m)
