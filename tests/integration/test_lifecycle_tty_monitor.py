"""Terminals (-t, -i, resize), following logs, and both monitors (C and Python) of detached containers."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import needs_busybox, needs_root
from tests.integration.lifecycle_support import (
    assert_clean,
    eventually,
    pallet_runtime_available,
    remove_everything,
)
from tests.support.cli import Pallet

pytestmark = [needs_root, needs_busybox]
IMG = "busybox:test"


@pytest.fixture(params=["pallet", "runc"])
def p(request: pytest.FixtureRequest, pallet_root: Path, busybox_tar: Path) -> Iterator[Pallet]:
    if request.param == "pallet" and not pallet_runtime_available():
        pytest.skip("pallet's own runtime is not available in this tree")
    cli = Pallet(pallet_root, runtime=request.param)
    cli.ok("import", str(busybox_tar), IMG, "--change", 'CMD ["sh"]')
    yield cli
    remove_everything(cli)
    assert_clean(cli)


def in_pty(p: Pallet, *args: str, on_ready: bytes = b"READY", then: bytes = b"") -> tuple[bytes, int]:
    """Run the CLI on a pseudo-terminal of 33x111; at ``on_ready`` resize to 44x122 and type ``then``."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        argv = p.argv(*args)
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    out, sent = b"", False
    start = time.monotonic()
    deadline = start + 30
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not on_ready and not sent and time.monotonic() - start > 1.5:
            os.write(fd, then)
            sent = True
        if not r:
            continue
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
        if on_ready and on_ready in out and not sent:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 44, 122, 0, 0))
            os.kill(pid, 28)  # SIGWINCH, as the terminal would send
            time.sleep(0.3)
            os.write(fd, then)
            sent = True
    got, st = os.waitpid(pid, os.WNOHANG)
    if got == 0:  # still running after the deadline: fail, but never hang
        os.kill(pid, 9)
        _, st = os.waitpid(pid, 0)
    os.close(fd)
    return out, os.waitstatus_to_exitcode(st)


def test_tty_size_resize_and_input(p: Pallet, request: pytest.FixtureRequest) -> None:
    out, rc = in_pty(p, "run", "--rm", "-it", IMG, "sh", "-c",
                     "stty size; tty; echo READY; read x; stty size; echo got:$x; exit 3", then=b"typed\n")
    lines = out.decode().replace("\r", "").splitlines()
    assert rc == 3, out
    assert lines[0] == "33 111" and lines[1].startswith("/dev/pts/")
    assert "44 122" in lines and "got:typed" in lines


def test_detached_tty_logs(p: Pallet, request: pytest.FixtureRequest) -> None:
    p.ok("run", "-d", "-t", "--name", "tt", IMG, "sh", "-c", "tty; echo done")
    assert p.ok("wait", "tt").strip() == "0"
    out = p.ok("logs", "tt").replace("\r", "")
    assert out.splitlines()[0].startswith("/dev/pts/") and "done" in out


def test_logs_follow_until_exit(p: Pallet) -> None:
    p.ok("run", "-d", "--name", "ff", IMG, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done")
    r = p("logs", "-f", "ff", timeout=30)
    assert r.out.split() == ["line1", "line2", "line3"]
    r = p("attach", "ff")
    assert r.rc == 125 and "stopped container" in r.err


@pytest.mark.parametrize("monitor", ["c", "python"])
def test_monitor_keeps_logs_and_status(p: Pallet, monitor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if monitor == "python":
        monkeypatch.setenv("PALLET_MONITOR", "python")
    elif not (Path(os.sys.executable).parent / "pallet-monitor").exists():  # type: ignore[attr-defined]
        pytest.skip("the C monitor is not built (no C compiler when setup ran)")
    cid = p.ok("run", "-d", "--init", "--name", "mm", IMG, "sh", "-c", "echo o; echo e >&2; exec sleep 30").strip()
    import json

    st = json.loads((p.root / "containers" / cid / "state.json").read_text())
    with open(f"/proc/{st['monitor_pid']}/cmdline", "rb") as f:
        cmd = f.read()
    assert (b"pallet-monitor" in cmd) == (monitor == "c"), cmd
    assert eventually(lambda: p("logs", "mm").out == "o\n")
    assert p("logs", "mm").err == "e\n"
    p.ok("kill", "-s", "TERM", "mm")
    assert p.ok("wait", "mm").strip() == "143"
    assert p.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "mm").strip() == "exited 143"
    # the monitor is gone and the rootfs released once the container stopped
    assert eventually(lambda: not os.path.exists(f"/proc/{st['monitor_pid']}"))
    with open("/proc/self/mountinfo") as f:
        assert str(p.root / "containers" / cid / "rootfs") not in f.read()
    # restart after a stop works with the same monitor
    p.ok("start", "mm")
    assert p.ok("inspect", "-f", "{{.State.Running}}", "mm").strip() == "true"
    p.ok("rm", "-f", "mm")


def test_rm_on_exit_of_detached(p: Pallet) -> None:
    p.ok("run", "-d", "--rm", "--name", "gone", IMG, "sh", "-c", "sleep 0.3")
    assert eventually(lambda: "gone" not in p.ok("ps", "-a", "--format", "{{.Names}}"), timeout=15)


def test_concurrent_starts_consistent(p: Pallet) -> None:
    n = 8
    procs = [subprocess.Popen(p.argv("run", "-d", "--name", f"c{i}", IMG, "sleep", "30"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(n)]
    rcs = [pr.wait(timeout=120) for pr in procs]
    for pr in procs:
        assert pr.stdout is not None and pr.stderr is not None
        pr.stdout.close()
        pr.stderr.close()
    assert rcs == [0] * n
    names = p.ok("ps", "--format", "{{.Names}}").split()
    assert sorted(names) == sorted(f"c{i}" for i in range(n))


@pytest.mark.parametrize("monitor", ["c", "python"])
def test_start_ai_and_attach_send_stdin(p: Pallet, monitor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if monitor == "python":
        monkeypatch.setenv("PALLET_MONITOR", "python")
    p.ok("create", "-i", "--name", "ai", IMG, "sh", "-c", 'while read l; do echo "got $l"; done; echo bye')
    r = p("start", "-ai", "ai", input="one\ntwo\n", timeout=30)
    assert (r.rc, r.out) == (0, "got one\ngot two\nbye\n"), r
    p.ok("run", "-d", "-i", "--name", "ai2", IMG, "sh", "-c", 'read l; echo "got $l"; exit 4')
    r = p("attach", "ai2", input="hey\n", timeout=30)
    assert (r.rc, r.out) == (4, "got hey\n"), r


def test_attach_to_a_tty_container(p: Pallet, request: pytest.FixtureRequest) -> None:
    p.ok("run", "-d", "-it", "--name", "ti", IMG, "sh")
    out, rc = in_pty(p, "attach", "ti", on_ready=b"", then=b"echo hello-$((1+2)); exit 7\r")
    assert rc == 7, out
    assert b"hello-3" in out


@pytest.mark.parametrize("monitor", ["c", "python"])
def test_detached_start_failure_and_parentage(p: Pallet, monitor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run -d` of a missing command: Docker's 127 and one line, the container left Created,
    nothing running; a good one runs as the child of its monitor (who reaps it)."""
    if monitor == "python":
        monkeypatch.setenv("PALLET_MONITOR", "python")
    elif not (Path(os.sys.executable).parent / "pallet-monitor").exists():  # type: ignore[attr-defined]
        pytest.skip("the C monitor is not built (no C compiler when setup ran)")
    r = p("run", "-d", "--name", "nf", IMG, "nosuchcmd")
    assert r.rc == 127, r
    assert r.out == "" and len(r.err.strip().splitlines()) == 1 and "nosuchcmd" in r.err, r
    assert p.ok("inspect", "-f", "{{.State.Status}} {{.State.Running}}", "nf").strip() == "created false"
    p.ok("rm", "nf")
    cid = p.ok("run", "-d", "--name", "kid", IMG, "sleep", "30").strip()
    import json

    st = json.loads((p.root / "containers" / cid / "state.json").read_text())
    with open(f"/proc/{st['pid']}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    assert ppid == st["monitor_pid"]
    p.ok("rm", "-f", "kid")
    assert eventually(lambda: not os.path.exists(f"/proc/{st['monitor_pid']}"))
