"""Seccomp filters for containers: an OCI ``linux.seccomp`` object compiled by
libseccomp to a BPF program, installed in the container's init.

Two steps, because the init installs the filter after it has switched to the
container's root, where the host's libseccomp is no longer reachable:

* :func:`prepare` (before pivot_root; may use a cache directory): compile the
  spec to the kernel's BPF program (about 30 ms with libseccomp, ~1 ms from
  the cache);
* :meth:`Prepared.load` (right before exec): set no_new_privs if asked, and
  install the program with seccomp(2): no library, no file access.

:func:`apply` does both at once, for callers that still see the host's files.

Ordering, as runc does it:

* with ``process.noNewPrivileges``: drop capabilities and switch user first,
  then load last, just before exec (no_new_privs is set as part of the load),
  so the filter constrains nothing but the container's program;
* without it: the kernel accepts a filter only from a process holding
  CAP_SYS_ADMIN, so load BEFORE dropping capabilities; every call the init
  still makes afterwards (capset, setgroups, setuid, chdir, execve) must then
  be allowed by the profile, which Docker's default profile does.

libseccomp would set no_new_privs itself when loading; pallet never lets it,
so that a container without ``no-new-privileges`` keeps setuid binaries
working as under Docker.

Importing this module costs nothing and loads no library.
"""

from __future__ import annotations

import errno as errno_mod
import json
import os

from pallet.errors import InvalidArgument
from pallet.oci.record import record

TYPE_CHECKING = False  # on every container's start: typing only for the type checker
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
)
OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")


def action_value(sc: Any, action: str, errno_ret: int | None, default_errno: int) -> int:
    """An OCI action name as libseccomp's action constant."""
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return int(sc.KILL_THREAD)
    if action == "SCMP_ACT_KILL_PROCESS":
        return int(sc.KILL_PROCESS)
    if action == "SCMP_ACT_TRAP":
        return int(sc.TRAP)
    if action == "SCMP_ACT_ERRNO":
        return int(sc.ERRNO(errno_ret if errno_ret is not None else default_errno))
    if action == "SCMP_ACT_TRACE":
        return int(sc.TRACE(errno_ret if errno_ret is not None else default_errno))
    if action == "SCMP_ACT_ALLOW":
        return int(sc.ALLOW)
    if action == "SCMP_ACT_LOG":
        return int(sc.LOG)
    if action == "SCMP_ACT_NOTIFY":
        raise InvalidArgument("seccomp action SCMP_ACT_NOTIFY needs a listener, which pallet does not support")
    raise InvalidArgument(f"invalid seccomp action {action!r}")


def build(spec: Mapping[str, Any], *, no_new_privs: bool = False) -> Any:
    """A pyseccomp ``SyscallFilter`` for the OCI object ``spec`` (not loaded)."""
    import pyseccomp as sc

    default_errno = int(spec.get("defaultErrnoRet") or errno_mod.EPERM)
    default = action_value(sc, spec.get("defaultAction") or "", None, default_errno)
    f = sc.SyscallFilter(default)
    f.set_attr(sc.Attr.CTL_NNP, 1 if no_new_privs else 0)
    for arch in spec.get("architectures") or []:
        value = getattr(sc.Arch, arch.removeprefix("SCMP_ARCH_"), None)
        if value is None:
            raise InvalidArgument(f"invalid seccomp architecture {arch!r}")
        if not f.exist_arch(value):
            f.add_arch(value)
    for flag in spec.get("flags") or []:
        if flag == "SECCOMP_FILTER_FLAG_TSYNC":
            f.set_attr(sc.Attr.CTL_TSYNC, 1)
        elif flag == "SECCOMP_FILTER_FLAG_LOG":
            f.set_attr(sc.Attr.CTL_LOG, 1)
        elif flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
            f.set_attr(sc.Attr.CTL_SSB, 1)
        else:
            raise InvalidArgument(f"invalid seccomp flag {flag!r}")
    native = sc.Arch.NATIVE
    for rule in spec.get("syscalls") or []:
        action = action_value(sc, rule.get("action") or "", rule.get("errnoRet"), default_errno)
        if action == default:
            continue  # libseccomp refuses rules that repeat the default action
        groups = _arg_groups(sc, rule.get("args") or [])
        for name in rule.get("names") or []:
            nr = sc.resolve_syscall(native, name)
            if nr == -1:
                continue  # unknown to this libseccomp: skipped, as runc does
            for args in groups:
                try:
                    f.add_rule(action, nr, *args)
                except OSError as e:
                    raise InvalidArgument(f"invalid seccomp rule for {name}: {e.strerror}") from None
    return f


def _arg_groups(sc: Any, args: list[Mapping[str, Any]]) -> list[list[Any]]:
    """Argument conditions on distinct indexes make one rule (all must hold);
    several on the same index make one rule each (any may hold), as runc does."""
    conds = []
    for a in args:
        op = OPERATORS.get(a.get("op", ""))
        if op is None:
            raise InvalidArgument(f"invalid seccomp operator {a.get('op')!r}")
        index = int(a.get("index", 0))
        if not 0 <= index <= 5:
            raise InvalidArgument(f"invalid seccomp argument index {index}")
        conds.append(sc.Arg(index, op, int(a.get("value", 0)), int(a.get("valueTwo", 0))))
    if not conds:
        return [[]]
    indexes = [int(a.get("index", 0)) for a in args]
    if len(set(indexes)) == len(indexes):
        return [conds]
    return [[c] for c in conds]


_CACHE_VERSION = "2"


@record(frozen=True)
class Prepared:
    """A compiled filter, ready to install."""

    program: bytes  # struct sock_filter[]
    flags: int  # SECCOMP_FILTER_FLAG_*
    no_new_privs: bool

    def load(self) -> None:
        """Install the filter in the calling thread (and, with TSYNC, its siblings)."""
        from pallet.linux import syscalls

        if self.no_new_privs:
            syscalls.set_no_new_privs()
        syscalls.seccomp_set_filter(self.program, self.flags)


def filter_flags(spec: Mapping[str, Any]) -> int:
    from pallet.linux import syscalls

    table = {
        "SECCOMP_FILTER_FLAG_TSYNC": syscalls.SECCOMP_FILTER_FLAG_TSYNC,
        "SECCOMP_FILTER_FLAG_LOG": syscalls.SECCOMP_FILTER_FLAG_LOG,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW": syscalls.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    }
    flags = 0
    for f in spec.get("flags") or []:
        if f not in table:
            raise InvalidArgument(f"invalid seccomp flag {f!r}")
        flags |= table[f]
    return flags


def compile_bpf(spec: Mapping[str, Any]) -> bytes:
    """The BPF program libseccomp generates for ``spec``."""
    f = build(spec)
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def prepare(
    seccomp_spec: Mapping[str, Any] | None, *, no_new_privs: bool = False, cache_dir: str | None = None
) -> Prepared | None:
    """Compile ``seccomp_spec`` (``None``: unconfined); with ``cache_dir``, reuse or
    store the program there, keyed by the spec's content."""
    if not seccomp_spec:
        return None
    flags = filter_flags(seccomp_spec)
    path = key = None
    if cache_dir:
        # named by a cheap checksum, verified by the whole key stored in the file (no
        # cryptographic hash to load: OpenSSL costs ~2.5 ms on every start)
        import zlib

        key = json.dumps([_CACHE_VERSION, os.uname().machine, seccomp_spec], sort_keys=True).encode()
        path = os.path.join(cache_dir, f"{zlib.crc32(key):08x}-{len(key)}.bpf")
        program = _read_cached(path, key)
        if program:
            return Prepared(program, flags, no_new_privs)
    program = compile_bpf(seccomp_spec)
    if path and key:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(len(key).to_bytes(8, "little") + key + program)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written is only slower
    return Prepared(program, flags, no_new_privs)


def _read_cached(path: str, key: bytes) -> bytes | None:
    """The program cached at ``path`` for exactly ``key`` (a checksum clash is a miss)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    n = int.from_bytes(data[:8], "little")
    program = data[8 + n:]
    if n != len(key) or data[8:8 + n] != key or not program or len(program) % 8:
        return None
    return program


def apply(seccomp_spec: Mapping[str, Any] | None, *, no_new_privs: bool = False) -> None:
    """Compile and install ``seccomp_spec`` (OCI ``linux.seccomp``) in this process;
    ``None`` (unconfined) does nothing.  Raises OSError from the kernel (EACCES
    without CAP_SYS_ADMIN and without no_new_privs) and InvalidArgument for a bad spec."""
    prepared = prepare(seccomp_spec, no_new_privs=no_new_privs)
    if prepared is not None:
        prepared.load()
