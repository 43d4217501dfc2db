"""Every ctypes binding of pallet's lives here: kernel calls the stdlib lacks.

Each function raises ``OSError`` (with errno) on failure.  Nothing else in pallet
imports ctypes.  The library is loaded lazily on first use so that importing
this module costs nothing on paths that never make such a call.
"""

from __future__ import annotations

import os
from typing import Any

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# umount2(2) flags
MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

_libc: Any = None


def libc() -> Any:
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _check(rc: int, what: str, path: str | None = None) -> int:
    if rc < 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return rc


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    _check(libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount(target: str, flags: int = 0) -> None:
    _check(libc().umount2(_b(target), flags), "umount", target)


PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper(on: bool = True) -> None:
    """Become the reaper of orphaned descendants (their parent when theirs exits)."""
    _check(libc().prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent thread exits."""
    _check(libc().prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
