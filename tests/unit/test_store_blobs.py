"""BlobStore: atomic, verified, concurrent-safe writes."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from pathlib import Path

import pytest

from pallet.errors import BlobNotFound, DigestMismatch, InvalidData
from pallet.store.blobs import BlobStore


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_put_read_layout(tmp_path: Path) -> None:
    bs = BlobStore(tmp_path)
    d = bs.put(b"hello")
    assert d == _digest(b"hello")
    assert bs.path(d) == tmp_path / "blobs" / "sha256" / d[7:]
    assert bs.has(d) and bs.size(d) == 5 and bs.read(d) == b"hello"
    with bs.open(d) as f:
        assert f.read() == b"hello"
    assert bs.list() == [d]
    assert os.listdir(tmp_path / "ingest") == []
    bs.delete(d)
    assert not bs.has(d)
    with pytest.raises(BlobNotFound):
        bs.read(d)


def test_writer_streams_and_reports(tmp_path: Path) -> None:
    bs = BlobStore(tmp_path)
    with bs.writer() as w:
        w.write(b"a" * 10)
        w.write(memoryview(b"b" * 5))
    assert w.size == 15 and w.digest == _digest(b"a" * 10 + b"b" * 5)
    assert bs.read(w.digest) == b"a" * 10 + b"b" * 5


def test_digest_mismatch_leaves_nothing(tmp_path: Path) -> None:
    bs = BlobStore(tmp_path)
    with pytest.raises(DigestMismatch) as ei, bs.writer(expected_digest=_digest(b"x")) as w:
        w.write(b"not x")
    assert "digest mismatch" in str(ei.value)
    assert bs.list() == [] and os.listdir(tmp_path / "ingest") == []
    with pytest.raises(DigestMismatch):
        bs.put(b"y", expected=_digest(b"x"))
    assert bs.list() == []


def test_size_mismatch_leaves_nothing(tmp_path: Path) -> None:
    bs = BlobStore(tmp_path)
    with pytest.raises(InvalidData, match="size mismatch"), bs.writer(expected_size=3) as w:
        w.write(b"four")
    assert bs.list() == [] and os.listdir(tmp_path / "ingest") == []


def test_error_inside_writer_leaves_nothing(tmp_path: Path) -> None:
    bs = BlobStore(tmp_path)
    with pytest.raises(RuntimeError), bs.writer() as w:
        w.write(b"partial")
        raise RuntimeError("boom")
    assert bs.list() == [] and os.listdir(tmp_path / "ingest") == []


def test_concurrent_writers_same_blob(tmp_path: Path) -> None:
    bs = BlobStore(tmp_path)
    data = os.urandom(1 << 20)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                with bs.writer(expected_digest=_digest(data)) as w:
                    for i in range(0, len(data), 65536):
                        w.write(data[i : i + 65536])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert bs.list() == [_digest(data)] and bs.read(_digest(data)) == data
    assert os.listdir(tmp_path / "ingest") == []


def test_gc_ingest_removes_only_abandoned_files(tmp_path: Path) -> None:
    bs = BlobStore(tmp_path)
    (tmp_path / "ingest").mkdir(parents=True)
    dead = tmp_path / "ingest" / "ingest-dead"
    dead.write_bytes(b"left by a killed writer")
    live = tmp_path / "ingest" / "ingest-live"
    live.write_bytes(b"being written")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        # a writer running in another process holds its lock: simulate with a child
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os._exit(BlobStore(tmp_path).gc_ingest())
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 1
        assert not dead.exists() and live.exists()
    finally:
        os.close(fd)
    assert bs.gc_ingest() == 1 and not live.exists()


def test_bad_digest_is_refused(tmp_path: Path) -> None:
    from pallet.errors import InvalidArgument

    bs = BlobStore(tmp_path)
    with pytest.raises(InvalidArgument):
        bs.path("sha256:../../etc/passwd")
