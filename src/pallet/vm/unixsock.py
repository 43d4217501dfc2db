"""Unix sockets at paths longer than sun_path allows (108 bytes), and process identity."""

from __future__ import annotations

import os
import socket

from pallet.linux.proc import start_time

_SUN_PATH_MAX = 107


def connect_unix(path: str, timeout: float | None = None) -> socket.socket:
    """A connected stream socket; long paths go through the directory's /proc/self/fd link."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if len(os.fsencode(path)) <= _SUN_PATH_MAX:
            s.connect(path)
        else:
            dfd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY)
            try:
                s.connect(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
            finally:
                os.close(dfd)
    except BaseException:
        s.close()
        raise
    return s


def same_process(pid: int, started: int) -> bool:
    """``pid`` is still the process that started at ``started`` (and is not a zombie)."""
    return pid > 0 and started > 0 and start_time(pid) == started
