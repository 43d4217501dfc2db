"""Parallel gzip: a valid single gzip stream, deterministic, any size."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess

import pytest

from pallet.registry.compress import gzip_stream


def _gz(data: bytes, **kw: int) -> bytes:
    out = io.BytesIO()
    n = gzip_stream(io.BytesIO(data), out.write, **kw)
    assert n == len(data)
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, 4096, 65536, 65536 * 3, 65536 * 3 + 17])
def test_round_trip(size: int) -> None:
    data = (os.urandom(size // 2) + b"text " * (size // 10))[:size]
    data += b"x" * (size - len(data))
    z = _gz(data, block=65536, workers=3)
    assert gzip.decompress(z) == data


def test_deterministic_and_compressing() -> None:
    data = b"".join(f"line {i} of a very repetitive file\n".encode() for i in range(200000))
    a = _gz(data, block=65536, workers=1)
    b = _gz(data, block=65536, workers=4)
    assert a == b
    assert len(a) < len(data) / 5
    # priming with the previous block keeps the ratio close to one stream's
    assert len(a) < len(gzip.compress(data, compresslevel=6)) * 1.05


@pytest.mark.skipif(shutil.which("gzip") is None, reason="needs gzip")
def test_gunzip_accepts_it() -> None:
    data = os.urandom(200000) + b"a" * 300000
    z = _gz(data, block=65536)
    p = subprocess.run(["gzip", "-d", "-c"], input=z, capture_output=True, check=True)
    assert p.stdout == data
    assert subprocess.run(["gzip", "-t"], input=z).returncode == 0
