"""The bootstrap command line and default configs (pure)."""

from __future__ import annotations

from pallet.engine.bootstrap import BootstrapOptions, image_config, mmdebstrap_argv, suite_for


def test_suite_from_tag() -> None:
    assert suite_for("debian:bookworm-slim") == "bookworm"
    assert suite_for("debian:12") == "bookworm"
    assert suite_for("debian:11-slim") == "bullseye"
    assert suite_for("python:3.11-slim-bookworm") == "bookworm"
    assert suite_for("myimage") == "bookworm"
    assert suite_for("debian:bookworm", "trixie") == "trixie"


def test_argv_slim_minbase() -> None:
    argv = mmdebstrap_argv(BootstrapOptions("debian:bookworm-slim"), "bookworm")
    assert argv[0] == "mmdebstrap" and "--variant=minbase" in argv
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in argv
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in argv
    assert any(a.startswith("--hook-dir=") and a.endswith("merged-usr") for a in argv)
    assert argv[-2:] == ["bookworm", "-"]
    assert not any(a.startswith("--include") for a in argv)


def test_argv_include_and_mirror() -> None:
    o = BootstrapOptions("python:3-slim", include=("python3", "python3-pip"), mirror="http://m/debian")
    argv = mmdebstrap_argv(o, "bookworm")
    assert "--include=python3,python3-pip" in argv and argv[-1] == "http://m/debian"


def test_default_configs() -> None:
    assert image_config(BootstrapOptions("debian:x"), "bookworm").cmd == ("bash",)
    py = image_config(BootstrapOptions("python:3", include=("python3",)), "bookworm")
    assert py.cmd == ("python3",) and "LANG=C.UTF-8" in py.env
    assert py.env[0].startswith("PATH=")
