"""The per-VM supervisor: ``python -m pallet.vm.shim STATE_DIR``.

Started by :meth:`VMRuntime.create` with the container's stdio as its fds 0-2
and a sync pipe whose number is its second argument.  It starts virtiofsd (when needed) and QEMU, waits
for the guest agent's READY, reports on the sync pipe, then serves the control
socket (start, kill, exec, state) and relays the agent's frames to the right
descriptors.  It exits with the container process's exit status, so whoever
waits for it sees the container's.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.linux.proc import start_time
from pallet.linux.syscalls import libc, set_parent_death_signal
from pallet.vm import proto
from pallet.vm.unixsock import connect_unix

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)


@dataclass
class Session:
    """One process in the guest (id 0: the container's own; 1..: exec)."""

    id: int
    stdin: int
    stdout: int
    stderr: int
    client: socket.socket | None = None
    pid: int = 0
    exit_code: int | None = None
    owned: list[int] = field(default_factory=list)


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(s.strip() for s in text.strip().splitlines()[-lines:] if s.strip())


class Shim:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.plan: dict[str, Any] = json.loads((state_dir / "plan.json").read_text())
        self.state: dict[str, Any] = {"status": "creating", "shim_pid": os.getpid(),
                                      "starts": {str(os.getpid()): start_time(os.getpid())}}
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.decoder = proto.Decoder()
        self.sessions: dict[int, Session] = {0: Session(0, 0, 1, 2)}
        self.next_id = 1
        self.qemu: subprocess.Popen[bytes] | None = None
        self.helpers: list[subprocess.Popen[bytes]] = []
        self.killed = False
        self.quitting = False
        self.pending_start: socket.socket | None = None
        self.tty_fd = -1

    # -- state -------------------------------------------------------------------

    def save(self, **kw: Any) -> None:
        self.state.update(kw)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.dir / "state.json")

    def send(self, type_: str, id_: int, payload: bytes = b"") -> None:
        assert self.sock is not None
        with self.lock:
            self.sock.sendall(proto.encode(type_, id_, payload))

    # -- terminal -------------------------------------------------------------------

    def setup_terminal(self) -> None:
        """With a tty: a host pty whose master goes to the console socket (as runc does).

        The shim becomes the slave's session leader so that a resize by the holder of
        the master reaches it as SIGWINCH, and forwards the size to the guest's pty.
        """
        path = self.plan.get("console_socket") or ""
        if not (self.plan["process"].get("terminal") and path):
            return
        master, slave = os.openpty()
        ctty = os.open(os.ttyname(slave), os.O_RDWR)  # session leader: acquires the ctty
        os.close(slave)
        tty.setraw(ctty)
        with connect_unix(path, 10) as s:
            socket.send_fds(s, [b"pallet-vm-console"], [master])
        os.close(master)
        self.sessions[0] = Session(0, ctty, ctty, ctty)
        self.tty_fd = ctty

    def send_winsize(self) -> None:
        if self.tty_fd < 0 or self.state.get("status") != "running":
            return
        with contextlib.suppress(OSError):
            packed = fcntl.ioctl(self.tty_fd, termios.TIOCGWINSZ, b"\0" * 8)
            rows, cols = struct.unpack("HHHH", packed)[:2]
            if rows and cols:
                self.send(proto.WINSIZE, 0, f"{rows} {cols}".encode())

    # -- cgroup -------------------------------------------------------------------

    def join_cgroup(self) -> None:
        """Into the container's cgroup, for ``stats`` and CPU limits, before QEMU starts.

        Only CPU limits apply: QEMU's memory is the guest's RAM plus its own, and its
        threads are not the container's processes, so memory and pids limits stay in
        the guest (its fixed RAM) rather than on the host.
        """
        path = self.plan.get("cgroups_path") or ""
        if not path:
            return
        try:
            from pallet.runtime import cgroups

            m = cgroups.manager(path)
            m.create()
            if self.plan.get("cpu"):
                m.apply({"cpu": self.plan["cpu"]})
            m.add(os.getpid())
        except Exception as e:  # accounting only: the VM runs without it
            with open(self.dir / "qemu.log", "a") as f:
                f.write(f"pallet: not in cgroup {path}: {e}\n")

    # -- boot ---------------------------------------------------------------------

    def boot(self) -> None:
        logf = open(self.dir / "qemu.log", "ab")  # noqa: SIM115 (handed to the children)
        for argv, sock_path in self.plan.get("virtiofsd", []):
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                 preexec_fn=_die_with_parent)
            self.helpers.append(p)
            deadline = time.monotonic() + 10
            while not os.path.exists(sock_path):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"virtiofsd did not start: {tail(self.dir / 'qemu.log', 2)}")
                time.sleep(0.01)
        t0 = time.monotonic()
        self.qemu = subprocess.Popen(self.plan["qemu_argv"], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, preexec_fn=_die_with_parent)
        logf.close()
        starts = dict(self.state["starts"])
        for p in (self.qemu, *self.helpers):
            starts[str(p.pid)] = start_time(p.pid)
        self.save(qemu_pid=self.qemu.pid, helper_pids=[h.pid for h in self.helpers], starts=starts)
        agent = self.plan["agent_socket"]
        deadline = t0 + float(self.plan.get("boot_timeout", 60))
        sock = None
        while sock is None:
            if self.qemu.poll() is not None:
                raise RuntimeError(self.boot_failure("QEMU exited"))
            if time.monotonic() > deadline:
                raise RuntimeError(self.boot_failure("timed out waiting for QEMU"))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(agent)
                sock = s
            except OSError:
                s.close()
                time.sleep(0.01)
        self.sock = sock
        sock.settimeout(0.2)
        while True:
            if self.qemu.poll() is not None:
                raise RuntimeError(self.boot_failure("the VM stopped while booting"))
            if time.monotonic() > deadline:
                raise RuntimeError(self.boot_failure("timed out waiting for the guest to boot"))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise RuntimeError(self.boot_failure("the VM stopped while booting"))
            frames = self.decoder.feed(data)
            if frames and frames[0].type == proto.READY:
                self.save(kernel=frames[0].payload[:128].decode(errors="replace"),
                          boot_seconds=round(time.monotonic() - t0, 3))
                for f in frames[1:]:
                    self.on_frame(f)
                break
        sock.settimeout(None)
        for sh in self.plan.get("shares", []):
            self.send(proto.SHARE, 0, proto.encode_share(sh["tag"], sh["target"], sh["readonly"]))
        for f in self.plan.get("files", []):
            self.send(proto.FILE, 0, proto.encode_file(f["target"], base64.b64decode(f["content"]), f["mode"]))
        for fstype, source, target, options in self.plan.get("mounts", []):
            self.send(proto.MOUNT, 0, proto.encode_mount(fstype, source, target, tuple(options)))

    def boot_failure(self, why: str) -> str:
        last = tail(self.dir / "console.log") or tail(self.dir / "qemu.log", 3)
        return f"VM failed to boot: {why}" + (f"; last console lines: {last}" if last else "")

    # -- frames from the guest ------------------------------------------------------

    def on_frame(self, f: proto.Frame) -> None:
        s = self.sessions.get(f.id)
        if s is None:
            return
        if f.type == proto.STDOUT:
            self.write(s, s.stdout, f.payload)
        elif f.type == proto.STDERR:
            self.write(s, s.stderr, f.payload)
        elif f.type == proto.STARTED:
            s.pid = _number(f.payload, 0)
            if f.id == 0:
                self.save(status="running", guest_pid=s.pid, started_at=time.time())
                self.send_winsize()
                if self.pending_start is not None:
                    self.reply(self.pending_start, {"ok": True, "pid": s.pid})
                    self.pending_start = None
            elif s.client is not None:
                self.reply(s.client, {"ok": True, "pid": s.pid, "id": s.id}, keep=True)
        elif f.type == proto.EXIT:
            s.exit_code = _number(f.payload, 255)
            if f.id == 0:
                self.finish(s.exit_code)
            else:
                if s.client is not None:
                    self.reply(s.client, {"exit": s.exit_code})
                for fd in s.owned:
                    os.close(fd)
                del self.sessions[f.id]

    def write(self, s: Session, fd: int, data: bytes) -> None:
        # a reader that went away does not stop the guest (as with Docker)
        with contextlib.suppress(OSError):
            _write_all(fd, data)

    def finish(self, code: int) -> None:
        """The container's process ended: record it and power the VM off."""
        if self.quitting:
            return
        self.quitting = True
        self.save(status="stopped", exit_code=code, finished_at=time.time())
        with contextlib.suppress(OSError):
            self.send(proto.QUIT, 0)

    # -- control socket -------------------------------------------------------------

    def reply(self, conn: socket.socket, msg: dict[str, Any], keep: bool = False) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(msg).encode() + b"\n")
        if not keep:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(conn)
            conn.close()

    def on_request(self, conn: socket.socket) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
        except OSError:
            data, fds = b"", []
        if not data:
            self.sel.unregister(conn)
            conn.close()
            return
        self.sel.unregister(conn)
        try:
            req = json.loads(data.decode())
            op = req.get("op")
            if op == "start":
                if self.state["status"] != "created":
                    self.reply(conn, {"error": f"cannot start a container in state {self.state['status']}"})
                    return
                self.pending_start = conn
                self.start_session(self.sessions[0], proto.ProcessSpec(**_spec_args(self.plan["process"])))
            elif op == "kill":
                self.kill(int(req.get("signal", signal.SIGTERM)))
                self.reply(conn, {"ok": True})
            elif op == "exec":
                if self.state["status"] != "running":
                    self.reply(conn, {"error": "container is not running"})
                    for fd in fds:
                        os.close(fd)
                    return
                sid = self.next_id
                self.next_id += 1
                s = Session(sid, fds[0], fds[1], fds[2], client=conn, owned=list(fds))
                self.sessions[sid] = s
                self.sel.register(conn, selectors.EVENT_READ, ("client", sid))
                self.start_session(s, proto.ProcessSpec(**_spec_args(req["process"])))
            elif op in ("signal", "resize"):
                sid = int(req["session"])
                if sid not in self.sessions:
                    self.reply(conn, {"error": f"no exec session {sid}"})
                elif op == "signal":
                    self.send(proto.SIGNAL, sid, str(int(req["signal"])).encode())
                    self.reply(conn, {"ok": True})
                else:
                    self.send(proto.WINSIZE, sid, f"{int(req['rows'])} {int(req['cols'])}".encode())
                    self.reply(conn, {"ok": True})
            elif op == "state":
                self.reply(conn, dict(self.state))
            else:
                self.reply(conn, {"error": f"unknown request {op!r}"})
        except (ValueError, KeyError, TypeError, IndexError) as e:
            self.reply(conn, {"error": f"bad request: {e}"})

    def start_session(self, s: Session, spec: proto.ProcessSpec) -> None:
        self.send(proto.SPEC, s.id, proto.encode_spec(spec))
        threading.Thread(target=self.pump_stdin, args=(s,), daemon=True).start()

    def pump_stdin(self, s: Session) -> None:
        try:
            while True:
                data = os.read(s.stdin, 65536)
                if not data:
                    break
                self.send(proto.STDIN, s.id, data)
            self.send(proto.STDIN, s.id, b"")
        except OSError:
            pass

    def kill(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            self.killed = True
            if self.qemu is not None and self.qemu.poll() is None:
                self.qemu.kill()
            return
        if self.state["status"] == "running":
            self.send(proto.SIGNAL, 0, str(sig).encode())
        elif self.state["status"] == "created":
            # nothing runs yet: a signal that would end the process ends the VM
            self.finish(128 + sig)

    # -- main loop ------------------------------------------------------------------

    def serve(self, sync_fd: int) -> int:
        assert self.sock is not None and self.qemu is not None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.plan["ctl_socket"])
        listener.listen(16)
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        for sig in FORWARDED:
            signal.signal(sig, lambda *_: None)
        qfd = os.pidfd_open(self.qemu.pid)
        self.sel.register(self.sock, selectors.EVENT_READ, ("agent", 0))
        self.sel.register(listener, selectors.EVENT_READ, ("listen", 0))
        self.sel.register(rfd, selectors.EVENT_READ, ("signal", 0))
        self.sel.register(qfd, selectors.EVENT_READ, ("qemu", 0))
        self.save(status="created")
        os.write(sync_fd, b"ok\n")
        os.close(sync_fd)
        qemu_done = False
        deadline: float | None = None
        while not qemu_done:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if deadline is not None and timeout == 0.0:
                self.qemu.kill()
                deadline = None
            for key, _ev in self.sel.select(timeout):
                kind, sid = key.data
                if kind == "agent":
                    try:
                        data = self.sock.recv(262144)
                    except OSError:
                        data = b""
                    if not data:
                        self.sel.unregister(self.sock)
                        continue
                    try:
                        for f in self.decoder.feed(data):
                            self.on_frame(f)
                    except ValueError as e:
                        # the guest is not trusted: a malformed stream ends its VM, not us
                        self.save(error=f"protocol error from the guest: {e}")
                        self.kill(signal.SIGKILL)
                        self.sel.unregister(self.sock)
                elif kind == "listen":
                    conn, _ = listener.accept()
                    self.sel.register(conn, selectors.EVENT_READ, ("request", 0))
                elif kind == "request":
                    self.on_request(key.fileobj)  # type: ignore[arg-type]
                elif kind == "client":
                    # an exec client hung up: end its process
                    s = self.sessions.get(sid)
                    self.sel.unregister(key.fileobj)
                    if s is not None and s.exit_code is None:
                        self.send(proto.SIGNAL, sid, b"9")
                elif kind == "signal":
                    for b in os.read(rfd, 64):
                        if b == signal.SIGWINCH:
                            self.send_winsize()
                            continue
                        self.kill(b)
                elif kind == "qemu":
                    qemu_done = True
            if self.quitting and deadline is None and not qemu_done:
                deadline = time.monotonic() + 10
        self.qemu.wait()
        code = self.state.get("exit_code")
        if code is None:
            self.killed = self.killed or self.qemu.returncode == -signal.SIGKILL
            code = 137 if self.killed else 255
            self.save(status="stopped", exit_code=code, finished_at=time.time(),
                      error="" if self.killed else self.boot_failure("the VM stopped").replace(
                          "VM failed to boot: ", "VM stopped unexpectedly: "))
        if self.pending_start is not None:
            self.reply(self.pending_start, {"error": "the VM stopped"})
        for s in self.sessions.values():
            if s.client is not None and s.exit_code is None:
                self.reply(s.client, {"exit": 137})
        self.stop_helpers()
        listener.close()
        return int(code)

    def stop_helpers(self) -> None:
        for h in self.helpers:
            if h.poll() is None:
                h.terminate()
            try:
                h.wait(timeout=5)
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()


def _number(payload: bytes, default: int) -> int:
    """A decimal number the guest sent (0..65535), ``default`` when it is not one."""
    text = payload.decode("ascii", "replace")
    return int(text) if text.isdigit() and len(text) <= 5 else default


def _die_with_parent() -> None:
    """In QEMU and virtiofsd (before exec): die with the shim, even when it is SIGKILLed."""
    set_parent_death_signal(signal.SIGKILL)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _spec_args(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "args": tuple(p["args"]),
        "env": tuple(p.get("env", ())),
        "cwd": p.get("cwd", "/"),
        "uid": int(p.get("uid", 0)),
        "gid": int(p.get("gid", 0)),
        "additional_gids": tuple(p.get("additional_gids", ())),
        "terminal": bool(p.get("terminal", False)),
    }


def main() -> None:
    state_dir = Path(sys.argv[1])
    sync_fd = int(sys.argv[2])
    shim = Shim(state_dir)
    libc()  # loaded before any fork: the children's pre-exec step only calls into it
    try:
        shim.join_cgroup()
        shim.setup_terminal()
        shim.boot()
    except Exception as e:  # report any boot failure to the creator, then clean up
        if shim.qemu is not None and shim.qemu.poll() is None:
            shim.qemu.kill()
            shim.qemu.wait()
        shim.stop_helpers()
        shim.save(status="stopped", exit_code=125, error=str(e))
        with contextlib.suppress(OSError):
            os.write(sync_fd, f"error: {e}\n".encode())
        sys.exit(125)
    sys.exit(shim.serve(sync_fd))


if __name__ == "__main__":
    main()
