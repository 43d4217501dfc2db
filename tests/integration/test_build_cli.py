"""``pallet build`` end to end: cache, contexts, RUN mounts, errors that leave nothing behind."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from tests.support.cli import Pallet


def _write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return d


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(prefix)]


def _inspect(pallet: Pallet, ref: str, fmt: str) -> str:
    return pallet.ok("image", "inspect", "--format", fmt, ref).strip()


def test_cached_rebuild_and_no_cache(pallet: Pallet, busybox_image: str, tmp_path: Path) -> None:
    ctx = _write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {busybox_image}\nWORKDIR /app\nCOPY . /app\nRUN echo built > /app/b\nCMD [\"cat\", \"/app/b\"]\n",
        "app.py": "print(1)\n",
    })
    first = pallet.ok("build", "-t", "pbd-cache:1", str(ctx))
    assert "Step 5/5 : CMD" in first and "Successfully tagged pbd-cache:1" in first
    again = pallet.ok("build", "-t", "pbd-cache:1", str(ctx))
    assert again.count(" ---> Using cache") == 4
    assert "Running in" not in again
    img = _inspect(pallet, "pbd-cache:1", "{{.Id}}")
    assert f"Successfully built {img.split(':')[1][:12]}" in again
    # a changed source invalidates its step and the ones after it
    (ctx / "app.py").write_text("print(2)\n")
    changed = pallet.ok("build", "-t", "pbd-cache:1", str(ctx))
    assert changed.count(" ---> Using cache") == 1
    nocache = pallet.ok("build", "--no-cache", "-q", str(ctx))
    assert "Using cache" not in nocache and nocache.strip().startswith("sha256:")
    assert pallet.ok("run", "--rm", "pbd-cache:1").strip() == "built"


def test_a_cached_rebuild_loads_only_what_it_needs(pallet: Pallet, busybox_image: str, tmp_path: Path) -> None:
    """Every step a cache hit: no click, no Dockerfile parser, no RUN, layer or archive machinery,
    no dataclasses or typing (records and annotations only for the type checker)."""
    import subprocess

    ctx = _write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {busybox_image}\nWORKDIR /app\nCOPY . /app\nRUN echo built > /app/b\n"
                      "ENV A=1\nEXPOSE 8000\nCMD [\"cat\", \"/app/b\"]\n",
        "app.py": "print(1)\n",
    })
    pallet.ok("build", "-t", "pbd-lean:1", str(ctx))
    argv = pallet.argv("build", "-t", "pbd-lean:1", str(ctx))
    r = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count(" ---> Using cache") == 6 and "Successfully tagged pbd-lean:1" in r.stdout
    imported = {ln.rsplit("|", 1)[1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:")}
    assert {"pallet.build.builder", "pallet.build.copystep", "pallet.build.runstep"} <= imported
    heavy = {"click", "dockerfile", "tarfile", "tempfile", "secrets", "pallet.build.run", "pallet.store.layers",
             "pallet.engine.rootfs", "pallet.engine.runtimes", "dataclasses", "typing", "inspect"}
    assert imported & heavy == set()


def test_failing_run_leaves_nothing_behind(pallet: Pallet, pallet_root: Path, busybox_image: str,
                                          tmp_path: Path) -> None:
    ctx = _write(tmp_path / "ok", {"Dockerfile": f"FROM {busybox_image}\nCMD [\"true\"]\n"})
    pallet.ok("build", "-t", "pbd-fail:t", str(ctx))
    before = _inspect(pallet, "pbd-fail:t", "{{.Id}}")
    bad = _write(tmp_path / "bad", {"Dockerfile": f"FROM {busybox_image}\nENV X=1\n"
                                    "RUN echo first-line; echo last-line >&2; exit 7\n"})
    r = pallet("build", "-t", "pbd-fail:t", str(bad))
    assert r.rc == 7, r
    assert "Dockerfile:3: The command '/bin/sh -c echo first-line; echo last-line >&2; exit 7' " \
           "returned a non-zero code: 7" in r.err
    assert "last-line" in r.out
    q = pallet("build", "-q", str(bad))
    assert q.rc == 7 and "last-line" in q.err
    assert _inspect(pallet, "pbd-fail:t", "{{.Id}}") == before  # the tag did not move
    assert _mounts_under(pallet_root) == []
    assert list((pallet_root / "builder" / "tmp").iterdir()) == []
    state = pallet_root / "run" / "runtime"
    assert [p for p in state.glob("*/*") if not p.name.startswith(".")] == []  # no container left


@pytest.mark.parametrize("dockerfile,message", [
    ("FROM {img}\nCOPY --from=later /a /a\nFROM {img} AS later\n", "Dockerfile:2: circular dependency"),
    ("FROM {img}\nCOPY missing.txt /\n", "Dockerfile:2: COPY failed: file not found in build context"),
    ("FROM pbd-no-such-image:1\n", "Dockerfile:1: pull access denied for pbd-no-such-image:1"),
    ("FROM {img}\nBOGUS x\n", "Dockerfile:2: unknown instruction: BOGUS"),
    ("FROM {img}\nENV A=${{X\n", "Dockerfile:2: syntax error: missing"),
    ("FROM {img} AS a\nFROM a AS b\n", None),
])
def test_bad_input(pallet: Pallet, busybox_image: str, tmp_path: Path, dockerfile: str,
                   message: str | None) -> None:
    ctx = _write(tmp_path / "c", {"Dockerfile": dockerfile.format(img=busybox_image)})
    r = pallet("build", "--target", "nope" if message is None else "", str(ctx))
    assert r.rc == 1, r
    assert len(r.err.strip().splitlines()) == 1
    assert (message or "failed to reach build target nope") in r.err
    assert "Traceback" not in r.err


def test_contexts_stdin_tarball_and_outside_dockerfile(pallet: Pallet, busybox_image: str, tmp_path: Path) -> None:
    # a Dockerfile on stdin: no context
    out = pallet.ok("build", "-q", "-", input=f"FROM {busybox_image}\nLABEL from=stdin\n")
    assert _inspect(pallet, out.strip(), "{{.Config.Labels.from}}") == "stdin"
    # a tarball on stdin, and as a file, with -f naming a file inside it
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("build/Custom", f"FROM {busybox_image}\nCOPY f.txt /f.txt\n"), ("f.txt", "tar\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data.encode()))
    img = pallet.ok("build", "-q", "-f", "build/Custom", "-", input=buf.getvalue()).strip()
    assert pallet.ok("run", "--rm", img, "cat", "/f.txt") == "tar\n"
    (tmp_path / "ctx.tar").write_bytes(buf.getvalue())
    assert pallet.ok("build", "-q", "-f", "build/Custom", str(tmp_path / "ctx.tar")).strip() == img
    # -f outside the context, with its own .dockerignore next to it
    ctx = _write(tmp_path / "ctx", {"keep.txt": "k", "drop.txt": "d"})
    df = _write(tmp_path / "elsewhere", {"app.Dockerfile": f"FROM {busybox_image}\nCOPY . /c/\n",
                                          "app.Dockerfile.dockerignore": "drop.txt\n"}) / "app.Dockerfile"
    iid = tmp_path / "iid"
    pallet.ok("build", "-q", "-f", str(df), "--iidfile", str(iid), str(ctx))
    assert pallet.ok("run", "--rm", iid.read_text(), "ls", "/c").split() == ["keep.txt"]


def test_run_mounts_secret_cache_network_and_heredoc(pallet: Pallet, busybox_image: str, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    ctx = _write(tmp_path / "ctx", {"Dockerfile": f"""FROM {busybox_image}
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen
RUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /count
RUN --network=none ls /sys/class/net > /nets
RUN <<EOF
echo from-heredoc > /h
EOF
RUN --mount=type=bind,source=data,target=/mnt cp /mnt/d /copied
""", "data/d": "bound\n"})
    img = pallet.ok("build", "-q", "--secret", f"id=tok,src={secret}", str(ctx)).strip()
    out = pallet.ok("run", "--rm", img, "sh", "-c",
                    "cat /seen; echo; cat /count /nets /h /copied; ls /run/secrets /cache 2>&1 | wc -l")
    lines = out.split()
    assert lines[0] == "s3cret" and lines[1] == "1" and lines[2] == "lo"
    assert "from-heredoc" in lines and "bound" in lines
    # the cache mount persists across builds (no step cache)
    img2 = pallet.ok("build", "-q", "--no-cache", "--secret", f"id=tok,src={secret}", str(ctx)).strip()
    assert pallet.ok("run", "--rm", img2, "cat", "/count").strip() == "2"


def test_add_url_build_args_labels_and_prune(pallet: Pallet, busybox_image: str, tmp_path: Path) -> None:
    served = _write(tmp_path / "www", {"file.txt": "from http\n"})

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=str(served), **k)  # type: ignore[arg-type]

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/file.txt"
        ctx = _write(tmp_path / "ctx", {"Dockerfile": f"FROM {busybox_image}\nARG WHO=nobody\n"
                                        f"ADD {url} /dl/\nRUN echo $WHO > /who\n"})
        img = pallet.ok("build", "-q", "--build-arg", "WHO=me", "--label", "a=b", "--label", "c=d",
                        "-t", "pbd-url:1", "-t", "pbd-url:2", str(ctx), env={"no_proxy": "*", "NO_PROXY": "*"}).strip()
        assert pallet.ok("run", "--rm", img, "sh", "-c", "cat /dl/file.txt /who; stat -c %a /dl/file.txt") == \
            "from http\nme\n600\n"
        assert _inspect(pallet, "pbd-url:2", "{{json .Config.Labels}}") == '{"a":"b","c":"d"}'
        hist = pallet.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", "pbd-url:1")
        assert "|1 WHO=me /bin/sh -c echo $WHO > /who" in hist
        out = pallet.ok("builder", "prune", "-f")
        assert "Total reclaimed space:" in out
        rebuilt = pallet.ok("build", "--build-arg", "WHO=me", str(ctx), env={"no_proxy": "*", "NO_PROXY": "*"})
        assert "Using cache" not in rebuilt
    finally:
        srv.shutdown()


def test_cache_from_an_image(pallet: Pallet, busybox_image: str, tmp_path: Path) -> None:
    ctx = _write(tmp_path / "ctx", {
        "Dockerfile": f"FROM {busybox_image}\nENV A=1\nCOPY f /f\nRUN echo x > /x\nCMD [\"cat\", \"/x\"]\n",
        "f": "f\n",
    })
    first = pallet.ok("build", "-q", "-t", "pbd-cf:1", str(ctx)).strip()
    pallet.ok("builder", "prune", "-f")
    out = pallet.ok("build", "--cache-from", "pbd-cf:1", "-t", "pbd-cf:2", str(ctx))
    assert out.count(" ---> Using cache") == 4 and "Running in" not in out
    assert _inspect(pallet, "pbd-cf:2", "{{.Id}}") == first
    # a different step ends the reuse there
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nENV A=2\nCOPY f /f\n")
    pallet.ok("builder", "prune", "-f")
    assert "Using cache" not in pallet.ok("build", "--cache-from", "pbd-cf:1", str(ctx))
