"""Differential tests: the same Dockerfiles built by Docker's classic builder and by pallet give
the same image configs, history records and files (differences documented in docs/build.md)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Pallet

BASE = "busybox:pbd"

CASES: dict[str, dict[str, Any]] = {
    "metadata": {
        "Dockerfile": """FROM busybox:pbd
ENV A=one B="two three"
ENV C four
LABEL x=y "a b"=c
MAINTAINER someone <s@example.com>
EXPOSE 8000 53/udp 7000-7002
USER nobody
VOLUME /data ["/other"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD wget -q localhost || exit 1
CMD ["python", "app.py"]
""",
    },
    "seed": {
        "Dockerfile": """FROM busybox:pbd
WORKDIR /app
COPY . /app
RUN echo installed > /app/installed.txt
EXPOSE 8000
CMD ["python", "app.py"]
""",
        "app.py": "print('hi')\n",
        "requirements.txt": "flask\n",
        ".dockerignore": "*.log\nsecret/\n",
        "debug.log": "x\n",
        "secret/key": "k\n",
    },
    "multistage_args": {
        "Dockerfile": """ARG BASE=busybox:pbd
ARG VERSION=1.0
FROM $BASE AS build
ARG VERSION
ARG OTHER=o
RUN mkdir /out && echo "v=$VERSION o=$OTHER" > /out/version
FROM ${BASE}
ARG VERSION
ENV V=$VERSION
COPY --from=build /out/version /version
LABEL version=$VERSION
""",
        "build_args": ["VERSION=2.5"],
    },
    "entrypoint_shell": {
        "Dockerfile": """FROM busybox:pbd
CMD ["a"]
ENTRYPOINT echo hello
SHELL ["/bin/sh", "-xc"]
RUN echo shell-changed > /s
CMD echo cmd
""",
    },
    "substitution": {
        "Dockerfile": """FROM busybox:pbd
ENV NAME=world EMPTY=
ENV G1=${NAME:-x} G2=${UNSET:-dflt} G3=${NAME:+alt} G4=${UNSET:+alt} G5=${EMPTY:-e}
ENV Q1='$NAME' Q2="$NAME" Q3=\\$NAME Q4=a\\ b
WORKDIR /w/$NAME
LABEL l1="${NAME}-label" l2='${NAME}'
RUN echo "$NAME" > n.txt
""",
    },
    "copy_semantics": {
        "Dockerfile": """FROM busybox:pbd
WORKDIR /dst
COPY dir /dst/d1/
COPY dir/a.txt file.bin ./many/
COPY *.txt /glob/
COPY file.bin /renamed.bin
COPY --chown=1000:1000 dir /owned
COPY --chown=nobody:nogroup dir/a.txt /byname.txt
COPY --chown=daemon dir/a.txt /samename.txt
COPY link /link
""",
        "dir/a.txt": "a\n",
        "dir/sub/b.txt": "b\n",
        "top.txt": "t\n",
        "second.txt": "s\n",
        "file.bin": "bin\n",
        "@link": "dir/a.txt",
        "@exec": "file.bin",
    },
    "add_tar": {
        "Dockerfile": """FROM busybox:pbd
ADD archive.tar /x/
ADD archive.tar.gz /y
ADD plain.txt /z/
""",
        "archive": True,
        "plain.txt": "plain\n",
    },
    "run_changes": {
        "Dockerfile": """FROM busybox:pbd
RUN mkdir -p /d/keep /d/gone && echo 1 > /d/keep/f && echo 2 > /d/gone/f
RUN rm -rf /d/gone /bin/true && ln -s /d/keep/f /d/link && chmod 700 /d/keep
RUN rm -rf /d/keep && mkdir /d/keep && echo new > /d/keep/g && chown 1:2 /d/keep/g
""",
    },
    "user_workdir": {
        "Dockerfile": """FROM busybox:pbd
USER nobody
WORKDIR /tmp/work
RUN id > /tmp/id.txt
USER 0
RUN chmod 4755 /tmp/id.txt
""",
    },
    "healthcheck_none_signal": {
        "Dockerfile": """FROM busybox:pbd
HEALTHCHECK CMD ["true"]
HEALTHCHECK NONE
STOPSIGNAL 9
EXPOSE 80/tcp 80/udp
VOLUME ["/v1", "/v2"]
ENTRYPOINT ["/bin/sh", "-c"]
""",
    },
    "escape_directive": {
        "Dockerfile": """# escape=`
FROM busybox:pbd
# a comment
RUN echo one `
    two > /e.txt
ENV P=C:\\path
LABEL multi="a `
b"
""",
    },
    "label_flag_target": {
        "Dockerfile": """FROM busybox:pbd AS first
RUN echo first > /f
FROM first AS second
RUN echo second > /s
FROM busybox:pbd
RUN echo third > /t
""",
        "target": "second",
        "labels": ["team=pallet"],
    },
    "dockerignore_rules": {
        "Dockerfile": """FROM busybox:pbd
COPY . /ctx/
""",
        ".dockerignore": "# comment\n**/*.tmp\n/docs\n!docs/keep.md\n*.md\n!README.md\ntemp?\nsub/**/deep\n",
        "README.md": "r\n",
        "CHANGES.md": "c\n",
        "a.tmp": "t\n",
        "x/y/b.tmp": "t\n",
        "docs/keep.md": "k\n",
        "docs/other.txt": "o\n",
        "temp1/f": "f\n",
        "temp12/f": "f\n",
        "sub/deep/f": "f\n",
        "sub/a/b/deep/f": "f\n",
        "sub/keep/f": "f\n",
    },
    "arg_env_history": {
        "Dockerfile": """FROM busybox:pbd
ARG A=1
ARG B
ARG C=3
ENV C=env
RUN echo "$A $B $C" > /abc
ARG D=late
RUN echo $D > /d
""",
        "build_args": ["B=2", "HTTP_PROXY=http://proxy.invalid:3128"],
    },
    "symlinked_dirs": {
        "Dockerfile": """FROM busybox:pbd
RUN mkdir -p /srv/app /srv/lib && ln -s /srv/app /app && ln -s ../srv/lib /usr/lib2 && ln -s /srv/new /new
WORKDIR /app
COPY f.txt /app/
COPY f.txt g.txt
COPY f.txt /usr/lib2/deep/h.txt
WORKDIR /new
COPY f.txt ./i.txt
""",
        "f.txt": "f\n",
    },
    "label_flag_last": {
        "Dockerfile": """FROM busybox:pbd
CMD ["sh"]
""",
        "labels": ["team=pallet", "z=last"],
    },
}


def _write_context(d: Path, case: dict[str, Any]) -> None:
    for name, content in case.items():
        if name in ("build_args", "target", "labels", "archive"):
            continue
        if name.startswith("@"):
            if name == "@link":
                (d / "link").symlink_to(content)
            elif name == "@exec":
                (d / content).chmod(0o755)
            continue
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    if case.get("archive"):
        src = d / "_arch"
        (src / "inner").mkdir(parents=True)
        (src / "inner" / "f.txt").write_text("in tar\n")
        (src / "top").write_text("top\n")
        for name in ("archive.tar", "archive.tar.gz"):
            with tarfile.open(d / name, "w:gz" if name.endswith(".gz") else "w") as tf:
                for f in ("inner", "inner/f.txt", "top"):
                    ti = tf.gettarinfo(str(src / f), arcname=f)
                    ti.uid, ti.gid = 5, 6
                    if ti.isreg():
                        with open(src / f, "rb") as fh:
                            tf.addfile(ti, fh)
                    else:
                        tf.addfile(ti)
        import shutil

        shutil.rmtree(src)


def _flags(case: dict[str, Any], tag: str) -> list[str]:
    out = ["-t", tag]
    for a in case.get("build_args", []):
        out += ["--build-arg", a]
    for lab in case.get("labels", []):
        out += ["--label", lab]
    if case.get("target"):
        out += ["--target", case["target"]]
    return out


def read_archive(data: bytes) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]]]:
    """(image config, flattened files) of a docker-archive tarball."""
    outer = tarfile.open(fileobj=io.BytesIO(data))  # noqa: SIM115 - read whole below
    manifest = json.load(outer.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
    config = json.load(outer.extractfile(manifest["Config"]))  # type: ignore[arg-type]
    files: dict[str, tuple[Any, ...]] = {}
    for layer in manifest["Layers"]:
        raw = outer.extractfile(layer).read()  # type: ignore[union-attr]
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            for m in tf:
                name = m.name.lstrip("./").rstrip("/")
                if not name:
                    continue
                base = name.rsplit("/", 1)[-1]
                parent = name.rsplit("/", 1)[0] if "/" in name else ""
                if base == ".wh..wh..opq":
                    for k in [k for k in files if k.startswith(parent + "/")]:
                        del files[k]
                    continue
                if base.startswith(".wh."):
                    gone = (parent + "/" if parent else "") + base[4:]
                    for k in [k for k in files if k == gone or k.startswith(gone + "/")]:
                        del files[k]
                    continue
                if m.isreg():
                    body = tf.extractfile(m).read()  # type: ignore[union-attr]
                    what: Any = hashlib.sha256(body).hexdigest()[:16]
                elif m.issym() or m.islnk():
                    what = m.linkname.lstrip("/") if m.islnk() else m.linkname
                else:
                    what = ""
                files[name] = (m.type.decode() if m.type != tarfile.AREGTYPE else "0", oct(m.mode & 0o7777), m.uid,
                               m.gid, what)
    return config, files


CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
               "StopSignal", "Healthcheck", "OnBuild", "Shell")
HASHED = re.compile(r"(file|dir|multi):[0-9a-f]{64}")


def _config(cfg: dict[str, Any]) -> dict[str, Any]:
    c = cfg.get("config") or {}
    return {k: c.get(k) or None for k in CONFIG_KEYS}


def _history(cfg: dict[str, Any], skip: int) -> list[tuple[str, bool]]:
    return [(HASHED.sub(r"\1:<hash>", h.get("created_by", "")), bool(h.get("empty_layer")))
            for h in cfg.get("history", [])[skip:]]


@pytest.fixture(scope="module")
def both(dockerd: Any, busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("pbd-pallet") / "root"
    root.mkdir()
    p = Pallet(root)
    p.ok("import", str(busybox_tar), BASE)
    dockerd.docker("import", str(busybox_tar), BASE)
    yield p, dockerd
    from tests.conftest import _unmount_under

    _unmount_under(root)


@pytest.mark.parametrize("name", sorted(CASES))
def test_build_same_as_docker(both: Any, tmp_path: Path, name: str) -> None:
    p, dockerd = both
    case = CASES[name]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _write_context(ctx, case)
    tag = f"pbd-{name.replace('_', '-')}:t"
    d = dockerd.docker("build", *_flags(case, tag), str(ctx), check=False)
    assert d.returncode == 0, d.stderr.decode()[-2000:]
    r = p("build", *_flags(case, tag), str(ctx))
    assert r.rc == 0, r
    dcfg, dfiles = read_archive(dockerd.docker("save", tag).stdout)
    out = tmp_path / "p.tar"
    p.ok("save", "-o", str(out), tag)
    pcfg, pfiles = read_archive(out.read_bytes())
    assert _config(pcfg) == _config(dcfg)
    base_len = 1
    assert _history(pcfg, base_len) == _history(dcfg, base_len)
    assert len(pcfg["rootfs"]["diff_ids"]) == len(dcfg["rootfs"]["diff_ids"])
    # the files of the final image: names, types, modes, owners, contents, link targets
    assert pfiles == dfiles


def test_onbuild_triggers_same_as_docker(both: Any, tmp_path: Path) -> None:
    p, dockerd = both
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "Dockerfile").write_text(
        "FROM busybox:pbd\nONBUILD COPY hello.txt /hello.txt\nONBUILD RUN echo triggered > /t\n")
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "hello.txt").write_text("hello\n")
    (tmp_path / "child" / "Dockerfile").write_text("FROM pbd-onbuild-base:t\nCMD [\"cat\", \"/t\"]\n")
    for args in (("-t", "pbd-onbuild-base:t", str(tmp_path / "base")),
                 ("-t", "pbd-onbuild-child:t", str(tmp_path / "child"))):
        assert dockerd.docker("build", *args, check=False).returncode == 0
        p.ok("build", *args)
    for tag in ("pbd-onbuild-base:t", "pbd-onbuild-child:t"):
        dcfg, dfiles = read_archive(dockerd.docker("save", tag).stdout)
        out = tmp_path / "p.tar"
        p.ok("save", "-o", str(out), tag)
        pcfg, pfiles = read_archive(out.read_bytes())
        assert _config(pcfg) == _config(dcfg)
        assert _history(pcfg, 1) == _history(dcfg, 1)
        assert pfiles == dfiles


@pytest.mark.parametrize("dockerfile,code", [
    ("FROM busybox:pbd\nRUN echo out; exit 3\n", 3),
    ("FROM busybox:pbd\nFOO bar\n", 1),
    ("FROM busybox:pbd\nCOPY nope /x\n", 1),
])
def test_build_errors_exit_like_docker(both: Any, tmp_path: Path, dockerfile: str, code: int) -> None:
    p, dockerd = both
    (tmp_path / "Dockerfile").write_text(dockerfile)
    d = dockerd.docker("build", "-t", "pbd-err:t", str(tmp_path), check=False)
    r = p("build", "-t", "pbd-err:t", str(tmp_path))
    assert d.returncode == code
    assert r.rc == code, r
    assert "Dockerfile:2" in r.err
