"""Build contexts without root: directories, tarballs, stdin, -f and .dockerignore."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pallet.build.context import open_context
from pallet.build.parser import BuildError


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data.encode()))
    return buf.getvalue()


def test_directory_with_ignore(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / ".dockerignore").write_text("*.log\nbuild\n!build/keep\n")
    (tmp_path / "a.log").write_text("")
    (tmp_path / "app.py").write_text("")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "keep").write_text("")
    (tmp_path / "build" / "drop").write_text("")
    with open_context(str(tmp_path), None) as ctx:
        assert ctx.dockerfile_text == "FROM x\n"
        assert ctx.walk() == [".dockerignore", "Dockerfile", "app.py", "build/keep"]
        with pytest.raises(BuildError, match="excluded by .dockerignore"):
            ctx.resolve("build/drop")


def test_tarball_file_and_stdin(tmp_path: Path) -> None:
    data = _tar({"sub/Dockerfile.alt": "FROM y\n", "f.txt": "f"})
    (tmp_path / "ctx.tgz").write_bytes(data)
    with open_context(str(tmp_path / "ctx.tgz"), "sub/Dockerfile.alt") as ctx:
        assert ctx.dockerfile_text == "FROM y\n" and "f.txt" in ctx.walk()
        root = ctx.root
    assert root is not None and not root.exists()  # removed afterwards
    with open_context("-", "sub/Dockerfile.alt", stdin=io.BytesIO(data)) as ctx:
        assert ctx.resolve("f.txt") == ["f.txt"]


def test_dockerfile_on_stdin_has_no_context() -> None:
    with open_context("-", None, stdin=io.BytesIO(b"FROM z\nCOPY a b\n")) as ctx:
        assert ctx.root is None and ctx.dockerfile_text.startswith("FROM z")
        with pytest.raises(BuildError, match="no build context"):
            ctx.resolve("a")


def test_dockerfile_outside_and_missing(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "df").mkdir()
    (tmp_path / "df" / "my.Dockerfile").write_text("FROM w\n")
    with open_context(str(tmp_path / "ctx"), str(tmp_path / "df" / "my.Dockerfile")) as ctx:
        assert ctx.dockerfile_name == "my.Dockerfile"
    with pytest.raises(BuildError, match="Dockerfile"), open_context(str(tmp_path / "ctx"), None):
        pass
    with pytest.raises(BuildError, match="not found"), open_context(str(tmp_path / "nope"), None):
        pass
