"""Streams in and out of gzip and zstd.

Decompression runs in a ``gzip``/``zstd`` child process when the tool is
installed, so that it overlaps with hashing and writing on another core;
Python's own zlib is the fallback for gzip.  A corrupt or truncated stream is
reported as :class:`pallet.errors.InvalidData`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from pallet.errors import InvalidData, Unavailable

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_MAGIC = b"BZh"

CHUNK = 1 << 20


def sniff(head: bytes) -> str:
    """'gzip', 'zstd', 'xz', 'bzip2' or '' (uncompressed) from a stream's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    return ""


class _Prefixed:
    """A reader that first returns ``head`` and then the rest of ``f``."""

    def __init__(self, head: bytes, f: BinaryIO) -> None:
        self._head = head
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                h, self._head = self._head, b""
                rest = self._f.read(n - len(h) if n >= 0 else -1) if n != len(h) else b""
                return h + (rest or b"")
            h, self._head = self._head[:n], self._head[n:]
            return h
        return self._f.read(n)


class _ProcReader:
    """stdout of a decompressor child, with its exit status checked at EOF."""

    def __init__(self, proc: subprocess.Popen[bytes], kind: str) -> None:
        self.proc = proc
        self.kind = kind
        assert proc.stdout is not None
        self._out = proc.stdout

    def read(self, n: int = -1) -> bytes:
        data = self._out.read(n)
        if not data and n != 0:
            self.check()
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        n = self._out.readinto(b)  # type: ignore[attr-defined]
        if not n:
            self.check()
        return int(n or 0)

    def check(self) -> None:
        rc = self.proc.wait()
        if rc != 0:
            err = b""
            if self.proc.stderr is not None:
                err = self.proc.stderr.read()
            msg = err.decode(errors="replace").strip().splitlines()
            why = msg[-1] if msg else f"exit status {rc}"
            raise InvalidData(f"corrupt {self.kind} stream: {why}")


class _ZlibReader:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._d = zlib.decompressobj(31)
        self._buf = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            raw = self._f.read(CHUNK)
            if not raw:
                if not self._d.eof:
                    raise InvalidData("corrupt gzip stream: unexpected end of file")
                self._eof = True
                break
            try:
                self._buf += self._d.decompress(raw)
                while self._d.eof and self._d.unused_data:  # multi-member gzip
                    rest = self._d.unused_data
                    self._d = zlib.decompressobj(31)
                    self._buf += self._d.decompress(rest)
            except zlib.error as e:
                raise InvalidData(f"corrupt gzip stream: {e}") from None
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _pump(src: BinaryIO, dst: BinaryIO) -> None:
    try:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            dst.write(chunk)
    except (BrokenPipeError, OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.close()


def _has_fileno(f: object) -> bool:
    try:
        f.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def decompressed(src: BinaryIO, kind: str | None = None) -> Iterator[BinaryIO]:
    """A reader of ``src`` decompressed; ``kind`` is sniffed when None.

    ``src`` must be positioned at the start of the stream.
    """
    head = b""
    if kind is None:
        head = src.read(8)
        kind = sniff(head)
    if not kind:
        yield _Prefixed(head, src) if head else src  # type: ignore[misc]
        return
    if kind in ("xz", "bzip2"):
        import bz2
        import lzma

        mod = lzma if kind == "xz" else bz2
        f = mod.open(_Prefixed(head, src))  # type: ignore[attr-defined]
        try:
            yield _Checked(f, kind)  # type: ignore[misc]
        finally:
            f.close()
        return
    tool = {"gzip": "gzip", "zstd": "zstd"}[kind]
    exe = shutil.which(tool)
    if exe is None:
        if kind == "gzip":
            yield _ZlibReader(_Prefixed(head, src))  # type: ignore[arg-type, misc]
            return
        raise Unavailable("zstd is needed to read zstd-compressed data (apt-get install zstd)")
    direct = not head and _has_fileno(src)
    if not direct and head and _has_fileno(src) and src.seekable():
        pos = src.tell() - len(head)
        src.seek(pos)
        # a buffered reader may only move its buffer: put the descriptor there too
        import os

        os.lseek(src.fileno(), pos, os.SEEK_SET)
        direct = True
    proc = subprocess.Popen(
        [exe, "-d", "-c", "-q"] if kind == "zstd" else [exe, "-d", "-c"],
        stdin=src if direct else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=CHUNK,
    )
    feeder = None
    if not direct:
        assert proc.stdin is not None
        feeder = threading.Thread(
            target=_pump, args=(_Prefixed(head, src), proc.stdin), daemon=True
        )
        feeder.start()
    try:
        yield _ProcReader(proc, kind)  # type: ignore[misc]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
        if feeder is not None:
            feeder.join(timeout=5)


class _Checked:
    def __init__(self, f: BinaryIO, kind: str) -> None:
        self._f = f
        self.kind = kind

    def read(self, n: int = -1) -> bytes:
        try:
            return self._f.read(n)
        except (OSError, EOFError, ValueError) as e:
            raise InvalidData(f"corrupt {self.kind} stream: {e}") from None
