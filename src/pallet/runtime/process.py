"""The container process's identity and limits, applied by the init right before exec."""

from __future__ import annotations

import errno
import os
import resource
import stat

from pallet.linux import syscalls as sc
from pallet.oci.capabilities import mask

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RLIMITS = {name: getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}


class ExecError(Exception):
    """The command cannot run: ``code`` is Docker's status (127 not found, 126 cannot execute)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def set_rlimits(rlimits: list[dict[str, Any]]) -> None:
    for r in rlimits:
        kind = RLIMITS.get(r.get("type", ""))
        if kind is None:
            raise ValueError(f"unknown rlimit {r.get('type')!r}")
        resource.setrlimit(kind, (int(r["soft"]), int(r["hard"])))


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(int(value)))


def lookup(args: list[str], env: list[str], cwd: str) -> str:
    """The path execve will run for ``args[0]``, resolved with the container's PATH."""
    if not args:
        raise ExecError("no command specified", 125)
    name = args[0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(cwd, name)
        _check_executable(path, name)
        return path
    search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for e in env:
        if e.startswith("PATH="):
            search = e[5:]
    denied = None
    for d in search.split(":"):
        cand = os.path.join(d or ".", name)
        try:
            _check_executable(cand, name)
            return cand
        except ExecError as e:
            if e.code == 126:
                denied = e
    if denied is not None:
        raise denied
    raise ExecError(f'exec: "{name}": executable file not found in $PATH', 127)


def _check_executable(path: str, name: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ExecError(f'exec: "{name}": stat {path}: no such file or directory', 127) from None
    except NotADirectoryError:
        raise ExecError(f'exec: "{name}": stat {path}: not a directory', 127) from None
    except OSError as e:
        raise ExecError(f'exec: "{name}": {os.strerror(e.errno or 0).lower()}', 126) from None
    if stat.S_ISDIR(st.st_mode):
        raise ExecError(f'exec: "{name}": is a directory', 126)
    if not st.st_mode & 0o111:
        raise ExecError(f'exec: "{name}": permission denied', 126)


def set_user(user: dict[str, Any]) -> None:
    uid = int(user.get("uid", 0))
    gid = int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if "umask" in user and user["umask"] is not None:
        os.umask(int(user["umask"]))


def drop_bounding(caps: dict[str, Any]) -> None:
    keep = mask(list(caps.get("bounding") or []))
    for cap in range(sc.last_cap() + 1):
        if not keep & (1 << cap):
            try:
                sc.capbset_drop(cap)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise


def set_capabilities(caps: dict[str, Any]) -> None:
    """Effective, permitted and inheritable sets, then the ambient set (after the uid switch)."""
    sc.capset(
        mask(list(caps.get("effective") or [])),
        mask(list(caps.get("permitted") or [])),
        mask(list(caps.get("inheritable") or [])),
    )
    ambient = list(caps.get("ambient") or [])
    if ambient:
        from pallet.oci.capabilities import NUMBERS

        for name in ambient:
            n = NUMBERS.get(name)
            if n is not None:
                sc.ambient_raise(n)


def _load_seccomp(seccomp: tuple[bytes, int] | None) -> None:
    if seccomp is not None:
        sc.seccomp_set_filter(seccomp[0], seccomp[1])


def apply_identity(process: dict[str, Any], seccomp: tuple[bytes, int] | None) -> None:
    """User, capabilities, no_new_privs and seccomp (a compiled program and its flags), in
    runc's order."""
    caps = process.get("capabilities")
    nnp = bool(process.get("noNewPrivileges"))
    if caps is not None:
        drop_bounding(caps)
    user = process.get("user") or {}
    if caps is not None:
        sc.set_keepcaps(True)
    if not nnp:
        _load_seccomp(seccomp)  # needs CAP_SYS_ADMIN without no_new_privs: load before the drop
    set_user(user)
    if caps is not None:
        sc.set_keepcaps(False)
        set_capabilities(caps)
    if nnp:
        sc.set_no_new_privs()
    if nnp:
        _load_seccomp(seccomp)
