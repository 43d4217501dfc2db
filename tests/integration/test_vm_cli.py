"""``pallet run --isolation vm``: the same image and command line, in a QEMU guest (slow)."""

from __future__ import annotations

import fcntl
import glob
import json
import os
import select
import socket
import struct
import subprocess
import termios
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_vm_runtime import pytestmark as vm_marks
from tests.integration.test_vm_runtime import vm_cache  # noqa: F401 (a session fixture)
from tests.support.cli import Pallet

pytestmark = vm_marks


@pytest.fixture
def vm_pallet(pallet: Pallet, pallet_root: Path, vm_cache: Path, busybox_image: str) -> Pallet:  # noqa: F811
    (pallet_root / "vm").symlink_to(vm_cache)  # one initramfs, kernel and KVM probe per session
    return pallet


def processes_mentioning(text: str) -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmd and int(pid) != os.getpid():
            out.append(f"{pid}: {cmd[:160]!r}")
    return out


def left_behind(root: Path, cid: str) -> list[str]:
    """The VM's state directory, processes, cgroup and tap, if any is still there."""
    vm_state = root / "run" / "vm" / cid
    out = ([str(vm_state)] if vm_state.exists() else []) + processes_mentioning(cid)
    out += glob.glob(f"/sys/fs/cgroup/*/pallet/{cid}") + glob.glob(f"/sys/fs/cgroup/unified/pallet/{cid}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return out + [ln for ln in links.splitlines() if "pvmtap" in ln]


def test_run_rm_in_a_vm(vm_pallet: Pallet, pallet_root: Path) -> None:
    r = vm_pallet(
        "run", "--rm", "--isolation", "vm", "-m", "160m", "-e", "FOO=bar", "-w", "/srv",
        "-u", "1000:1000", "busybox:test",
        "sh", "-c", "uname -r; id -u; pwd; echo FOO=$FOO; grep MemTotal /proc/meminfo; echo oops >&2; exit 5",
    )
    assert r.rc == 5, r
    lines = r.out.splitlines()
    assert lines[0] != os.uname().release and lines[0].startswith(("5.", "6."))
    assert lines[1:4] == ["1000", "/srv", "FOO=bar"]
    assert 80 * 1024 < int(lines[4].split()[1]) <= 160 * 1024
    assert "oops" in r.err
    if "tcg" in (pallet_root / "vm" / "accel.json").read_text():
        assert "software emulation (TCG)" in r.err
    assert vm_pallet.ok("ps", "-a", "-q") == ""


def test_detached_vm_port_exec_stop_rm(vm_pallet: Pallet, pallet_root: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = ("mkdir -p /www && echo served-by-vm > /www/index.html; trap 'exit 143' TERM; "
             "httpd -f -p 80 -h /www & wait")
    cid = vm_pallet.ok("run", "-d", "--name", "web", "--isolation", "vm",
                       "-p", f"127.0.0.1:{port}:80", "busybox:test", "sh", "-c", serve).strip()
    body = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not body:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                body = resp.read().decode()
        except OSError:
            time.sleep(0.2)
    assert body == "served-by-vm\n"
    assert "Up " in vm_pallet.ok("ps", "--filter", "name=web") or "web" in vm_pallet.ok("ps")
    r = vm_pallet("exec", "web", "sh", "-c", "cat /www/index.html; exit 3")
    assert r.rc == 3 and r.out == "served-by-vm\n", r
    doc = json.loads(vm_pallet.ok("inspect", "web"))[0]
    assert doc["HostConfig"]["Isolation"] == "vm"
    assert doc["VM"]["Kernel"] not in ("", os.uname().release)
    assert doc["VM"]["Accelerator"] in ("kvm", "tcg") and doc["VM"]["Machine"] == "microvm"
    ip = doc["NetworkSettings"].get("IPAddress", "")
    if ip:  # on a CNI network the guest has the container's own address
        assert f"inet {ip}/" in vm_pallet.ok("exec", "web", "ip", "-4", "-o", "addr", "show", "eth0")
    stats = vm_pallet.ok("stats", "--no-stream", "--format", "{{.MemUsage}}", "web")
    assert "MiB" in stats, stats  # QEMU and the shim are accounted in the container's cgroup
    top = vm_pallet.ok("top", "web")
    assert "qemu-system-x86_64" in top and "pallet.vm.shim" in top and len(top.splitlines()) <= 5, top
    vm_pallet.ok("stop", "web")
    assert "Exited (143)" in vm_pallet.ok("ps", "-a")
    vm_pallet.ok("rm", "web")
    assert left_behind(pallet_root, cid) == []


def test_kill_a_vm(vm_pallet: Pallet, pallet_root: Path) -> None:
    cid = vm_pallet.ok("run", "-d", "--isolation", "vm", "busybox:test", "sleep", "1000").strip()
    vm_pallet.ok("kill", cid)
    deadline = time.monotonic() + 20
    while "Exited (137)" not in vm_pallet.ok("ps", "-a") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Exited (137)" in vm_pallet.ok("ps", "-a")
    vm_pallet.ok("rm", cid)
    assert left_behind(pallet_root, cid) == []


def test_files_added_before_start_reach_only_that_vm(vm_pallet: Pallet, tmp_path: Path) -> None:
    """The root image is cached per image, made from its layers: one container's files stay its own."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    vm_pallet.ok("create", "--name", "c1", "--isolation", "vm", "busybox:test", "cat", "/secret")
    vm_pallet.ok("cp", str(secret), "c1:/secret")
    r = vm_pallet("start", "-a", "c1")
    assert r.rc == 0 and r.out == "s3cret\n", r
    r = vm_pallet("run", "--rm", "--isolation", "vm", "busybox:test", "cat", "/secret")
    assert r.rc == 1 and "s3cret" not in r.out, r
    vm_pallet.ok("rm", "c1")


def test_interactive_tty_in_a_vm(vm_pallet: Pallet) -> None:
    """``run -it``: the guest's process gets a terminal of the user's size, and the keyboard."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 27, 91, 0, 0))
    p = subprocess.Popen(
        vm_pallet.argv("run", "--rm", "-it", "--isolation", "vm", "busybox:test",
                       "sh", "-c", "tty; stty size; read x; echo got:$x; exit 4"),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    sent = False
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not sent and b"27 91" in seen:
            os.write(master, b"typed-line\n")
            sent = True
        if p.poll() is not None and not r:
            break
    os.close(master)
    assert p.wait(timeout=30) == 4, seen
    text = seen.replace(b"\r", b"").decode(errors="replace")
    assert "/dev/pts/0" in text and "27 91" in text and "got:typed-line" in text, text
