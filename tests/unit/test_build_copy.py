"""COPY/ADD planning (Docker's destination rules), hashing and the layer tar, without root."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from pallet.build.context import Context
from pallet.build.copy import HashCache, plan, plan_digest, write_layer
from pallet.build.dockerignore import Matcher
from pallet.build.parser import BuildError


def _ctx(root: Path, ignore: list[str] | None = None) -> Context:
    return Context(root, "FROM x\n", "Dockerfile", Matcher(ignore or []))


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "a.txt").write_text("a")
    (tmp_path / "dir" / "sub" / "b.txt").write_text("b")
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "y.txt").write_text("y")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "skip.log").write_text("no")
    os.utime(tmp_path / "x.txt", (1_000_000, 1_000_000))
    return _ctx(tmp_path, ["*.log"])


def _no_image(_rel: str) -> os.stat_result | None:
    return None


def _plan(ctx: Context, srcs: list[str], dest: str, workdir: str = "/", **kw: object):  # type: ignore[no-untyped-def]
    return plan(ctx, srcs, dest, workdir=workdir, chown=kw.get("chown"), chmod=kw.get("chmod"),  # type: ignore[arg-type]
                is_add=bool(kw.get("is_add")), image_stat=kw.get("image_stat", _no_image))  # type: ignore[arg-type]


def test_file_to_file_and_into_dir(ctx: Context) -> None:
    assert set(_plan(ctx, ["x.txt"], "/dst").items) == {"dst"}
    assert set(_plan(ctx, ["x.txt"], "/dst/").items) == {"dst", "dst/x.txt"}
    # a relative destination is relative to WORKDIR
    assert set(_plan(ctx, ["x.txt"], "rel/", workdir="/app").items) == {"app", "app/rel", "app/rel/x.txt"}


def test_directory_contents_not_the_directory(ctx: Context) -> None:
    p = _plan(ctx, ["dir"], "/d")
    assert set(p.items) == {"d", "d/a.txt", "d/sub", "d/sub/b.txt"}
    assert p.hash_kind() == "dir"


def test_wildcards_need_a_directory_destination(ctx: Context) -> None:
    p = _plan(ctx, ["*.txt"], "/t/")
    assert set(p.items) == {"t", "t/x.txt", "t/y.txt"}
    assert p.hash_kind() == "multi"
    with pytest.raises(BuildError, match="must be a directory and end with a /"):
        _plan(ctx, ["*.txt"], "/t")
    with pytest.raises(BuildError, match="no source files were specified"):
        _plan(ctx, ["*.none"], "/t/")


def test_missing_or_ignored_source(ctx: Context) -> None:
    with pytest.raises(BuildError, match="file not found in build context or excluded by .dockerignore"):
        _plan(ctx, ["nope"], "/x")
    with pytest.raises(BuildError, match="excluded by .dockerignore"):
        _plan(ctx, ["skip.log"], "/x")
    assert "skip.log" not in {Path(d).name for d in _plan(ctx, ["."], "/all/").items}


def test_modes_owners_and_mtimes(ctx: Context) -> None:
    p = _plan(ctx, ["run.sh", "x.txt"], "/bin2/", chown=(1000, 1001))
    assert p.items["bin2/run.sh"].mode == 0o755
    assert (p.items["bin2/x.txt"].uid, p.items["bin2/x.txt"].gid) == (1000, 1001)
    assert p.items["bin2/x.txt"].mtime == 1_000_000
    p = _plan(ctx, ["x.txt"], "/m", chmod=0o600)
    assert p.items["m"].mode == 0o600
    buf = io.BytesIO()
    write_layer(_plan(ctx, ["dir"], "/d", chown=(5, 6)), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = {m.name: m for m in tf}
    assert list(members) == ["d", "d/a.txt", "d/sub", "d/sub/b.txt"]
    assert members["d/a.txt"].uid == 5 and members["d/a.txt"].gid == 6 and members["d/a.txt"].uname == ""


def test_add_extracts_local_archives(ctx: Context, tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tf:
        ti = tarfile.TarInfo("inner/f")
        ti.size = 2
        tf.addfile(ti, io.BytesIO(b"hi"))
    p = _plan(ctx, ["a.tar.gz"], "/opt/", is_add=True)
    assert p.archives and p.archives[0][1] == "opt"
    buf = io.BytesIO()
    write_layer(p, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        assert [m.name for m in tf] == ["opt", "opt/inner/f"]
    # COPY does not extract
    assert not _plan(ctx, ["a.tar.gz"], "/opt/").archives


def test_digest_follows_content_not_mtime(ctx: Context, tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "h.json")
    d1 = plan_digest(_plan(ctx, ["dir"], "/d"), cache)
    os.utime(tmp_path / "dir" / "a.txt", (5, 5))
    assert plan_digest(_plan(ctx, ["dir"], "/d"), cache) == d1
    (tmp_path / "dir" / "a.txt").write_text("changed")
    assert plan_digest(_plan(ctx, ["dir"], "/d"), cache) != d1
    cache.save()
    assert HashCache(tmp_path / "h.json").data


def test_hash_cache_keeps_only_its_scope(tmp_path: Path) -> None:
    ctx_dir, other = tmp_path / "ctx", tmp_path / "ctx-other"
    for d in (ctx_dir, other):
        d.mkdir()
        (d / "f").write_text("x")
    cache = HashCache(tmp_path / "h" / "one.json", scope=ctx_dir)
    inside = cache.digest(ctx_dir / "f", os.stat(ctx_dir / "f"))
    outside = cache.digest(other / "f", os.stat(other / "f"))  # e.g. a mounted stage: hashed, not kept
    assert inside == outside
    cache.save()
    assert list(HashCache(tmp_path / "h" / "one.json").data) == [str(ctx_dir / "f")]
    # a kept digest is used while the file's signature holds, not recomputed
    kept = HashCache(tmp_path / "h" / "one.json", scope=ctx_dir)
    kept.data[str(ctx_dir / "f")][4] = "0" * 64
    assert kept.digest(ctx_dir / "f", os.stat(ctx_dir / "f")) == "0" * 64
