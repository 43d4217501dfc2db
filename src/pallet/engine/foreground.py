"""``run`` without ``-d``: the CLI process itself is the container's parent.

It becomes a child subreaper, creates and starts the container through the
runtime in-process, forwards signals, streams output (to the terminal and, unless
``--rm``, the json-file log), and returns the container's exit status.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable

from pallet.engine.state import Container, now_ns
from pallet.linux.proc import parent_pid
from pallet.oci.record import replace

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from pallet.engine.containers import ContainerService

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _Signals:
    """Forward the signals we receive to the container's pid 1; SIGWINCH resizes its pty."""

    def __init__(self, pid: int, master: int | None, wake: int,
                 send: Callable[[int], None] | None = None) -> None:
        self.pid = pid
        self.send = send
        self.master = master
        self.wake = wake
        self.old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        signal.set_wakeup_fd(self.wake)
        for s in FORWARDED:
            self.old[s] = signal.signal(s, self._forward)
        self.old[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        if self.master is not None:
            self.old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._resize)
            self._resize()
        return self

    def _forward(self, signum: int, _frame: Any) -> None:
        if self.send is not None:
            with contextlib.suppress(Exception):
                self.send(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def _resize(self, *_a: Any) -> None:
        if self.master is None:
            return
        import fcntl
        import termios

        with contextlib.suppress(OSError):
            size = fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def __exit__(self, *exc: Any) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(-1)


@contextlib.contextmanager
def _raw_terminal(fd: int) -> Any:
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    old = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def run_foreground(svc: ContainerService, c: Container) -> int:
    """Run ``c`` attached to this process; its exit code."""
    from pallet.engine.lifecycle import close_console, console_socket, prepare, receive_master
    from pallet.engine.runtimes import open_runtime
    from pallet.linux.proc import start_time as _pid_start
    from pallet.linux.syscalls import set_child_subreaper

    set_child_subreaper()
    from pallet.engine.lifecycle import await_monitor

    c = await_monitor(svc, c)
    c, bundle = prepare(svc, c)
    rt = open_runtime(svc.config, c.spec.runtime)
    keep_log = not c.spec.auto_remove
    devnull = os.open(os.devnull, os.O_RDWR)
    stdin = 0 if c.spec.open_stdin else devnull
    master: int | None = None
    out_r = err_r = None
    try:
        if c.spec.tty:
            sock, path = console_socket(c.dir)
            try:
                pid = rt.create(c.id, str(bundle), stdin=devnull, stdout=devnull, stderr=devnull,
                                console_socket=path)
            except BaseException:
                close_console(sock, path)
                raise
            master = receive_master(sock, path)
        elif keep_log:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                pid = rt.create(c.id, str(bundle), stdin=stdin, stdout=out_w, stderr=err_w)
            finally:
                os.close(out_w)
                os.close(err_w)
        else:
            pid = rt.create(c.id, str(bundle), stdin=stdin, stdout=1, stderr=2)
    except BaseException as e:
        os.close(devnull)
        from pallet.engine.lifecycle import _mark_failed, runtime_error

        err = runtime_error(e)
        _mark_failed(svc, c, str(err), err.exit_code)
        raise err from None
    os.close(devnull)
    started = now_ns()
    c = svc.store.update_state(
        c, status="running", pid=pid, pid_start=_pid_start(pid), started_at=started,
        finished_at=0, exit_code=0, error="", monitor_pid=os.getpid(), monitor_start=_pid_start(os.getpid()),
        stopped_by_user=False, oom_killed=False,
    )
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    send = None
    if parent_pid(pid) != os.getpid() and hasattr(rt, "wait"):
        # not our child (a VM's shim): the runtime delivers signals and knows the status
        _FOREIGN[pid] = (rt, c.id)
        send = lambda sig: rt.kill(c.id, sig)  # noqa: E731
    try:
        with _Signals(pid, master, wake_w, send):
            rt.start(c.id)
            if master is not None:
                status = _pump_tty(c, pid, master, wake_r, keep_log)
            elif out_r is not None and err_r is not None:
                status = _pump_pipes(c, pid, out_r, err_r, wake_r)
            else:
                status = _wait_only(pid, wake_r)
    finally:
        _FOREIGN.pop(pid, None)
        os.close(wake_r)
        os.close(wake_w)
    code = exit_code(status)
    with svc.store.locked(c.id):
        cur = svc.store.load(c.id)
        c = svc.store.save_state(cur, replace(cur.state, status="exited", pid=0, exit_code=code,
                                              finished_at=now_ns()))
    if c.spec.auto_remove:
        svc.remove(c, force=True)
    else:
        svc.cleanup(c)
    return code


_FOREIGN: dict[int, tuple[Any, str]] = {}


def _reap(pid: int) -> int | None:
    foreign = _FOREIGN.get(pid)
    if foreign is not None:
        from pallet.engine.containers import pid_alive

        with contextlib.suppress(ChildProcessError):
            os.waitpid(-1, os.WNOHANG)
        if pid_alive(pid, 0):
            return None
        rt, cid = foreign
        try:
            code = int(rt.wait(cid, timeout=5))
        except Exception:
            code = 255
        return code << 8 if code < 128 else code - 128
    while True:
        try:
            got, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            from pallet.engine.containers import pid_alive

            return None if pid_alive(pid, 0) else 255 << 8
        if got == 0:
            return None
        if got == pid:
            return status


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, OSError):
        while os.read(fd, 4096):
            pass


def _wait_only(pid: int, wake: int) -> int:
    while True:
        st = _reap(pid)
        if st is not None:
            return st
        select.select([wake], [], [], 1.0)
        _drain(wake)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BrokenPipeError:
            return
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        data = data[n:]


def _pump_pipes(c: Container, pid: int, out_r: int, err_r: int, wake: int) -> int:
    from pallet.engine.logs import LogWriter

    log = LogWriter(c.log_path)
    streams = {out_r: ("stdout", 1), err_r: ("stderr", 2)}
    status: int | None = None
    deadline = 0.0
    try:
        while True:
            if status is None:
                status = _reap(pid)
                if status is not None:
                    deadline = time.monotonic() + 2.0
            if status is not None and (not streams or time.monotonic() > deadline):
                return status
            ready, _, _ = select.select([*streams, wake], [], [], 1.0 if status is None else 0.05)
            for fd in ready:
                if fd == wake:
                    _drain(wake)
                    continue
                data = os.read(fd, 65536)
                name, dest = streams[fd]
                if not data:
                    os.close(fd)
                    del streams[fd]
                    continue
                _write_all(dest, data)
                log.write(name, data)
    finally:
        for fd in streams:
            os.close(fd)
        log.close()


def _pump_tty(c: Container, pid: int, master: int, wake: int, keep_log: bool) -> int:
    from pallet.engine.logs import LogWriter

    log = LogWriter(c.log_path) if keep_log else None
    stdin_open = c.spec.open_stdin
    status: int | None = None
    master_open = True
    deadline = 0.0
    try:
        with _raw_terminal(0) if stdin_open else contextlib.nullcontext():
            while True:
                if status is None:
                    status = _reap(pid)
                    if status is not None:
                        deadline = time.monotonic() + 1.0
                if status is not None and (not master_open or time.monotonic() > deadline):
                    return status
                fds = [wake] + ([master] if master_open else []) + ([0] if stdin_open else [])
                ready, _, _ = select.select(fds, [], [], 1.0 if status is None else 0.05)
                for fd in ready:
                    if fd == wake:
                        _drain(wake)
                    elif fd == master:
                        try:
                            data = os.read(master, 65536)
                        except OSError:
                            data = b""
                        if not data:
                            master_open = False
                            continue
                        _write_all(1, data)
                        if log is not None:
                            log.write("stdout", data)
                    else:
                        data = os.read(0, 65536)
                        if not data:
                            stdin_open = False
                            continue
                        _write_all(master, data)
    finally:
        os.close(master)
        if log is not None:
            log.close()
