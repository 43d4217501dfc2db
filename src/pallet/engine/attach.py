"""Attach to a container run by its monitor: stream its output until it exits."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING, Any

from pallet.engine.state import Container

if TYPE_CHECKING:
    from pallet.engine.containers import ContainerService


def forward_stdin(c: Container) -> Any:
    """Send our stdin to the container's monitor (its attach socket); EOF closes a non-tty stdin."""
    import socket
    import threading

    from pallet.engine.monitor_c import attach_name

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\0" + attach_name(c.id))
    except OSError:
        s.close()
        return None

    def pump() -> None:
        try:
            while True:
                data = os.read(0, 65536)
                if not data:
                    break
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=pump, daemon=True).start()
    return s


def follow_until_exit(svc: ContainerService, c: Container, since: int | None = None,
                      proxy_signals: bool = True, stdin: bool = False) -> int:
    """Copy the container's output (from its start, or ``since``) to ours; its exit code."""
    import contextlib as _contextlib

    from pallet.engine.foreground import _raw_terminal

    sock = forward_stdin(c) if stdin and (c.spec.open_stdin or c.spec.tty) else None
    raw = _raw_terminal(0) if sock is not None and c.spec.tty else _contextlib.nullcontext()
    with raw:
        try:
            return _follow(svc, c, since, proxy_signals)
        finally:
            if sock is not None:
                sock.close()


def _follow(svc: ContainerService, c: Container, since: int | None, proxy_signals: bool) -> int:
    from pallet.engine.logs import read_logs

    first_restarts = c.state.restart_count
    started = c.state.started_at if since is None else since

    import time

    gone_at: list[float] = []

    def alive() -> bool:
        from pallet.engine.containers import pid_alive

        cur = svc.refresh(svc.store.load(c.id))
        if cur.state.restart_count != first_restarts:
            return False
        if cur.state.status in ("running", "paused"):
            return True
        # The container is gone, but its monitor may still be copying its last output into
        # the log: keep following while the monitor lives (a few seconds at most).
        if not gone_at:
            gone_at.append(time.monotonic())
        return (pid_alive(cur.state.monitor_pid, cur.state.monitor_start)
                and cur.state.monitor_pid != os.getpid()
                and time.monotonic() - gone_at[0] < 5.0)

    old = {}
    if proxy_signals:
        def forward(signum: int, _frame: object) -> None:
            cur = svc.refresh(svc.store.load(c.id))
            if cur.state.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(cur.state.pid, signum)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, forward)
    try:
        for rec in read_logs(c.log_path, since=max(0, started - 50_000_000), follow=True, alive=alive, poll=0.05):
            fd = 2 if rec.stream == "stderr" else 1
            try:
                os.write(fd, rec.data)
            except BrokenPipeError:
                break
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    cur = svc.refresh(svc.store.load(c.id)) if (svc.store.dir / c.id).exists() else c
    if cur.state.status in ("running", "paused") and cur.state.restart_count == first_restarts:
        cur = svc.wait(cur)
    return cur.state.exit_code
