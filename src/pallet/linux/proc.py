"""What /proc/PID/stat says of a process: its start time and parent."""

from __future__ import annotations


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state first); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields if len(fields) > 19 else None


def start_time(pid: int) -> int:
    """The process's start time (clock ticks since boot); 0 if it is gone or a zombie.

    With the pid it names one process for good: a pid reused later starts at another time."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return 0
    return int(fields[19])


def parent_pid(pid: int) -> int:
    """The process's parent; 0 if it is gone."""
    fields = stat_fields(pid)
    return int(fields[1]) if fields else 0
