"""Compressed inputs: sniffed, decompressed through a child or in-process, errors in one line."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pallet.errors import InvalidData
from pallet.store.blobs import BlobStore
from pallet.store.compression import decompressed, sniff
from pallet.store.importer import import_layer
from tests.support.store_helpers import tar_of

DATA = tar_of({"etc/hostname": b"h\n", "big": os.urandom(300_000)}, dirs=("etc",))


def _zstd(b: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c"], input=b, capture_output=True, check=True).stdout


COMPRESSORS = {"": lambda b: b, "gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress}
if shutil.which("zstd"):
    COMPRESSORS["zstd"] = _zstd


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_sniff_and_import_from_memory(kind: str, tmp_path: Path) -> None:
    packed = COMPRESSORS[kind](DATA)
    assert sniff(packed[:8]) == kind
    bs = BlobStore(tmp_path)
    lb = import_layer(io.BytesIO(packed), bs)  # no file descriptor: fed through a pipe
    assert bs.read(lb.digest) == DATA


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_import_from_file(kind: str, tmp_path: Path) -> None:
    f = tmp_path / "in"
    f.write_bytes(COMPRESSORS[kind](DATA))
    bs = BlobStore(tmp_path / "s")
    with open(f, "rb") as src:
        lb = import_layer(src, bs)
    assert bs.read(lb.digest) == DATA


def test_multi_member_gzip(tmp_path: Path) -> None:
    half = len(DATA) // 2
    packed = gzip.compress(DATA[:half]) + gzip.compress(DATA[half:])
    with decompressed(io.BytesIO(packed)) as f:
        assert f.read() == DATA


@pytest.mark.parametrize("kind", ["xz", "bzip2"] + (["zstd"] if shutil.which("zstd") else []))
def test_corrupt_streams(kind: str, tmp_path: Path) -> None:
    packed = bytearray(COMPRESSORS[kind](DATA))
    cut = bytes(packed[: len(packed) // 2])
    with pytest.raises(InvalidData) as ei:
        import_layer(io.BytesIO(cut), BlobStore(tmp_path))
    assert "\n" not in str(ei.value)
    assert os.listdir(tmp_path / "ingest") == []
