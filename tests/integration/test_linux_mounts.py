"""remove_tree never deletes through a mount left below the tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import needs_root

pytestmark = [needs_root]


def test_remove_tree_unmounts_before_deleting(tmp_path: Path) -> None:
    from pallet.linux.mounts import remove_tree

    source = tmp_path / "source"
    source.mkdir()
    (source / "keep").write_text("precious")
    tree = tmp_path / "tree"
    (tree / "a" / "bind").mkdir(parents=True)
    (tree / "a" / "work").mkdir(mode=0)  # as overlay leaves its work dirs
    subprocess.run(["mount", "--bind", str(source), str(tree / "a" / "bind")], check=True)
    try:
        remove_tree(tree)
    finally:
        subprocess.run(["umount", "-l", str(tree / "a" / "bind")], capture_output=True)
    assert not tree.exists()
    assert (source / "keep").read_text() == "precious"
    with open("/proc/self/mountinfo") as f:
        assert str(tree) not in f.read()
