"""Parallel gzip for layers going to a registry (the way pigz does it).

The input is cut in blocks compressed on several threads (zlib releases the
GIL); each block is a raw deflate stream primed with the previous block's last
32 KiB as its dictionary and ended with a sync flush, so the blocks concatenate
into one ordinary single-member gzip stream that any gunzip reads.  The output
depends only on the input, the level and the block size: compressing the same
layer twice gives the same bytes, hence the same digest.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

BLOCK = 1 << 20
WINDOW = 32 << 10
# magic, deflate, no flags, mtime 0, no extra flags, OS "unknown" (as Go writes it)
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _deflate(block: bytes, dictionary: bytes, level: int, last: bool) -> bytes:
    c = (zlib.compressobj(level, zlib.DEFLATED, -15, zdict=dictionary) if dictionary
         else zlib.compressobj(level, zlib.DEFLATED, -15))
    return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def gzip_stream(src: BinaryIO, write: Callable[[bytes], Any], level: int = 6,
                block: int = BLOCK, workers: int | None = None) -> int:
    """Compress everything readable from ``src`` into ``write``; returns the input size."""
    workers = max(1, workers or min(4, os.cpu_count() or 1))
    write(HEADER)
    crc = 0
    size = 0
    prev = b""
    cur = src.read(block)
    pending: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip") as pool:
        while True:
            nxt = src.read(block) if cur else b""
            last = not nxt
            pending.append(pool.submit(_deflate, cur, prev[-WINDOW:], level, last))
            crc = zlib.crc32(cur, crc)
            size += len(cur)
            while len(pending) > workers * 2 or (last and pending):
                write(pending.popleft().result())
            if last:
                break
            prev, cur = cur, nxt
    write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    return size
