"""The build context: a directory, a tarball or stdin (a Dockerfile or a tar), the Dockerfile
(``-f``, also outside the context) and the .dockerignore rules; source lookup for COPY/ADD."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from pallet.build.dockerignore import Matcher, load_ignore
from pallet.build.parser import BuildError

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from typing import BinaryIO

WILDCARDS = set("*?[")


class Context:
    """A build's context (its files and ignore rules) and its Dockerfile."""

    __slots__ = ("_cleanup", "_files", "dockerfile_name", "dockerfile_text", "ignored_always", "matcher", "root")

    def __init__(self, root: Path | None, dockerfile_text: str, dockerfile_name: str, matcher: Matcher,
                 ignored_always: frozenset[str] = frozenset(), cleanup: list[Path] | None = None) -> None:
        self.root = root  # None: no context (a Dockerfile on stdin)
        self.dockerfile_text = dockerfile_text
        self.dockerfile_name = dockerfile_name  # as errors show it
        self.matcher = matcher
        self.ignored_always = ignored_always  # Dockerfile, .dockerignore
        self._cleanup: list[Path] = [] if cleanup is None else cleanup
        self._files: list[str] | None = None

    @property
    def extracted(self) -> bool:
        """The context was unpacked from an archive (or stdin) into a temporary directory."""
        return bool(self._cleanup)

    def close(self) -> None:
        import shutil

        for p in self._cleanup:
            shutil.rmtree(p, ignore_errors=True)
        self._cleanup.clear()

    def visible(self, rel: str) -> bool:
        return rel not in self.ignored_always and not self.matcher.excluded(rel)

    def walk(self) -> list[str]:
        """Every path of the context not excluded (relative, ``/``-separated), sorted."""
        if self._files is not None:
            return self._files
        out: list[str] = []
        if self.root is None:
            self._files = out
            return out
        root = str(self.root)
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            keep = []
            for d in sorted(dirnames):
                rel = rel_dir + d
                full = os.path.join(dirpath, d)
                if os.path.islink(full):
                    if self.visible(rel):
                        out.append(rel)
                    continue
                if self.visible(rel):
                    out.append(rel)
                    keep.append(d)
                elif self.matcher.may_include_below(rel):
                    keep.append(d)
            dirnames[:] = keep
            for f in filenames:
                rel = rel_dir + f
                if self.visible(rel):
                    out.append(rel)
        out.sort()
        self._files = out
        return out

    def resolve(self, src: str, allow_wildcards: bool = True) -> list[str]:
        """Context paths a COPY source names (``.`` is the whole context)."""
        if self.root is None:
            raise BuildError("COPY failed: no build context (the Dockerfile came from stdin)")
        import posixpath

        clean = posixpath.normpath("/" + src).lstrip("/") or "."
        if allow_wildcards and any(c in WILDCARDS for c in clean):
            hits = [p for p in self.walk() if fnmatch.fnmatchcase(p, clean) and _same_depth(p, clean)]
            if not hits:
                raise BuildError("COPY failed: no source files were specified")
            return hits
        if clean == ".":
            return ["."]
        full = self.root / clean
        if not os.path.lexists(full) or not self.visible(clean) or _parent_excluded(self, clean):
            raise BuildError(
                f"COPY failed: file not found in build context or excluded by .dockerignore: "
                f"stat {src}: file does not exist"
            )
        return [clean]

    def below(self, rel_dir: str) -> list[str]:
        """Visible paths under a context directory (relative to it), sorted."""
        if rel_dir == ".":
            return list(self.walk())
        prefix = rel_dir + "/"
        return [p[len(prefix):] for p in self.walk() if p.startswith(prefix)]

    def path(self, rel: str) -> Path:
        assert self.root is not None
        return self.root if rel == "." else self.root / rel


def _same_depth(path: str, pattern: str) -> bool:
    return path.count("/") == pattern.count("/")


def _parent_excluded(ctx: Context, rel: str) -> bool:
    parts = rel.split("/")
    return any(not ctx.visible("/".join(parts[:k])) for k in range(1, len(parts)))


def _is_tar(head: bytes) -> bool:
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _extract_context(src: Path, dest: Path) -> Path:
    """Unpack a context tarball (compression sniffed) into ``dest/ctx``."""
    from pallet.store.layers import unpack

    out = dest / "ctx"
    try:
        unpack(src, "application/x-tar", out)
    except Exception as e:  # noqa: BLE001 - any unreadable archive is a user error here
        raise BuildError(f"unable to read the build context archive: {e}") from None
    return out


@contextlib.contextmanager
def open_context(
    source: str,
    dockerfile: str | None,
    stdin: BinaryIO | None = None,
    workdir: Path | None = None,
) -> Iterator[Context]:
    """The context named on the command line (``PATH``, ``-`` or a tarball) with its Dockerfile."""
    cleanup: list[Path] = []
    root: Path | None
    df_text: str | None = None
    df_name = dockerfile or "Dockerfile"
    try:
        if source == "-":
            data = (stdin or io.BytesIO()).read()
            if _is_tar(data[:512]):
                import tempfile

                tmp = Path(tempfile.mkdtemp(prefix="pallet-build-ctx-", dir=workdir))
                cleanup.append(tmp)
                (tmp / "ctx.tar").write_bytes(data)
                root = _extract_context(tmp / "ctx.tar", tmp)
            else:
                root = None
                df_text = data.decode("utf-8", errors="replace")
                df_name = "Dockerfile"
        else:
            p = Path(source)
            if p.is_dir():
                root = p.resolve()
            elif p.is_file():
                with open(p, "rb") as f:
                    head = f.read(512)
                if not _is_tar(head):
                    raise BuildError(f"unable to prepare context: {source} is not a directory or a tar archive")
                import tempfile

                tmp = Path(tempfile.mkdtemp(prefix="pallet-build-ctx-", dir=workdir))
                cleanup.append(tmp)
                root = _extract_context(p, tmp)
            else:
                raise BuildError(f'unable to prepare context: path "{source}" not found')
        df_path: Path | None = None
        if df_text is None:
            if dockerfile == "-":
                df_text = (stdin or io.BytesIO()).read().decode("utf-8", errors="replace")
                df_name = "Dockerfile"
            else:
                assert root is not None
                cand = Path(dockerfile) if dockerfile else root / "Dockerfile"
                if dockerfile and not cand.is_absolute():
                    # -f is relative to the current directory for a directory context (to the
                    # context when not found there), to the archive's root for a tar context
                    cand = root / dockerfile if cleanup or not cand.exists() else cand
                if not cand.is_file():
                    shown = dockerfile or "Dockerfile"
                    raise BuildError(f"unable to prepare context: unable to evaluate symlinks in "
                                     f"Dockerfile path: lstat {cand}: no such file or directory"
                                     if not cand.exists() else f"Cannot locate specified Dockerfile: {shown}")
                df_path = cand.resolve()
                df_text = df_path.read_text(errors="replace")
                df_name = cand.name
        lines = load_ignore(root, df_path) if root is not None else []
        ctx = Context(root, df_text, df_name, Matcher(lines), frozenset(), cleanup)
        yield ctx
    finally:
        if cleanup:
            import shutil

            for c in cleanup:
                shutil.rmtree(c, ignore_errors=True)


def is_archive(path: Path) -> bool:
    """ADD extracts local tar archives (plain, gzip, bzip2, xz)."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return False
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if not _is_tar(head):
        return False
    import tarfile

    try:
        with tarfile.open(path, "r:*") as tf:
            return tf.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False
