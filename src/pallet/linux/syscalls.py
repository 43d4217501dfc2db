"""Every ctypes binding of pallet's lives here: kernel calls the stdlib lacks.

Each function raises ``OSError`` (with errno) on failure.  Nothing else in pallet
imports ctypes.  The library is loaded lazily on first use so that importing
this module costs nothing on paths that never make such a call.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
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

        try:
            # glibc's soname: no ctypes.util.find_library, which runs ldconfig and even gcc
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:
            import ctypes.util

            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
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


PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39


def set_no_new_privs() -> None:
    """Forbid this process and its children to gain privileges on execve (setuid bits, file caps)."""
    _check(libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def get_no_new_privs() -> bool:
    return bool(_check(libc().prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), "prctl(PR_GET_NO_NEW_PRIVS)"))


SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
# seccomp(2) by machine (no libc wrapper)
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "i386": 354, "i686": 354, "armv7l": 383, "ppc64le": 358,
                "ppc64": 358, "s390x": 348, "riscv64": 277, "loongarch64": 277}


def seccomp_set_filter(program: bytes, flags: int = 0) -> None:
    """Install a classic BPF seccomp filter: ``program`` is its ``struct sock_filter``
    array (8 bytes an instruction), as libseccomp exports it."""
    import ctypes
    # no platform module: this runs in a container init after pivot_root, with only
    # what is already imported
    nr = _syscall_nr(_SYS_SECCOMP, "seccomp")
    if not program or len(program) % 8:
        raise ValueError("a seccomp program is a non-empty array of 8-byte instructions")

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.addressof(buf))
    _check(libc().syscall(nr, SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(prog)), "seccomp(SECCOMP_SET_MODE_FILTER)")


# bpf(2), for cgroup v2 device filters
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "i386": 357, "i686": 357, "armv7l": 386, "ppc64le": 361,
            "ppc64": 361, "s390x": 351, "riscv64": 280, "loongarch64": 280}
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6


def _bpf(cmd: int, attr: bytes, what: str) -> int:
    import ctypes
    nr = _syscall_nr(_SYS_BPF, "bpf")
    buf = ctypes.create_string_buffer(attr, len(attr))
    return _check(libc().syscall(nr, cmd, buf, len(attr)), what)


def bpf_load_cgroup_device_program(insns: bytes, license: str = "Apache") -> int:
    """Load an eBPF program of type CGROUP_DEVICE (``insns``: 8-byte instructions); its fd."""
    import ctypes
    import struct

    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(4096)
    attr = struct.pack(
        "=IIQQIIQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8, ctypes.addressof(code),
        ctypes.addressof(lic), 1, len(log), ctypes.addressof(log),
    ).ljust(128, b"\0")
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as e:
        detail = log.value.decode(errors="replace").strip()
        raise OSError(e.errno, f"{e.strerror}: {detail}" if detail else e.strerror) from None


def bpf_attach_cgroup_device(cgroup_fd: int, prog_fd: int, flags: int = 0) -> None:
    """Attach a CGROUP_DEVICE program to the cgroup open at ``cgroup_fd`` (flags 0: it
    replaces the cgroup's previous one)."""
    import struct

    attr = struct.pack("=IIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags).ljust(128, b"\0")
    _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)")


# unshare(2)/setns(2) namespace flags
CLONE_NEWNET = 0x40000000


def unshare(flags: int) -> None:
    _check(libc().unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(libc().setns(fd, nstype), "setns")


# -- container set-up (pallet's runtime) -----------------------------------

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000

NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
}
# the names of /proc/<pid>/ns/* files
NAMESPACE_FILES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
}

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "loongarch64": 41, "s390x": 217,
                   "ppc64le": 203, "ppc64": 203, "i386": 217, "i686": 217, "armv7l": 218}
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90, "riscv64": 90, "loongarch64": 90, "s390x": 184,
               "ppc64le": 183, "ppc64": 183, "i386": 184, "i686": 184, "armv7l": 184}
_SYS_CAPSET = {k: v + 1 for k, v in _SYS_CAPGET.items()}


def _syscall_nr(table: dict[str, int], name: str) -> int:
    machine = os.uname().machine
    nr = table.get(machine)
    if nr is None:
        raise OSError(38, f"{name}: unknown syscall number on {machine}")
    return nr


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _syscall_nr(_SYS_PIVOT_ROOT, "pivot_root")
    _check(libc().syscall(nr, _b(new_root), _b(put_old)), "pivot_root", new_root)


PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def set_keepcaps(on: bool = True) -> None:
    _check(libc().prctl(PR_SET_KEEPCAPS, 1 if on else 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")


def capbset_read(cap: int) -> bool:
    """Whether ``cap`` is in the bounding set; raises OSError(EINVAL) past the last cap."""
    return bool(_check(libc().prctl(PR_CAPBSET_READ, cap, 0, 0, 0), "prctl(PR_CAPBSET_READ)"))


def capbset_drop(cap: int) -> None:
    _check(libc().prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl(PR_CAPBSET_DROP)")


def ambient_clear() -> None:
    _check(libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl(PR_CAP_AMBIENT)")


def ambient_raise(cap: int) -> None:
    _check(libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "prctl(PR_CAP_AMBIENT)")


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64-bit masks)."""
    import struct

    nr = _syscall_nr(_SYS_CAPSET, "capset")
    header = struct.pack("=Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    lo, hi = 0xFFFFFFFF, 32
    data = struct.pack(
        "=IIIIII",
        effective & lo, permitted & lo, inheritable & lo,
        (effective >> hi) & lo, (permitted >> hi) & lo, (inheritable >> hi) & lo,
    )
    _check(libc().syscall(nr, header, data), "capset")


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40


def sethostname(name: str) -> None:
    data = name.encode()
    _check(libc().sethostname(data, len(data)), "sethostname")


# -- idmapped mounts (open_tree, mount_setattr, move_mount; Linux >= 5.12) ---

# the same numbers on every architecture of the unified syscall table
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x100000
_AT_FDCWD = -100


def open_tree(path: str, flags: int = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC, dirfd: int = _AT_FDCWD) -> int:
    """A descriptor of the mount at ``path`` (with OPEN_TREE_CLONE: a detached copy of it)."""
    return _check(libc().syscall(_SYS_OPEN_TREE, dirfd, _b(path), flags), "open_tree", path)


def mount_setattr_idmap(mount_fd: int, userns_fd: int, recursive: bool = False) -> None:
    """Make the detached mount ``mount_fd`` an idmapped mount: ids on disk are shown
    (and written) through the mappings of the user namespace ``userns_fd``."""
    import ctypes

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _check(libc().syscall(_SYS_MOUNT_SETATTR, mount_fd, b"", flags, ctypes.byref(attr),
                          ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")


def move_mount(mount_fd: int, target: str) -> None:
    """Attach the detached mount ``mount_fd`` at ``target``."""
    _check(libc().syscall(_SYS_MOVE_MOUNT, mount_fd, b"", _AT_FDCWD, _b(target), MOVE_MOUNT_F_EMPTY_PATH),
           "move_mount", target)


PR_SET_DUMPABLE = 4


def set_dumpable(on: bool = True) -> None:
    """A process that changed its ids is not dumpable: its /proc files then belong to the
    root of the namespace it was started in (not the container's), until it is set again."""
    _check(libc().prctl(PR_SET_DUMPABLE, 1 if on else 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
