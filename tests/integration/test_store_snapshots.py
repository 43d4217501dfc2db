"""Snapshots: whiteouts both ways, sharing by chain ID, overlay mounts (needs root)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from pallet.oci import mediatypes as mt
from pallet.store import layers as layers_mod
from pallet.store import snapshots as snapshots_mod
from pallet.store.layers import OPAQUE_XATTR, diff, unpack
from tests.support.store_helpers import make_image, new_store, tar_of


def _entries(tar: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        return {m.name: m for m in tf}


def _is_whiteout(p: Path) -> bool:
    st = os.lstat(p)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_whiteouts_applied_on_unpack(tmp_path: Path) -> None:
    blob = tmp_path / "l.tar"
    blob.write_bytes(tar_of({"etc/.wh.gone": None, "var/.wh..wh..opq": None, "var/new": b"n"},
                            dirs=("etc", "var")))
    unpack(blob, mt.OCI_LAYER, tmp_path / "fs")
    fs = tmp_path / "fs"
    assert _is_whiteout(fs / "etc" / "gone")
    assert not (fs / "etc" / ".wh.gone").exists()
    assert os.getxattr(fs / "var", OPAQUE_XATTR) == b"y"
    assert sorted(os.listdir(fs / "var")) == ["new"]


def _mount(store, lowers, tmp_path: Path, name: str = "c") -> Path:  # type: ignore[no-untyped-def]
    target = tmp_path / name / "merged"
    store.snapshots.mount(lowers, tmp_path / name / "upper", tmp_path / name / "work", target)
    return target


def test_overlay_merged_tree_with_whiteouts(pallet_root: Path, tmp_path: Path) -> None:
    s = new_store(pallet_root)
    base = tar_of({"etc/keep": b"k", "etc/gone": b"g", "var/old1": b"1", "var/old2": b"2"}, dirs=("etc", "var"))
    top = tar_of({"etc/.wh.gone": None, "var/.wh..wh..opq": None, "var/new": b"n", "etc/added": b"a"},
                 dirs=("etc", "var"))
    img = make_image(s, [base, top], "wh:1")
    lowers = s.snapshots.ensure(img)
    assert len(lowers) == 2 and lowers[0].parent.name != lowers[1].parent.name
    m = _mount(s, lowers, tmp_path)
    try:
        assert sorted(os.listdir(m / "etc")) == ["added", "keep"]
        assert sorted(os.listdir(m / "var")) == ["new"]
        # change the container's view, then diff the upper dir back to a layer
        (m / "etc" / "keep").unlink()
        (m / "etc" / "fresh").write_text("f")
        subprocess.run(["rm", "-rf", str(m / "var")], check=True)
        (m / "var").mkdir()
        (m / "var" / "only").write_text("o")
    finally:
        s.snapshots.unmount(m)
    assert not os.listdir(m)
    buf = io.BytesIO()
    diff_id, size = diff(tmp_path / "c" / "upper", buf)
    data = buf.getvalue()
    import hashlib

    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest() and size == len(data)
    ents = _entries(data)
    assert "etc/.wh.keep" in ents and ents["etc/.wh.keep"].isreg()
    assert "etc/fresh" in ents and "var/only" in ents
    assert "var/.wh..wh..opq" in ents
    assert not any(n.startswith("etc/keep") for n in ents)
    # round trip: the diff as a third layer gives the same merged view
    img3 = make_image(s, [base, top, data], "wh:2")
    m3 = _mount(s, s.snapshots.ensure(img3), tmp_path, "c3")
    try:
        assert sorted(os.listdir(m3 / "etc")) == ["added", "fresh"]
        assert sorted(os.listdir(m3 / "var")) == ["only"]
    finally:
        s.snapshots.unmount(m3)


def test_snapshots_shared_and_unpacked_once(pallet_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = layers_mod.unpack

    def counting(*a, **kw):  # type: ignore[no-untyped-def]
        calls.append(a[0])
        return real(*a, **kw)

    monkeypatch.setattr(snapshots_mod, "unpack", counting)
    s = new_store(pallet_root)
    base = tar_of({"bin/sh": b"#!"}, dirs=("bin",))
    a = make_image(s, [base, tar_of({"a": b"a"})], "a:1")
    b = make_image(s, [base, tar_of({"b": b"b"})], "b:1")
    la = s.snapshots.ensure(a)
    lb = s.snapshots.ensure(b)
    assert la[1] == lb[1] and la[0] != lb[0]
    assert len(calls) == 3
    s.snapshots.ensure(a)
    assert len(calls) == 3
    assert len(s.snapshots.list()) == 3


def test_concurrent_ensure_unpacks_once(pallet_root: Path) -> None:
    s = new_store(pallet_root)
    big = tar_of({f"d/f{i}": os.urandom(20_000) for i in range(300)}, dirs=("d",))
    img = make_image(s, [big], "big:1")
    code = (
        "import sys; from pathlib import Path; from pallet.store import Store;"
        "s=Store(Path(sys.argv[1])); print(s.snapshots.ensure(s.images.get('big:1'))[0])"
    )
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", code, str(pallet_root / "store")],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outs) == 1
    names = os.listdir(pallet_root / "store" / "snapshots")
    assert not [n for n in names if n.startswith(("tmp-", "gone-"))]
    assert len(os.listdir(Path(outs.pop()) / "d")) == 300
    assert img.id


def test_zero_layer_image_and_readonly_mount(pallet_root: Path, tmp_path: Path) -> None:
    s = new_store(pallet_root)
    img = make_image(s, [], "empty:1")
    lowers = s.snapshots.ensure(img)
    assert lowers == []
    m = _mount(s, lowers, tmp_path)
    try:
        assert os.listdir(m) == []
        (m / "x").write_text("x")
    finally:
        s.snapshots.unmount(m)
    img2 = make_image(s, [tar_of({"f": b"1"})], "one:1")
    target = tmp_path / "ro"
    s.snapshots.mount(s.snapshots.ensure(img2), tmp_path / "c" / "upper", tmp_path / "c" / "work", target,
                      readonly=True)
    try:
        assert sorted(os.listdir(target)) == ["f", "x"]
        with pytest.raises(OSError):
            (target / "y").write_text("y")
    finally:
        s.snapshots.unmount(target)


def test_many_layers_mount(pallet_root: Path, tmp_path: Path) -> None:
    s = new_store(pallet_root)
    n = 60
    img = make_image(s, [tar_of({f"f{i}": str(i).encode()}) for i in range(n)], "deep:1")
    lowers = s.snapshots.ensure(img)
    assert len(":".join(map(str, lowers))) > 4000
    m = _mount(s, lowers, tmp_path)
    try:
        assert len(os.listdir(m)) == n and (m / "f0").read_text() == "0"
    finally:
        s.snapshots.unmount(m)


def test_remove_unused(pallet_root: Path) -> None:
    s = new_store(pallet_root)
    from pallet.oci.digest import chain_ids

    a = make_image(s, [tar_of({"a": b"1"})], "a:1")
    b = make_image(s, [tar_of({"b": b"2"})], "b:1")
    s.snapshots.ensure(a)
    s.snapshots.ensure(b)
    keep = set(chain_ids(list(a.config.diff_ids)))
    removed = s.snapshots.remove_unused(keep)
    assert removed == chain_ids(list(b.config.diff_ids))
    assert s.snapshots.list() == sorted(keep)


def test_kill_9_mid_unpack_then_ensure(pallet_root: Path) -> None:
    import signal
    import sys
    import time

    s = new_store(pallet_root)
    big = tar_of({f"d/f{i}": os.urandom(200_000) for i in range(400)}, dirs=("d",))
    img = make_image(s, [big], "big:1")
    code = (
        "import sys; from pathlib import Path; from pallet.store import Store;"
        "s=Store(Path(sys.argv[1])); s.snapshots.ensure(s.images.get('big:1'))"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(pallet_root / "store")])
    snaps = pallet_root / "store" / "snapshots"
    deadline = time.monotonic() + 30
    while True:  # kill it once it has written a few files, long before the 400th
        done = [f for d in snaps.glob("tmp-*/.fs.unpack-*/d") for f in os.listdir(d)]
        if len(done) >= 5:
            break
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.002)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert s.snapshots.list() == []  # nothing half-made is taken for a snapshot
    (fs,) = s.snapshots.ensure(img)
    assert len(os.listdir(fs / "d")) == 400
    assert not [n for n in os.listdir(snaps) if n.startswith("tmp-")]


def test_diff_to_blob(pallet_root: Path, tmp_path: Path) -> None:
    from pallet.store.layers import diff_to_blob

    s = new_store(pallet_root)
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "new").write_text("n")
    os.mknod(upper / "etc" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    digest, size = diff_to_blob(upper, s.blobs)
    assert s.blobs.size(digest) == size
    ents = _entries(s.blobs.read(digest))
    assert set(ents) == {"etc", "etc/new", "etc/.wh.gone"}
