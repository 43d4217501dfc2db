"""Persistent network namespaces: a new namespace bind-mounted on a file, without ``ip netns``.

The directory holding them is made a shared mount of its own, so that when a
namespace's file is unmounted here, copies of the mount in the mount namespaces
of containers created meanwhile go too and the namespace is really freed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pallet.linux import syscalls as sc


def _mountpoints() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _ensure_shared_dir(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True, mode=0o755)
    if str(d) not in _mountpoints():
        sc.mount(str(d), str(d), None, sc.MS_BIND)
    sc.mount(None, str(d), None, sc.MS_SHARED)


def create(directory: Path, name: str) -> Path:
    """A new network namespace kept alive by a bind mount at ``directory/name``."""
    _ensure_shared_dir(directory)
    path = directory / name
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            sc.unshare(sc.CLONE_NEWNET)
            loopback_up()
            sc.mount("/proc/self/ns/net", str(path), None, sc.MS_BIND)
            code = 0
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise OSError(f"could not create a network namespace at {path}")
    return path


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (SIOCGIFFLAGS/SIOCSIFFLAGS)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), 0x8913, req))[1]
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))


def is_netns(path: Path) -> bool:
    return str(path) in _mountpoints()


def remove(path: Path) -> None:
    """Unmount and unlink a namespace file (nothing happens when it is gone already)."""
    with contextlib.suppress(OSError):
        sc.umount(str(path), sc.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def release_dir(directory: Path) -> None:
    """Unmount the namespace directory itself once no namespace is left in it."""
    with contextlib.suppress(OSError):
        if not any(directory.iterdir()):
            sc.umount(str(directory), sc.MNT_DETACH)
            directory.rmdir()
