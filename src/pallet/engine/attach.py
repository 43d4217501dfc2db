"""Attach to a container run by its monitor: stream its output until it exits."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

from pallet.engine.state import Container

if TYPE_CHECKING:
    from pallet.engine.containers import ContainerService


def follow_until_exit(svc: ContainerService, c: Container, since: int | None = None,
                      proxy_signals: bool = True) -> int:
    """Copy the container's output (from its start, or ``since``) to ours; its exit code."""
    from pallet.engine.logs import read_logs

    first_restarts = c.state.restart_count
    started = c.state.started_at if since is None else since

    def alive() -> bool:
        cur = svc.refresh(svc.store.load(c.id))
        return cur.state.status in ("running", "paused") and cur.state.restart_count == first_restarts

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
        for rec in read_logs(c.log_path, since=max(0, started - 1_000_000), follow=True, alive=alive, poll=0.05):
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
