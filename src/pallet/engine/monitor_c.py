"""The optional compiled monitor (src/pallet/engine/monitor/monitor.c), used when it is built."""

from __future__ import annotations

from pallet.config import Config
from pallet.engine.state import Container


def c_monitor_argv(config: Config, c: Container, sync_fd: int) -> list[str] | None:
    """The compiled monitor's command line, or None to use the Python monitor."""
    del config, c, sync_fd
    return None
