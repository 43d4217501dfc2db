"""End a command-line process at once when the interpreter's teardown has nothing to do.

Freeing every module and object at exit costs 5-15 ms, a tenth of a short command.
"""

from __future__ import annotations

import os
import sys


def exit_now(code: int) -> None:
    """``os._exit(code)`` after flushing stdio; returns (for a normal exit) while another
    thread lives or an exit handler is registered, or when the flush fails."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() != 1:
        return
    atexit = sys.modules.get("atexit")
    if atexit is not None and atexit._ncallbacks():
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)
