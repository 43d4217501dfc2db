"""The VM runtime on a real QEMU guest: a bundle made from the busybox rootfs.

Slow: every test boots a microvm (about 2 s with KVM unavailable and TCG in use).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet.config import Config
from pallet.vm import accel
from pallet.vm.initramfs import ensure_initramfs
from pallet.vm.kernel import find_kernel, find_qemu
from pallet.vm.runtime import VMRuntime
from tests.support.images import busybox_available, make_busybox_rootfs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86"),
    pytest.mark.skipif(not busybox_available(), reason="needs Debian's busybox-static"),
]


@pytest.fixture(scope="session")
def vm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initramfs build and one accelerator probe for the whole session."""
    if os.geteuid() != 0:
        pytest.skip("VM tests need root")
    try:
        kernel = find_kernel()
        qemu = find_qemu()
    except Exception as e:
        pytest.skip(str(e))
    d = tmp_path_factory.mktemp("vm-cache")
    initrd = ensure_initramfs(d, kernel)
    a = accel.choose(d, qemu, kernel, str(initrd))
    assert a.name in ("kvm", "tcg") and a.reason
    return d


@pytest.fixture
def rt(pallet_root: Path, vm_cache: Path) -> Iterator[VMRuntime]:
    (pallet_root / "vm").symlink_to(vm_cache)
    r = VMRuntime(Config(root=pallet_root, run_root=pallet_root / "run"))
    yield r
    for cid in r.list():
        r.delete(cid, force=True)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("bb") / "rootfs")


def make_bundle(tmp_path: Path, rootfs: Path, args: list[str], **kw: Any) -> Path:
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "rootfs").symlink_to(rootfs)
    proc: dict[str, Any] = {"args": args, "env": ["PATH=/bin:/usr/bin"], "cwd": "/",
                            "user": {"uid": 0, "gid": 0}}
    proc.update(kw.pop("process", {}))
    cfg: dict[str, Any] = {"ociVersion": "1.0.2", "process": proc,
                           "root": {"path": str(rootfs)}, "hostname": "guest"}
    cfg.update(kw)
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def leftovers(rt: VMRuntime, cid: str) -> list[str]:
    """Processes, sockets and files of a container that are still there."""
    d = str(rt.state_root / cid)
    out = [d] if os.path.exists(d) else []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if d.encode() in cmd:
            out.append(f"pid {pid}: {cmd[:120]!r}")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_guest_kernel_process_io_env_user_workdir_memory(
    rt: VMRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    script = ("uname -r; id -u; id -g; pwd; echo \"FOO=$FOO\"; hostname; "
              "grep MemTotal /proc/meminfo; echo to-stderr >&2; read line; echo \"in=$line\"; echo pid=$$; exit 7")
    b = make_bundle(
        tmp_path, busybox_rootfs, ["sh", "-c", script],
        process={"env": ["PATH=/bin", "FOO=bar baz"], "cwd": "/home/app",
                 "user": {"uid": 1000, "gid": 1000}},
        linux={"resources": {"memory": {"limit": 192 * 1024 * 1024}}},
    )
    out, err, inp = tmp_path / "out", tmp_path / "err", tmp_path / "in"
    inp.write_text("from-host-stdin\n")
    with open(out, "wb") as fo, open(err, "wb") as fe, open(inp, "rb") as fi:
        rt.create("t1", b, stdin=fi, stdout=fo, stderr=fe)
    st = rt.vm_state("t1")
    assert st.status == "created" and st.kernel and st.accelerator in ("kvm", "tcg")
    rt.start("t1")
    assert rt.wait("t1", timeout=60) == 7
    lines = out.read_text().splitlines()
    assert lines[0] == st.kernel
    assert lines[0] != os.uname().release  # the guest runs its own kernel
    assert lines[1:6] == ["1000", "1000", "/home/app", "FOO=bar baz", "guest"]
    mem_kib = int(lines[6].split()[1])
    assert 100 * 1024 < mem_kib <= 192 * 1024  # the VM's RAM is --memory
    assert lines[7] == "in=from-host-stdin"
    assert lines[8] == "pid=1"  # PID 1 of its own namespace, as in a container
    assert err.read_text() == "to-stderr\n"
    assert rt.vm_state("t1").exit_code == 7
    rt.delete("t1")
    assert leftovers(rt, "t1") == []


def test_published_port_exec_and_clean_stop(rt: VMRuntime, tmp_path: Path, busybox_rootfs: Path) -> None:
    port = free_port()
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "from-host").write_text("host-data\n")
    serve = ("mkdir -p /www && cat /data/from-host > /www/index.html && echo guest-data > /data/from-guest"
             "; trap 'exit 143' TERM; httpd -f -p 80 -h /www & wait")
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", serve],
                    mounts=[{"destination": "/data", "type": "bind", "source": str(vol),
                             "options": ["rbind", "rw"]}],
                    annotations={"org.pallet.vm.rootfs": "virtiofs",
                                 "org.pallet.vm.publish": f"127.0.0.1:{port}:80"})
    with open(os.devnull, "wb") as null:
        rt.create("t2", b, stdout=null, stderr=null)
    rt.start("t2")
    body = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                body = r.read().decode()
            break
        except OSError:
            time.sleep(0.2)
    assert body == "host-data\n"  # a volume (virtio-fs) read in the guest, served on a published port
    assert (vol / "from-guest").read_text() == "guest-data\n"
    # exec through the control channel
    out = tmp_path / "exec.out"
    with open(out, "wb") as fo:
        assert rt.exec("t2", {"args": ["sh", "-c", "cat /www/index.html; exit 4"]}, stdout=fo) == 4
        assert rt.exec("t2", {"args": ["no-such-command"]}, stdout=fo, stderr=fo) == 127
    text = out.read_text()
    assert text.startswith("host-data\n") and "executable file not found" in text
    # a detached exec is a local process standing for the guest's: signal it, wait for it
    relay = rt.exec("t2", {"args": ["sleep", "100"]}, detach=True)
    time.sleep(1.0)
    os.kill(relay, signal.SIGTERM)
    _, status = os.waitpid(relay, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM
    # stop: SIGTERM reaches the process, the guest powers itself off
    qemu_pid = json.loads((rt.state_root / "t2" / "state.json").read_text())["qemu_pid"]
    rt.kill("t2", signal.SIGTERM)
    assert rt.wait("t2", timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{qemu_pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reboot: Power down" in (rt.state_root / "t2" / "console.log").read_text()
    rt.delete("t2")
    assert leftovers(rt, "t2") == []


def test_terminal_kill_ends_the_vm_and_delete_leaves_nothing(
    rt: VMRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    script = ("touch /x 2>/dev/null || echo root-is-ro; touch /scratch/x && echo tmpfs-rw; "
              "tty; stty size; exec sleep 1000")
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", script],
                    process={"terminal": True},
                    root={"path": str(busybox_rootfs), "readonly": True},
                    mounts=[{"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "size=1m"]}],
                    annotations={"org.pallet.vm.rootfs": "ext4"})
    # the console socket receives the pty master, as with runc
    console = tmp_path / "console.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(console))
    listener.listen(1)
    listener.settimeout(60)
    got: dict[str, int] = {}

    def accept() -> None:
        conn, _ = listener.accept()
        _msg, fds, _f, _a = socket.recv_fds(conn, 1024, 1)
        got["master"] = fds[0]
        conn.close()

    import threading

    t = threading.Thread(target=accept)
    t.start()
    rt.create("t3", b, console_socket=str(console))
    t.join(5)
    listener.close()
    master = got["master"]
    import fcntl
    import struct
    import termios

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    image = rt.state_root / "t3" / "rootfs.ext4"
    assert image.exists()
    rt.start("t3")
    assert rt.vm_state("t3").status == "running"
    rt.pause("t3")
    assert rt.vm_state("t3").status == "paused"
    rt.resume("t3")
    assert rt.vm_state("t3").status == "running"
    seen = b""
    deadline = time.monotonic() + 20
    while b"33 101" not in seen and time.monotonic() < deadline:
        seen += os.read(master, 1024)
    assert b"/dev/pts/0" in seen and b"33 101" in seen
    assert b"root-is-ro" in seen and b"tmpfs-rw" in seen  # --read-only, --tmpfs
    rt.kill("t3", "KILL")
    assert rt.wait("t3", timeout=30) == 137
    os.close(master)
    rt.delete("t3")
    assert not image.exists()
    assert leftovers(rt, "t3") == []


def test_qemu_and_virtiofsd_die_with_the_shim(rt: VMRuntime, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"],
                    annotations={"org.pallet.vm.rootfs": "virtiofs", "org.pallet.vm.network": "none"})
    shim = rt.create("t4", b)
    raw = json.loads((rt.state_root / "t4" / "state.json").read_text())
    children = [raw["qemu_pid"], *raw["helper_pids"]]
    assert len(children) == 2 and all(os.path.exists(f"/proc/{p}") for p in children)
    os.kill(shim, signal.SIGKILL)

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.05)
    assert not any(alive(p) for p in children)  # before delete: they died with the shim
    assert rt.vm_state("t4").status == "stopped"
    rt.delete("t4")
    assert leftovers(rt, "t4") == []


def test_boot_failure_shows_the_guest_console(rt: VMRuntime, tmp_path: Path, busybox_rootfs: Path) -> None:
    from pallet.errors import RuntimeFailure

    images = rt.vm_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    (images / "corrupt-test.erofs").write_bytes(b"\0" * 65536)  # a cached image gone bad
    b = make_bundle(tmp_path, busybox_rootfs, ["true"],
                    annotations={"org.pallet.vm.cache-key": "corrupt-test"})
    try:
        with pytest.raises(RuntimeFailure, match="VM failed to boot.*cannot mount the erofs root"):
            rt.create("t5", b)
    finally:
        (images / "corrupt-test.erofs").unlink()
    assert leftovers(rt, "t5") == []


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A network namespace with a veth to the host, as CNI would leave it: (path, guest address)."""
    import subprocess

    name = f"pvm-{os.getpid() % 100000}"
    host_if = f"pvmh{os.getpid() % 100000}"
    subnet = f"10.209.{os.getpid() % 250}"
    cmds = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name],
        ["ip", "addr", "add", f"{subnet}.1/24", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", name, "addr", "add", f"{subnet}.2/24", "dev", "eth0"],
        ["ip", "-n", name, "link", "set", "eth0", "up"],
        ["ip", "-n", name, "route", "add", "default", "via", f"{subnet}.1"],
    ]
    try:
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True)
        yield f"/run/netns/{name}", f"{subnet}.2"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def test_guest_joins_the_bundles_network_namespace(
    rt: VMRuntime, tmp_path: Path, busybox_rootfs: Path, netns: tuple[str, str]
) -> None:
    """A tap mirrored to the namespace's eth0: the guest has the container's address."""
    import subprocess

    path, addr = netns
    serve = "mkdir -p /www && echo via-tap > /www/index.html; exec httpd -f -p 80 -h /www"
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", serve],
                    linux={"namespaces": [{"type": "network", "path": path}]})
    with open(os.devnull, "wb") as null:
        rt.create("t6", b, stdout=null, stderr=null)
    rt.start("t6")
    body = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not body:
        try:
            with urllib.request.urlopen(f"http://{addr}/", timeout=3) as r:
                body = r.read().decode()
        except OSError:
            time.sleep(0.2)
    assert body == "via-tap\n"
    rt.delete("t6", force=True)
    links = subprocess.run(["ip", "-n", path.rsplit("/", 1)[1], "link"], capture_output=True, text=True).stdout
    assert "pvmtap0" not in links  # the tap and the tc mirror go with the VM
    assert leftovers(rt, "t6") == []
