""".dockerignore matching with Docker's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.build.dockerignore import Matcher, load_ignore, read_patterns


@pytest.mark.parametrize("patterns,path,excluded", [
    (["*.go"], "a.go", True),
    (["*.go"], "dir/a.go", False),  # * stays within one path element
    (["**/*.go"], "dir/sub/a.go", True),
    (["**/*.go"], "a.go", True),
    (["dir"], "dir/sub/file", True),  # a parent that matches excludes what is below
    (["/dir"], "dir/file", True),  # a leading slash does not matter
    (["./dir/"], "dir/file", True),
    (["dir/*"], "dir/file", True),
    (["dir/*"], "dir", False),
    (["**"], "anything/at/all", True),
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[a-c]x"], "bx", True),
    (["[!a-c]x"], "bx", False),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["!README.md", "*.md"], "README.md", True),  # order matters: the last match wins
    (["docs", "!docs/keep.txt"], "docs/keep.txt", False),
    (["docs", "!docs/keep.txt"], "docs/other.txt", True),
    (["**/node_modules"], "a/b/node_modules/x.js", True),
    (["temp?"], "temp1/file", True),
    (["dir/**/x"], "dir/x", True),
    (["dir/**/x"], "dir/a/b/x", True),
    (["*"], "Dockerfile", True),
    (["*", "!Dockerfile"], "Dockerfile", False),
])
def test_patterns(patterns: list[str], path: str, excluded: bool) -> None:
    assert Matcher(patterns).excluded(path) is excluded


def test_comments_and_blank_lines() -> None:
    assert read_patterns("# comment\n\n  *.log  \n!keep.log\n") == ["*.log", "!keep.log"]


def test_walk_into_excluded_dir_only_for_exceptions() -> None:
    m = Matcher(["docs", "!docs/keep.txt"])
    assert m.may_include_below("docs")
    assert not Matcher(["docs"]).may_include_below("docs")


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("generic\n")
    (tmp_path / "build").mkdir()
    df = tmp_path / "build" / "app.Dockerfile"
    df.write_text("FROM x\n")
    (tmp_path / "build" / "app.Dockerfile.dockerignore").write_text("specific\n")
    assert load_ignore(tmp_path, df) == ["specific"]
    assert load_ignore(tmp_path, tmp_path / "Dockerfile") == ["generic"]
