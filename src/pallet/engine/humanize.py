"""Docker's human-readable durations, sizes and container status strings."""

from __future__ import annotations

import time

from pallet.engine.state import Container


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def human_size(n: float) -> str:
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{units[i]}"


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
