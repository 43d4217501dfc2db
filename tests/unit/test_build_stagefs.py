"""Paths of a build state looked up through its unpacked layers as a container sees them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pallet.build.stagefs import OPAQUE_XATTR, resolve_in_layers, stat_in_layers


def _layers(tmp_path: Path) -> tuple[Path, Path]:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    for d in (lower / "srv" / "app", lower / "etc", lower / "gone" / "sub", upper / "etc"):
        d.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (lower / "srv" / "app" / "f").write_text("x")
    os.symlink("/srv/app", lower / "app")  # absolute: from the image's root, not the host's
    os.symlink("../srv/app/f", upper / "etc" / "rel")
    os.symlink("/nowhere", upper / "dangling")
    os.symlink("loop2", upper / "loop1")
    os.symlink("loop1", upper / "loop2")
    os.mknod(upper / "gone", stat.S_IFCHR | 0o600, 0)  # a whiteout of gone/ and all below
    return upper, lower


def test_symlinks_resolve_inside_the_image(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a whiteout (a 0/0 character device) needs root")
    layers = list(_layers(tmp_path))
    st = stat_in_layers(layers, "app")
    assert st is not None and stat.S_ISDIR(st.st_mode)
    assert st.st_ino == os.stat(tmp_path / "lower" / "srv" / "app").st_ino
    f = stat_in_layers(layers, "/app/./f")
    assert f is not None and f.st_ino == os.stat(tmp_path / "lower" / "srv" / "app" / "f").st_ino
    assert stat_in_layers(layers, "etc/rel") == f  # relative, through ".."
    assert stat_in_layers(layers, "etc/passwd") is not None  # a lower file under an upper dir
    assert stat_in_layers(layers, "app/nope") is None
    assert stat_in_layers(layers, "gone") is None and stat_in_layers(layers, "gone/sub") is None
    dangling = stat_in_layers(layers, "dangling")  # the link itself exists
    assert dangling is not None and stat.S_ISLNK(dangling.st_mode)
    assert stat_in_layers(layers, "dangling/x") is None
    loop = stat_in_layers(layers, "loop1")
    assert loop is not None and stat.S_ISLNK(loop.st_mode)
    root = stat_in_layers(layers, "/")
    assert root is not None and stat.S_ISDIR(root.st_mode)
    # where a path leads (Docker's follow-symlink-in-scope): missing components kept as written
    assert resolve_in_layers(layers, "app/new/x")[0] == "srv/app/new/x"
    assert resolve_in_layers(layers, "etc/rel")[0] == "srv/app/f"
    path, found = resolve_in_layers(layers, "dangling")
    assert (path, found) == ("nowhere", None)
    assert resolve_in_layers(layers, "a/../app")[0] == "srv/app"


def test_an_opaque_directory_hides_the_lower_layers(tmp_path: Path) -> None:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "old").write_text("x")
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "new").write_text("y")
    assert stat_in_layers([upper, lower], "d/old") is not None
    try:
        os.setxattr(upper / "d", OPAQUE_XATTR, b"y")
    except OSError:
        pytest.skip("trusted.* extended attributes need root")
    assert stat_in_layers([upper, lower], "d/old") is None
    assert stat_in_layers([upper, lower], "d/new") is not None
