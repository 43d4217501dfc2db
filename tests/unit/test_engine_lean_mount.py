"""Overlay options of a --rm container's rootfs: volatile (never synced), and mountable again."""

from __future__ import annotations

from pathlib import Path

from pallet.store.blobs import BlobStore
from pallet.store.snapshots import SnapshotStore


def test_volatile_only_when_asked_and_only_with_an_upper_dir(tmp_path: Path) -> None:
    s = SnapshotStore(tmp_path, BlobStore(tmp_path))
    lowers = [tmp_path / "l1", tmp_path / "l2"]
    durable, _ = s.mount_options(lowers, tmp_path / "upper", tmp_path / "work")
    assert "volatile" not in durable.split(",")
    s.volatile = True
    volatile, _ = s.mount_options(lowers, tmp_path / "upper", tmp_path / "work")
    assert volatile.split(",") == [*durable.split(","), "volatile"]
    read_only, _ = s.mount_options(lowers, None, None)  # no upper dir: nothing to sync
    assert "volatile" not in read_only.split(",")


def test_a_volatile_work_dir_can_be_mounted_again(tmp_path: Path) -> None:
    s = SnapshotStore(tmp_path, BlobStore(tmp_path))
    marker = tmp_path / "work" / "work" / "incompat" / "volatile"
    marker.mkdir(parents=True)
    s._allow_remount(tmp_path / "work")
    assert marker.exists()  # a durable mount leaves the kernel's marker alone
    s.volatile = True
    s._allow_remount(tmp_path / "work")
    assert not marker.exists() and marker.parent.exists()
