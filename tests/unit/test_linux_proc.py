"""pallet.linux.proc: start times and parents read from /proc/PID/stat."""

from __future__ import annotations

import os
import subprocess
import time

from pallet.linux.proc import parent_pid, start_time


def test_start_time_names_a_live_process_and_not_a_zombie() -> None:
    me = start_time(os.getpid())
    assert me > 0 and start_time(os.getpid()) == me
    assert parent_pid(os.getpid()) == os.getppid()
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # exited, not yet reaped: a zombie
        with open(f"/proc/{child.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    assert start_time(child.pid) == 0
    assert parent_pid(child.pid) == os.getpid()
    child.wait()
    assert start_time(child.pid) == 0 and parent_pid(child.pid) == 0
