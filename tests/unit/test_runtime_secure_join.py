"""rootfs.secure_join: every symlink is resolved as if the rootfs were `/`, never outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pallet.runtime.rootfs import secure_join


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "etc").mkdir()
    return r


def test_plain_and_missing_paths(root: Path) -> None:
    assert secure_join(str(root), "/usr/lib") == str(root / "usr" / "lib")
    assert secure_join(str(root), "usr//./lib/") == str(root / "usr" / "lib")
    assert secure_join(str(root), "/") == str(root)
    assert secure_join(str(root), "/no/such/dir") == str(root / "no" / "such" / "dir")
    assert secure_join(str(root), "/no/../etc") == str(root / "etc")


def test_dotdot_never_climbs_above_the_root(root: Path) -> None:
    assert secure_join(str(root), "/../../../etc/passwd") == str(root / "etc" / "passwd")
    assert secure_join(str(root), "/usr/../../..") == str(root)


def test_absolute_links_are_rooted(root: Path) -> None:
    (root / "usr" / "lib" / "os").symlink_to("/etc")
    (root / "slash").symlink_to("/")
    (root / "host").symlink_to(str(root.parent))  # an absolute host path is read inside the root
    assert secure_join(str(root), "/usr/lib/os/x") == str(root / "etc" / "x")
    assert secure_join(str(root), "/slash/../../etc") == str(root / "etc")
    assert secure_join(str(root), "/host") == str(root) + str(root.parent)


def test_relative_links_resolve_from_their_directory(root: Path) -> None:
    (root / "usr" / "lib" / "up").symlink_to("../../../../../..")
    (root / "usr" / "lib" / "sib").symlink_to("../lib/../../etc")
    assert secure_join(str(root), "/usr/lib/up/etc") == str(root / "etc")
    assert secure_join(str(root), "/usr/lib/sib/f") == str(root / "etc" / "f")


def test_chains_and_dotdot_after_a_link(root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("/usr/lib")
    assert secure_join(str(root), "/a") == str(root / "usr" / "lib")
    # `..` applies to where the link led, as the kernel does, not to the link's own directory
    assert secure_join(str(root), "/a/..") == str(root / "usr")


def test_the_result_never_leaves_the_root(root: Path) -> None:
    escapes = ["/../..", "/x/../../..", "/l1/../../..", "/l2/etc"]
    (root / "l1").symlink_to("/../../..")
    (root / "l2").symlink_to("../" * 20)
    for p in escapes:
        out = secure_join(str(root), p)
        assert os.path.commonpath([out, str(root)]) == str(root), p


def test_loops_raise_eloop(root: Path) -> None:
    (root / "x").symlink_to("y")
    (root / "y").symlink_to("/x")
    with pytest.raises(OSError) as e:
        secure_join(str(root), "/x/z")
    assert e.value.errno == 40  # ELOOP
