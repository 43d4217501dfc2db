"""Docker's human-readable durations, sizes and container status strings."""

from __future__ import annotations

import time

from pallet.engine.state import Container
from pallet.engine.units import human_duration, human_size

__all__ = ["command_string", "human_duration", "human_size", "status_string"]


def status_string(c: Container, now: float | None = None) -> str:
    st = c.state
    t = now if now is not None else time.time()
    if st.status in ("running", "paused"):
        s = f"Up {human_duration(t - st.started_at / 1e9)}"
        return s + " (Paused)" if st.status == "paused" else s
    if st.status == "restarting":
        return f"Restarting ({st.exit_code}) {human_duration(t - st.finished_at / 1e9)} ago"
    if st.status == "exited":
        return f"Exited ({st.exit_code}) {human_duration(t - st.finished_at / 1e9)} ago"
    if st.status == "dead":
        return "Dead"
    if st.status == "removing":
        return "Removal In Progress"
    return "Created"


def command_string(c: Container, trunc: bool = True) -> str:
    cmd = " ".join([c.spec.path, *c.spec.args])
    if trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    return f'"{cmd}"'
