"""``pallet image bootstrap``: a real Debian image from Debian's packages (slow, once per run)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.config import Config
from pallet.store import Store
from tests.support.cli import Pallet

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="needs mmdebstrap"),
]


@pytest.fixture(scope="session")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pallet, str]]:
    """One bootstrap per test run, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("bootstrap") / "root"
    root.mkdir()
    p = Pallet(root)
    r = p("image", "bootstrap", "debian:bookworm-slim", timeout=900)
    if r.rc != 0 and ("Temporary failure" in r.err or "Could not resolve" in r.err):
        pytest.skip(f"no Debian mirror reachable: {r.err.strip()}")
    assert r.rc == 0, r
    yield p, r.out.strip()
    from tests.conftest import _unmount_under

    _unmount_under(root)


def test_bootstrap_image_config_and_size(bootstrapped: tuple[Pallet, str]) -> None:
    p, iid = bootstrapped
    d = json.loads(p.ok("image", "inspect", "debian:bookworm-slim"))[0]
    assert d["Id"] == iid and d["RepoTags"] == ["debian:bookworm-slim"]
    assert d["Config"]["Cmd"] == ["bash"]
    assert any(e.startswith("PATH=/usr/local/sbin:") for e in d["Config"]["Env"])
    assert 40_000_000 < d["Size"] < 120_000_000, d["Size"]
    hist = p.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", "debian:bookworm-slim")
    assert "mmdebstrap --variant=minbase" in hist and "bookworm" in hist


def test_bootstrap_rootfs_is_slim_debian(bootstrapped: tuple[Pallet, str]) -> None:
    p, _ = bootstrapped
    store = Store(Config(root=p.root).root / "store")
    (fs,) = store.snapshots.ensure(store.images.get("debian:bookworm-slim"))
    assert (fs / "etc" / "debian_version").read_text().startswith("12")
    assert (fs / "usr" / "bin" / "bash").is_file() and os.readlink(fs / "bin") == "usr/bin"
    assert not list((fs / "usr" / "share" / "man").glob("*/*"))
    lists = set(os.listdir(fs / "var" / "lib" / "apt" / "lists"))
    assert lists <= {"lock", "partial", "auxfiles"}, lists  # no package lists
    status = (fs / "var" / "lib" / "dpkg" / "status").read_text()
    assert "Package: usrmerge\n" not in status and "Package: libperl5" not in status
    assert not (fs / "usr" / "share" / "doc" / "bash" / "README").exists()
    import stat

    modes = [os.lstat(fs / "dev" / n).st_mode for n in os.listdir(fs / "dev")]
    assert not [m for m in modes if stat.S_ISCHR(m) or stat.S_ISBLK(m)]  # the runtime's business


def test_bootstrap_user_mistakes(tmp_path: Path) -> None:
    p = Pallet(tmp_path)
    r = p("image", "bootstrap", "Bad:Tag")
    assert r.rc == 125 and "invalid reference format" in r.err
    r = p("image", "bootstrap", "--variant", "huge", "x:1")
    assert r.rc == 125 and r.err.strip() == "Error: invalid variant: huge"
    r = p("image", "bootstrap", "--suite", "nosuchsuite", "x:1", timeout=300)
    assert r.rc == 125 and r.err.count("\n") == 1, r
    assert r.err.startswith("Error: mmdebstrap failed: E: ")
    assert p.ok("images", "-q") == "" and os.listdir(tmp_path / "store" / "ingest") == []


def test_bootstrap_image_runs_from_an_overlay(bootstrapped: tuple[Pallet, str], tmp_path: Path) -> None:
    """The store alone (snapshots + overlay) gives a working Debian: chroot into it, run apt and dpkg."""
    import subprocess

    p, _ = bootstrapped
    store = Store(Config(root=p.root).root / "store")
    lowers = store.snapshots.ensure(store.images.get("debian:bookworm-slim"))
    merged = tmp_path / "merged"
    store.snapshots.mount(lowers, tmp_path / "upper", tmp_path / "work", merged)
    try:
        r = subprocess.run(
            ["chroot", str(merged), "/bin/bash", "-c",
             "cat /etc/debian_version && dpkg -s coreutils | grep -c '^Status: install ok' "
             "&& ls -l /usr/bin/passwd && touch /new-file"],
            capture_output=True, text=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, timeout=60,
        )
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("12") and lines[1] == "1"
        assert lines[2].startswith("-rwsr-xr-x")  # set-uid kept through unpack
    finally:
        store.snapshots.unmount(merged)
    assert (tmp_path / "upper" / "new-file").exists()  # writes land in the upper dir only
    assert not (lowers[0] / "new-file").exists()


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    import stat

    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                continue  # device nodes: skipped by design
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
            first = inodes.setdefault(st.st_ino, rel) if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 else ""
            mtime = int(st.st_mtime) if not stat.S_ISLNK(st.st_mode) else 0
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                        mtime, link, first)
    return out


def test_unpack_equals_gnu_tar(bootstrapped: tuple[Pallet, str], tmp_path: Path) -> None:
    """Every path, mode, owner, size, time, link target and hard link as GNU tar extracts them."""
    import subprocess

    p, _ = bootstrapped
    store = Store(Config(root=p.root).root / "store")
    img = store.images.get("debian:bookworm-slim")
    (fs,) = store.snapshots.ensure(img)
    ref = tmp_path / "tar-x"
    ref.mkdir()
    subprocess.run(["tar", "--numeric-owner", "-p", "-x", "-f", str(store.blobs.path(img.manifest.layers[0].digest)),
                    "-C", str(ref)], check=True)
    ours, theirs = _tree(fs), _tree(ref)
    assert set(ours) == set(theirs)
    diffs = [k for k in ours if ours[k] != theirs[k]]
    assert diffs == [], [(k, ours[k], theirs[k]) for k in diffs[:5]]
