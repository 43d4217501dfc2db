"""Hostile and broken layer tarballs: refused with one clear message, nothing left behind."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from pallet.errors import DigestMismatch, InvalidData, UnsafeArchive
from pallet.oci import mediatypes as mt
from pallet.store.blobs import BlobStore
from pallet.store.importer import import_layer
from pallet.store.layers import scan, unpack
from tests.support.images import tar_with


def _reg(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.mode = 0o644
    return ti, data


def _sym(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    return ti, None


def _lnk(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.LNKTYPE
    ti.linkname = target
    return ti, None


def _dev(name: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.CHRTYPE
    ti.devmajor, ti.devminor = 8, 0
    return ti, None


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    return ti, None


HOSTILE = {
    "traversal": ([_reg("ok"), _reg("../evil")], "escapes the target directory"),
    "nested traversal": ([_reg("a/b/../../../evil")], "escapes the target directory"),
    "absolute path": ([_reg("/evil")], "absolute path"),
    "write through symlink": ([_sym("link", "/tmp"), _reg("link/evil")], "through the symbolic link"),
    "write through relative symlink": (
        [_dir("d"), _sym("d/up", "../../.."), _reg("d/up/evil")], "through the symbolic link"),
    "hard link outside": ([_lnk("hl", "/etc/passwd")], "absolute hard link target"),
    "hard link traversal": ([_lnk("hl", "../outside")], "escapes the target directory"),
    "hard link to unknown file": ([_lnk("hl", "etc/shadow")], "a file outside the archive"),
    "hard link through symlink": ([_sym("l", "/etc"), _lnk("hl", "l/passwd")], "through the symbolic link"),
    "device node": ([_dev("evil")], "device nodes are not allowed"),
    "symlink then dir replaced": (
        [_dir("x"), _sym("x", "/"), _reg("x/evil")], "through the symbolic link"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_refused_on_import(case: str, tmp_path: Path) -> None:
    entries, why = HOSTILE[case]
    data = tar_with(entries)  # type: ignore[arg-type]
    bs = BlobStore(tmp_path / "store")
    with pytest.raises(UnsafeArchive) as ei:
        import_layer(io.BytesIO(data), bs)
    assert why in str(ei.value) and "\n" not in str(ei.value)
    assert bs.list() == [] and os.listdir(tmp_path / "store" / "ingest") == []


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_refused_on_unpack(case: str, tmp_path: Path) -> None:
    entries, why = HOSTILE[case]
    blob = tmp_path / "layer.tar"
    blob.write_bytes(tar_with(entries))  # type: ignore[arg-type]
    base = tmp_path / "deep" / "er"
    base.mkdir(parents=True)
    with pytest.raises(UnsafeArchive, match=why):
        unpack(blob, mt.OCI_LAYER, base / "fs")
    assert os.listdir(base) == []
    assert sorted(os.listdir(tmp_path)) == ["deep", "layer.tar"]
    assert not Path("/tmp/evil").exists()


def test_devices_under_dev_are_skipped(tmp_path: Path) -> None:
    blob = tmp_path / "l.tar"
    blob.write_bytes(tar_with([_dir("dev"), _dev("dev/sda"), _reg("etc/hostname")]))
    unpack(blob, mt.OCI_LAYER, tmp_path / "fs")
    assert os.listdir(tmp_path / "fs" / "dev") == []
    assert (tmp_path / "fs" / "etc" / "hostname").read_bytes() == b"x"


def test_truncated_archive(tmp_path: Path) -> None:
    data = tar_with([_reg("big", os.urandom(100_000)), _reg("small")])
    bs = BlobStore(tmp_path / "s")
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        small = tf.getmember("small")
    # inside big's data, inside small's header, right before small's data, header only
    for cut in (50_000, small.offset, small.offset + 100, small.offset_data, 700):
        with pytest.raises(InvalidData, match="invalid tar archive"):
            import_layer(io.BytesIO(data[:cut]), bs)
    assert bs.list() == []


def test_corrupt_gzip(tmp_path: Path) -> None:
    gz = bytearray(gzip.compress(tar_with([_reg("a", os.urandom(50_000))])))
    gz[len(gz) // 2] ^= 0xFF
    bs = BlobStore(tmp_path / "s")
    with pytest.raises(InvalidData) as ei:
        import_layer(io.BytesIO(bytes(gz)), bs)
    assert "gzip" in str(ei.value) or "tar" in str(ei.value)
    with pytest.raises(InvalidData, match="gzip"):
        import_layer(io.BytesIO(bytes(gz[: len(gz) // 3])), bs)
    assert bs.list() == [] and os.listdir(tmp_path / "s" / "ingest") == []


def test_not_a_tar(tmp_path: Path) -> None:
    bs = BlobStore(tmp_path / "s")
    for junk in (b"", b"hello world" * 100, os.urandom(4096)):
        with pytest.raises(InvalidData):
            import_layer(io.BytesIO(junk), bs)
    assert bs.list() == []


def test_layer_blob_whose_digest_does_not_match(tmp_path: Path) -> None:
    blob = tmp_path / "l.tar"
    blob.write_bytes(tar_with([_reg("a")]))
    with pytest.raises(DigestMismatch):
        unpack(blob, mt.OCI_LAYER, tmp_path / "fs", diff_id="sha256:" + "0" * 64)
    assert not (tmp_path / "fs").exists()
    assert sorted(os.listdir(tmp_path)) == ["l.tar"]


def test_import_keeps_exact_bytes_and_digest(tmp_path: Path) -> None:
    data = tar_with([_dir("etc"), _reg("etc/os-release", b"ID=test\n"), _sym("bin", "usr/bin")])
    bs = BlobStore(tmp_path / "s")
    lb = import_layer(io.BytesIO(gzip.compress(data)), bs)
    assert bs.read(lb.digest) == data and lb.size == len(data) and lb.entries == 3
    assert lb.media_type == mt.OCI_LAYER


def test_unpack_regular_tree(tmp_path: Path) -> None:
    data = tar_with(
        [_dir("etc"), _reg("etc/a", b"A"), _lnk("etc/b", "etc/a"), _sym("etc/c", "/etc/a"),
         _reg("deep/implicit/file", b"F"), _reg("etc/a", b"A2")]
    )
    blob = tmp_path / "l.tar"
    blob.write_bytes(data)
    n = unpack(blob, mt.OCI_LAYER, tmp_path / "fs")
    fs = tmp_path / "fs"
    assert (fs / "etc" / "a").read_bytes() == b"A2"
    assert (fs / "etc" / "b").read_bytes() == b"A"  # linked to the first etc/a
    assert os.readlink(fs / "etc" / "c") == "/etc/a"
    assert (fs / "deep" / "implicit" / "file").read_bytes() == b"F"
    assert n == 4
    assert scan(io.BytesIO(data)) == 6


def test_modes_and_times_kept_whatever_the_umask(tmp_path: Path) -> None:
    import stat

    entries = []
    for name, mode in (("g-writable", 0o664), ("setuid", 0o4755), ("private", 0o600)):
        ti, data = _reg(f"d/{name}")
        ti.mode = mode
        ti.mtime = 1_600_000_000
        entries.append((ti, data))
    d, _ = _dir("d")
    d.mode = 0o775
    d.mtime = 1_500_000_000
    blob = tmp_path / "l.tar"
    blob.write_bytes(tar_with([(d, None), *entries]))
    old = os.umask(0o077)
    try:
        unpack(blob, mt.OCI_LAYER, tmp_path / "fs")
    finally:
        os.umask(old)
    fs = tmp_path / "fs" / "d"
    assert stat.S_IMODE(os.stat(fs / "g-writable").st_mode) == 0o664
    assert stat.S_IMODE(os.stat(fs / "setuid").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(fs / "private").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(fs).st_mode) == 0o775
    assert os.stat(fs).st_mtime == 1_500_000_000 and os.stat(fs / "setuid").st_mtime == 1_600_000_000


def test_forward_reader_passes_every_byte_once_in_order() -> None:
    from pallet.store.layers import ForwardReader

    data = os.urandom(3 * (1 << 20) + 123)
    seen: list[bytes] = []
    fr = ForwardReader(io.BytesIO(data), seen.append)
    assert fr.read(10) == data[:10] and fr.tell() == 10
    fr.seek(2_000_000)
    assert fr.read(5) == data[2_000_000:2_000_005]
    fr.seek(3, 1)
    assert fr.tell() == 2_000_008
    with pytest.raises(OSError):
        fr.seek(0)
    fr.drain()
    assert b"".join(seen) == data and fr.at_eof
    assert fr.read(1) == b""
