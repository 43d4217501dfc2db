"""``pallet import``: formats, --change, hostile input, kill -9 and concurrent imports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import needs_busybox
from tests.support.cli import Pallet
from tests.support.images import make_busybox_tar, tar_with


def _store_files(root: Path) -> tuple[list[str], list[str]]:
    s = root / "store"
    blobs = sorted(os.listdir(s / "blobs" / "sha256")) if (s / "blobs" / "sha256").exists() else []
    ingest = sorted(os.listdir(s / "ingest")) if (s / "ingest").exists() else []
    return blobs, ingest


def _one_line_125(r: object) -> str:
    assert r.rc == 125, r  # type: ignore[attr-defined]
    err = r.err.strip()  # type: ignore[attr-defined]
    assert err and "\n" not in err and "Traceback" not in err, r
    return err


@needs_busybox
@pytest.mark.parametrize("compress", ["", "gz", "zst"])
def test_import_formats(compress: str, pallet: Pallet, tmp_path: Path) -> None:
    tar = make_busybox_tar(tmp_path / f"bb.tar{'.' + compress if compress else ''}", compress)
    out = pallet.ok("import", str(tar), "bb:" + (compress or "plain"))
    iid = out.strip()
    assert iid.startswith("sha256:") and len(iid) == 71
    d = json.loads(pallet.ok("image", "inspect", "bb:" + (compress or "plain")))[0]
    assert d["Id"] == iid and d["RepoTags"] == ["bb:" + (compress or "plain")]
    assert d["RootFS"]["Type"] == "layers" and len(d["RootFS"]["Layers"]) == 1
    assert d["Os"] == "linux" and d["Architecture"]
    assert d["Size"] > 1_000_000


@needs_busybox
def test_import_stdin_with_changes_and_message(pallet: Pallet, busybox_tar: Path) -> None:
    r = pallet("import", "-", "app:1", "-m", "my import",
               "--change", 'CMD ["sh", "-c", "echo hi"]', "-c", "ENV A=1", "-c", "EXPOSE 8080",
               "-c", "WORKDIR /srv", "-c", "USER app", "-c", "LABEL x=y", "-c", "STOPSIGNAL SIGINT",
               "-c", "VOLUME /data", "-c", "ENTRYPOINT [\"/bin/env\"]",
               input=busybox_tar.read_bytes())
    assert r.rc == 0, r
    c = json.loads(pallet.ok("image", "inspect", "app:1"))[0]
    assert c["Comment"] == "my import"
    cfg = c["Config"]
    assert cfg["Cmd"] == ["sh", "-c", "echo hi"] and cfg["Entrypoint"] == ["/bin/env"]
    assert cfg["Env"] == ["A=1"] and cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["WorkingDir"] == "/srv" and cfg["User"] == "app" and cfg["Labels"] == {"x": "y"}
    assert cfg["StopSignal"] == "SIGINT" and cfg["Volumes"] == {"/data": {}}
    hist = pallet.ok("history", "app:1", "--format", "{{.Comment}}")
    assert hist.strip() == "my import"


@needs_busybox
def test_import_untagged_is_dangling(pallet: Pallet, busybox_tar: Path) -> None:
    iid = pallet.ok("import", str(busybox_tar)).strip()
    out = pallet.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert out.strip() == f"<none>:<none> {iid[7:19]}"


def _tarinfo(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.mode = 0o644
    if kind == tarfile.CHRTYPE:
        ti.devmajor, ti.devminor = 1, 3
    return ti


HOSTILE = {
    "traversal": [(_tarinfo("../../../../tmp/pst-evil"), b"x")],
    "absolute": [(_tarinfo("/tmp/pst-evil"), b"x")],
    "symlink escape": [(_tarinfo("l", tarfile.SYMTYPE, "/tmp"), None), (_tarinfo("l/pst-evil"), b"x")],
    "hardlink escape": [(_tarinfo("h", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "device node": [(_tarinfo("null", tarfile.CHRTYPE), None)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_import_refused(case: str, pallet: Pallet, pallet_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(tar_with([(_tarinfo("ok"), b"fine"), *HOSTILE[case]]))  # type: ignore[list-item]
    err = _one_line_125(pallet("import", str(bad), "evil"))
    assert "refusing archive entry" in err
    assert not Path("/tmp/pst-evil").exists()
    assert pallet.ok("images", "-q") == ""
    blobs, ingest = _store_files(pallet_root)
    assert blobs == [] and ingest == []


def test_corrupt_and_truncated_imports(pallet: Pallet, pallet_root: Path, tmp_path: Path) -> None:
    import gzip

    good = tar_with([(_tarinfo("f"), os.urandom(200_000)), (_tarinfo("g"), b"x")])
    cases = {
        "truncated.tar": good[:100_000],
        "corrupt.tar.gz": gzip.compress(good)[:50_000] + b"\x00" * 100 + gzip.compress(good)[50_100:],
        "truncated.tar.gz": gzip.compress(good)[: len(gzip.compress(good)) // 2],
        "garbage": b"this is not a tarball\n" * 100,
        "empty": b"",
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        err = _one_line_125(pallet("import", str(p), "broken"))
        assert "invalid tar archive" in err or "corrupt gzip" in err, (name, err)
    assert pallet.ok("images", "-q") == ""
    assert _store_files(pallet_root) == ([], [])


def test_user_mistakes_one_line_125(pallet: Pallet, tmp_path: Path) -> None:
    cases = [
        (("import", str(tmp_path / "missing.tar")), "no such file or directory"),
        (("import", str(tmp_path), "x"), "directory"),
        (("import", "-", "Bad:Ref", "--change", "CMD x"), "invalid reference format"),
        (("import", "-", "x", "--change", "RUN x"), "run is not a valid change command"),
        (("image", "inspect", "nosuch"), "No such image: nosuch"),
        (("rmi", "nosuch"), "No such image: nosuch"),
        (("tag", "nosuch", "x"), "No such image: nosuch"),
        (("history", "nosuch"), "No such image: nosuch"),
        (("images", "--filter", "bogus=1"), "invalid filter"),
        (("images", "--format", "{{.Nope}}"), "can't evaluate field"),
    ]
    for args, want in cases:
        r = pallet(*args, input=b"")
        if args[0] == "images" and "--format" in args and r.rc == 0:
            continue  # no rows: nothing to evaluate, like Docker
        err = _one_line_125(r)
        assert want in err, (args, err)


@needs_busybox
def test_kill_9_mid_import_leaves_consistent_store(pallet: Pallet, pallet_root: Path, busybox_tar: Path) -> None:
    pallet.ok("import", str(busybox_tar), "before:1")
    # a big tarball fed slowly through a pipe, killed with SIGKILL half-way
    payload = os.urandom(1 << 20)
    proc = subprocess.Popen(pallet.argv("import", "-", "killed:1"), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    header = tarfile.TarInfo("big")
    header.size = 64 << 20
    proc.stdin.write(header.tobuf(tarfile.PAX_FORMAT))
    ingest = pallet_root / "store" / "ingest"
    deadline = time.monotonic() + 30
    while True:
        proc.stdin.write(payload)
        proc.stdin.flush()
        files = os.listdir(ingest) if ingest.exists() else []
        if files and (ingest / files[0]).stat().st_size > (4 << 20):
            break
        assert time.monotonic() < deadline, "import never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    assert os.listdir(ingest)  # the killed writer's file is there...
    out = pallet.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert out.split() == ["before:1"]
    json.loads(pallet.ok("image", "inspect", "before:1"))
    # ...and the next write removes it
    pallet.ok("import", str(busybox_tar), "after:1")
    assert os.listdir(ingest) == []
    assert sorted(pallet.ok("images", "--format", "{{.Repository}}").split()) == ["after", "before"]


@needs_busybox
def test_concurrent_imports_all_listed(pallet: Pallet, tmp_path: Path) -> None:
    tars = []
    for i in range(4):
        t = make_busybox_tar(tmp_path / f"bb{i}.tar")
        with tarfile.open(t, "a") as tf:  # make each image distinct
            ti = tarfile.TarInfo(f"marker{i}")
            tf.addfile(ti)
        tars.append(t)
    procs = [subprocess.Popen(pallet.argv("import", str(t), f"img{i}:v"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i, t in enumerate(tars)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    out = pallet.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert sorted(out.split()) == [f"img{i}:v" for i in range(4)]


@needs_busybox
def test_import_from_url(pallet: Pallet, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    (tmp_path / "srv").mkdir()
    make_busybox_tar(tmp_path / "srv" / "bb.tar.gz", "gz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        port = httpd.server_address[1]
        iid = pallet.ok("import", f"http://127.0.0.1:{port}/bb.tar.gz", "fromurl:1").strip()
        assert iid.startswith("sha256:")
        hist = pallet.ok("history", "--format", "{{.Comment}}", "fromurl:1")
        assert hist.strip() == f"Imported from http://127.0.0.1:{port}/bb.tar.gz"
        err = _one_line_125(pallet("import", f"http://127.0.0.1:{port}/missing.tar", "x:1"))
        assert "404" in err
    finally:
        httpd.shutdown()
        httpd.server_close()
