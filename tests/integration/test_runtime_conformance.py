"""One runtime conformance suite, run against pallet's own runtime and against runc.

runc is the reference: a test that fails for runc is a wrong test.  Each test
makes an OCI bundle from the busybox tree (no image store), runs it through the
runtime's Python interface and checks what a user of ``docker run`` would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet.errors import CommandCannotRun, CommandNotFound, PalletError
from pallet.linux.syscalls import set_child_subreaper
from pallet.oci.spec import default_spec
from pallet.runtime import get_runtime
from tests.support.images import busybox_available, make_busybox_rootfs

RUNTIMES = ["pallet", pytest.param("runc", marks=pytest.mark.skipif(
    shutil.which("runc") is None, reason="needs runc (Debian package) as the reference runtime"))]

pytestmark = pytest.mark.skipif(not busybox_available(), reason="needs Debian's busybox-static")

DOCKER_DEFAULT_CAPS = "00000000a80425fb"


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("rt") / "rootfs")


class Harness:
    def __init__(self, name: str, base: Path, template: Path) -> None:
        self.name = name
        self.base = base
        self.rt = get_runtime(name, base / "state")
        self.template = template
        self.ids: list[str] = []
        set_child_subreaper()

    def bundle(self, args: list[str], **kw: Any) -> tuple[Path, dict[str, Any]]:
        b = self.base / f"bundle-{uuid.uuid4().hex[:8]}"
        shutil.copytree(self.template, b / "rootfs", symlinks=True)
        mutate = kw.pop("mutate", None)
        spec = default_spec(args, env=kw.pop("env", ["PATH=/bin:/usr/bin"]), **kw)
        spec["linux"]["cgroupsPath"] = f"/pallet-test-rt/{uuid.uuid4().hex[:12]}"
        if mutate:
            mutate(spec)
        (b / "config.json").write_text(json.dumps(spec))
        return b, spec

    def create(self, args: list[str], **kw: Any) -> tuple[str, int, Path]:
        b, spec = self.bundle(args, **kw)
        cid = f"rt-{uuid.uuid4().hex[:12]}"
        out = b / "out"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            pid = self.rt.create(cid, str(b), stdin=None, stdout=fd, stderr=fd)
        finally:
            os.close(fd)
        self.ids.append(cid)
        self.cgroups = getattr(self, "cgroups", []) + [spec["linux"]["cgroupsPath"]]
        return cid, pid, out

    def run(self, args: list[str], **kw: Any) -> tuple[int, str]:
        cid, pid, out = self.create(args, **kw)
        self.rt.start(cid)
        code = wait(pid)
        self.rt.delete(cid, force=True)
        return code, out.read_text()

    def cleanup(self) -> None:
        for cid in self.ids:
            with contextlib.suppress(PalletError):
                self.rt.delete(cid, force=True)


def wait(pid: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("container did not exit in time")
        time.sleep(0.01)


@pytest.fixture(params=RUNTIMES)
def h(request: pytest.FixtureRequest, tmp_path: Path, rootfs_template: Path) -> Iterator[Harness]:
    harness = Harness(request.param, tmp_path, rootfs_template)
    yield harness
    harness.cleanup()
    for cg in getattr(harness, "cgroups", []):
        assert not os.path.exists(f"/sys/fs/cgroup/memory{cg}"), f"cgroup {cg} left behind"


def test_process_is_pid_1_and_sees_no_host_process(h: Harness) -> None:
    code, out = h.run(["sh", "-c", "echo pid=$$; ls /proc | grep -c '^[0-9]'"])
    assert code == 0
    lines = out.split()
    assert lines[0] == "pid=1"
    assert int(lines[1]) <= 3  # sh, and the ls/grep it forked


def test_own_hostname_mounts_and_ipc(h: Harness) -> None:
    host_ipc = os.readlink("/proc/self/ns/ipc")
    host_mnt = os.readlink("/proc/self/ns/mnt")
    code, out = h.run(["sh", "-c", "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/mnt;"
                                    " cat /proc/self/mountinfo"], hostname="conformance")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "conformance"
    assert lines[1] != host_ipc and lines[2] != host_mnt
    mount_points = [ln.split()[4] for ln in lines[3:]]
    assert "/" in mount_points and "/proc" in mount_points
    assert not any(str(h.base) in mp or mp.startswith("/work") for mp in mount_points)
    host_points = {ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()}
    assert not (set(mount_points) - {"/"}) & (host_points - {"/", "/proc", "/sys", "/dev", "/dev/pts",
                                                             "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup"}
                                              - {p for p in host_points if p.startswith(("/sys/fs/cgroup/", "/proc/", "/dev/"))})


def test_host_files_outside_the_rootfs_cannot_be_reached(h: Harness) -> None:
    secret = h.base / "host-secret"
    secret.write_text("do not read")
    code, out = h.run(["sh", "-c", f"cat {secret} /proc/1/root{secret} 2>&1; ls /"])
    assert "do not read" not in out
    assert "host-secret" not in out.splitlines()  # not in the container's /


def test_capabilities_are_dockers_default(h: Harness) -> None:
    code, out = h.run(["sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status"])
    caps = dict(line.split(":\t") for line in out.strip().splitlines())
    assert caps["CapEff"] == DOCKER_DEFAULT_CAPS
    assert caps["CapPrm"] == DOCKER_DEFAULT_CAPS
    assert caps["CapBnd"] == DOCKER_DEFAULT_CAPS
    assert caps["CapInh"] == "0000000000000000"
    assert caps["CapAmb"] == "0000000000000000"


def test_masked_and_read_only_proc_paths(h: Harness) -> None:
    code, out = h.run(["sh", "-c", "cat /proc/timer_list | wc -c; ls /proc/acpi | wc -l;"
                                    " echo 1 > /proc/sys/kernel/panic_on_oops && echo WROTE;"
                                    " echo 1 > /proc/sysrq-trigger && echo WROTE2; true"])
    assert out.split()[:2] == ["0", "0"]
    assert "WROTE" not in out


def test_user_groups_rlimits_env_and_cwd(h: Harness) -> None:
    code, out = h.run(
        ["sh", "-c", "id -u; id -g; id -G; ulimit -n; echo $FOO; pwd"],
        uid=1000, gid=1000, additional_gids=[10, 29], cwd="/home/app",
        env=["PATH=/bin", "FOO=bar baz"],
        mutate=lambda s: s["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 321}]),
    )
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "1000" and lines[1] == "1000"
    assert set(lines[2].split()) >= {"10", "29"}
    assert lines[3] == "321"
    assert lines[4] == "bar baz"
    assert lines[5] == "/home/app"
    caps_code, caps_out = h.run(["sh", "-c", "grep CapEff /proc/self/status"], uid=1000, gid=1000)
    assert caps_out.split()[1] == "0000000000000000"  # a non-root user has no effective capability


def test_read_only_rootfs(h: Harness) -> None:
    code, out = h.run(["sh", "-c", "touch /newfile 2>&1; echo ok > /dev/shm/x && cat /dev/shm/x"],
                      readonly_rootfs=True)
    assert "Read-only file system" in out
    assert out.strip().endswith("ok")


@pytest.mark.parametrize("cmd,code", [(["sh", "-c", "exit 3"], 3), (["true"], 0), (["false"], 1)])
def test_exit_codes(h: Harness, cmd: list[str], code: int) -> None:
    assert h.run(cmd)[0] == code


def test_missing_command_is_not_found(h: Harness) -> None:
    with pytest.raises(CommandNotFound):
        h.run(["no-such-command"])


def test_not_executable_cannot_run(h: Harness) -> None:
    def chmod(spec: dict[str, Any]) -> None:
        pass

    b_code = None
    with pytest.raises((CommandCannotRun, PalletError)) as ei:
        b_code = h.run(["/etc/passwd"], mutate=chmod)
    assert b_code is None
    assert "permission denied" in str(ei.value).lower()


def test_create_then_start_and_states(h: Harness) -> None:
    cid, pid, out = h.create(["sh", "-c", "echo started; sleep 30"])
    assert h.rt.state(cid)["status"] == "created"
    assert not out.read_text()  # nothing ran before start
    h.rt.start(cid)
    assert h.rt.state(cid)["status"] == "running"
    deadline = time.monotonic() + 10
    while "started" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    h.rt.kill(cid, signal.SIGKILL)
    assert wait(pid) == 137
    assert h.rt.state(cid)["status"] == "stopped"
    assert out.read_text() == "started\n"
    h.rt.delete(cid)
    assert not (h.base / "state" / cid).exists()


def test_kill_delivers_the_signal(h: Harness) -> None:
    cid, pid, out = h.create(["sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; "
                                          "while true; do sleep 0.05; done"])
    h.rt.start(cid)
    deadline = time.monotonic() + 10
    while "ready" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    h.rt.kill(cid, signal.SIGTERM)
    assert wait(pid) == 7
    assert "got-term" in out.read_text()


def test_pause_and_resume(h: Harness) -> None:
    cid, pid, out = h.create(["sh", "-c", "while true; do echo tick; sleep 0.05; done"])
    h.rt.start(cid)
    time.sleep(0.3)
    h.rt.pause(cid)
    assert h.rt.state(cid)["status"] == "paused"
    n = out.read_text().count("tick")
    time.sleep(0.3)
    assert out.read_text().count("tick") == n
    h.rt.resume(cid)
    time.sleep(0.3)
    assert out.read_text().count("tick") > n
    h.rt.kill(cid, signal.SIGKILL)
    wait(pid)


def test_exec_joins_the_container(h: Harness) -> None:
    cid, pid, out = h.create(["sh", "-c", "echo $$ > /tmp/main; sleep 30"], hostname="exec-ns")
    h.rt.start(cid)
    time.sleep(0.3)
    proc = {"args": ["sh", "-c", "hostname; cat /tmp/main; grep CapEff /proc/self/status"],
            "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")}}
    r, w = os.pipe()
    try:
        epid = h.rt.exec(cid, proc, stdin=None, stdout=w, stderr=w)
    finally:
        os.close(w)
    assert wait(epid) == 0
    text = os.read(r, 65536).decode()
    os.close(r)
    lines = text.split()
    assert lines[0] == "exec-ns"
    assert lines[1] == "1"
    assert lines[3] == "0000000000000020"  # CAP_KILL only
    h.rt.kill(cid, signal.SIGKILL)
    wait(pid)


def test_delete_leaves_no_process_cgroup_or_state(h: Harness) -> None:
    cid, pid, _ = h.create(["sleep", "30"])
    h.rt.start(cid)
    cg = h.cgroups[-1]
    assert os.path.isdir(f"/sys/fs/cgroup/memory{cg}")
    h.rt.delete(cid, force=True)
    assert wait(pid) == 137
    assert not os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(f"/sys/fs/cgroup/memory{cg}")
    assert not (h.base / "state" / cid).exists()


def test_own_cgroup_namespace_rooted_at_the_containers_cgroup(h: Harness) -> None:
    code, out = h.run(["sh", "-c", "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup"])
    assert code == 0, out
    lines = out.splitlines()
    assert lines[-1] != os.readlink("/proc/self/ns/cgroup")
    paths = [ln.split(":", 2)[2] for ln in lines[:-1]]
    # every hierarchy the container was placed in is its namespace's root
    assert paths and all(p == "/" for p in paths), out
    host = Path(f"/sys/fs/cgroup/memory{h.cgroups[-1]}")
    assert not host.exists()  # and it was removed with the container


def test_run_convenience_reports_dockers_status(h: Harness) -> None:
    from pallet.runtime.base import run

    b, _ = h.bundle(["sh", "-c", "kill -KILL $$; echo pid 1 ignores its own SIGKILL; exit 9"])
    assert run(h.rt, f"rt-{uuid.uuid4().hex[:12]}", b) == 9
    b, _ = h.bundle(["sh", "-c", "exit 42"])
    cid = f"rt-{uuid.uuid4().hex[:12]}"
    assert run(h.rt, cid, b) == 42
    assert not (h.base / "state" / cid).exists()


def _console(h: Harness) -> tuple[Any, list[int], Any]:
    import socket
    import threading

    sock_path = str(h.base / f"console-{uuid.uuid4().hex[:6]}.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    got: list[int] = []

    def accept() -> None:
        conn, _ = srv.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
            got.extend(fds)

    t = threading.Thread(target=accept)
    t.start()
    return srv, got, (t, sock_path)


def test_terminal_size_and_input_through_the_master(h: Harness) -> None:
    def size(spec: dict[str, Any]) -> None:
        spec["process"]["consoleSize"] = {"height": 33, "width": 111}

    srv, got, (t, sock_path) = _console(h)
    b, _ = h.bundle(["sh", "-c", "tty; stty size; read line; echo got-$line"], terminal=True, mutate=size)
    cid = f"rt-{uuid.uuid4().hex[:12]}"
    try:
        pid = h.rt.create(cid, str(b), console_socket=sock_path)
        h.ids.append(cid)
        t.join(10)
        assert got, "no terminal received on the console socket"
        h.rt.start(cid)
        os.write(got[0], b"typed\r")
        out = b""
        while True:
            try:
                chunk = os.read(got[0], 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert wait(pid) == 0
    finally:
        srv.close()
        for fd in got:
            os.close(fd)
    text = out.decode()
    assert "/dev/pts/" in text and "33 111" in text and "got-typed" in text


def test_bind_mounts_ro_rw_and_links_do_not_escape(h: Harness) -> None:
    host = h.base / f"share-{uuid.uuid4().hex[:6]}"
    host.mkdir()
    (host / "in").write_text("inside\n")
    secret = h.base / f"secret-{uuid.uuid4().hex[:6]}"
    secret.write_text("host secret\n")
    (host / "out").symlink_to(secret)  # an absolute host path: read inside the container's root

    def mounts(spec: dict[str, Any]) -> None:
        spec["mounts"] += [
            {"destination": "/ro", "type": "bind", "source": str(host), "options": ["rbind", "ro"]},
            {"destination": "/rw", "type": "bind", "source": str(host), "options": ["rbind", "rw"]},
        ]

    code, out = h.run(["sh", "-c", "cat /ro/in; touch /ro/x 2>/dev/null && echo ro-writable; "
                       "echo w > /rw/w && echo rw-ok; cat /rw/out 2>/dev/null || echo no-escape"],
                      mutate=mounts)
    assert code == 0, out
    assert out.split() == ["inside", "rw-ok", "no-escape"]
    assert (host / "w").read_text() == "w\n" and not (host / "x").exists()


def test_tmpfs_mount_with_size(h: Harness) -> None:
    def tmpfs(spec: dict[str, Any]) -> None:
        spec["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "size=2m", "mode=1777"]})

    code, out = h.run(["sh", "-c", "grep ' /scratch ' /proc/mounts; stat -c %a /scratch; "
                       "head -c 3000000 /dev/zero > /scratch/f 2>/dev/null || echo full"],
                      mutate=tmpfs)
    assert code == 0, out
    assert "tmpfs /scratch tmpfs" in out and "size=2048k" in out and "nosuid" in out
    assert "1777" in out.split() and "full" in out.split()


def test_dev_contents(h: Harness) -> None:
    script = ("for d in null zero full random urandom tty ptmx; do test -c /dev/$d || echo no-$d; done; "
              "for d in pts shm mqueue; do test -d /dev/$d || echo no-$d; done; "
              "for l in fd stdin stdout stderr; do test -L /dev/$l || echo no-$l; done; "
              "for l in fd stdin stdout stderr; do readlink /dev/$l; done; "
              "grep -E ' /dev/(pts|shm|mqueue) ' /proc/mounts | cut -d' ' -f2,3; "
              "echo x > /dev/null && head -c 4 /dev/zero | wc -c; echo x > /dev/full 2>/dev/null || echo enospc")
    code, out = h.run(["sh", "-c", script])
    assert code == 0, out
    lines = out.splitlines()
    assert not [x for x in lines if x.startswith("no-")], out
    assert lines[:4] == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"]
    assert {"/dev/pts devpts", "/dev/shm tmpfs", "/dev/mqueue mqueue"} <= set(lines)
    assert lines[-2:] == ["4", "enospc"]


def test_sys_is_read_only(h: Harness) -> None:
    code, out = h.run(["sh", "-c", "grep ' /sys ' /proc/mounts | cut -d' ' -f4; "
                       "echo 1 > /sys/kernel/uevent_helper 2>/dev/null && echo sys-writable; "
                       "mkdir /sys/x 2>/dev/null && echo sys-writable; true"])
    assert code == 0, out
    assert out.split()[0].split(",")[0] == "ro" and "sys-writable" not in out


def test_oom_score_adj_and_no_new_privileges(h: Harness) -> None:
    code, out = h.run(["sh", "-c", "cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status"],
                      oom_score_adj=500, no_new_privileges=True)
    assert code == 0, out
    assert out.split() == ["500", "NoNewPrivs:", "1"]
    code, out = h.run(["sh", "-c", "grep NoNewPrivs /proc/self/status"])
    assert out.split() == ["NoNewPrivs:", "0"]


def test_sysctl_in_its_own_network_namespace(h: Harness) -> None:
    def sysctl(spec: dict[str, Any]) -> None:
        spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "net.ipv4.ping_group_range": "0 0"}

    code, out = h.run(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ping_group_range"],
                      mutate=sysctl)
    assert code == 0, out
    assert out.split() == ["1", "0", "0"]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_network_namespace_given_by_path(h: Harness) -> None:
    import subprocess

    ns = h.base / f"prx-netns-{uuid.uuid4().hex[:6]}"
    ns.touch()
    # unshare keeps the new namespace alive by bind-mounting it onto the file
    subprocess.run(["unshare", f"--net={ns}", "true"], check=True)
    try:
        code, out = h.run(["readlink", "/proc/self/ns/net"], netns_path=str(ns))
        assert code == 0, out
        assert out.strip() == f"net:[{os.stat(ns).st_ino}]"
        assert os.readlink("/proc/self/ns/net") != out.strip()
    finally:
        subprocess.run(["umount", str(ns)], check=True)
        ns.unlink()


def test_a_megabyte_on_stdout(h: Harness) -> None:
    code, out = h.run(["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' a"])
    assert code == 0
    assert len(out) == 1048576 and set(out) == {"a"}


def test_hooks_receive_the_state_in_order(h: Harness) -> None:
    out = h.base / f"hooks-{uuid.uuid4().hex[:6]}"
    out.mkdir()

    def hook(kind: str) -> dict[str, Any]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{kind}.json; echo {kind} >> {out}/order"]}

    def hooks(spec: dict[str, Any]) -> None:
        spec["hooks"] = {k: [hook(k)] for k in ("prestart", "createRuntime", "poststart", "poststop")}

    cid, pid, _ = h.create(["sleep", "30"], mutate=hooks)
    h.rt.start(cid)
    h.rt.kill(cid, "KILL")
    wait(pid)
    h.rt.delete(cid)
    order = (out / "order").read_text().split()
    assert order == ["prestart", "createRuntime", "poststart", "poststop"]
    for kind in order:
        st = json.loads((out / f"{kind}.json").read_text())
        assert st["id"] == cid and st.get("pid", pid) == pid, (kind, st)
        assert kind == "poststop" or st["pid"] == pid


def test_a_failing_create_hook_fails_create(h: Harness) -> None:
    def hooks(spec: dict[str, Any]) -> None:
        spec["hooks"] = {"createRuntime": [{"path": "/bin/false", "args": ["false"]}]}

    with pytest.raises(PalletError):
        h.create(["sleep", "30"], mutate=hooks)
    state = h.base / "state"
    assert not state.exists() or not [p for p in state.iterdir() if p.name.startswith("rt-")]


def test_start_fails_when_the_process_dies_before_exec(h: Harness) -> None:
    """A created process that dies before it can exec: start reports it, neither hanging
    nor claiming a start."""
    import threading

    cid, pid, out = h.create(["sh", "-c", "echo ran"])
    os.kill(pid, signal.SIGSTOP)  # held before it writes its exec FIFO
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    t = time.monotonic()
    try:
        with pytest.raises(PalletError):
            h.rt.start(cid)
    finally:
        killer.join()
    assert time.monotonic() - t < 10
    assert wait(pid) == 137
    assert out.read_text() == ""
