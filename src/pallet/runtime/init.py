"""The container init: the entry point pallet's runtime re-executes for each container.

Run as ``python -S -c ... REQ_FD SYNC_FD`` (see ``pallet_runtime.INIT_CODE``): it
reads one request (a ``marshal``-encoded dict: no JSON, no typing, nothing but
builtins on this path) from REQ_FD and reports on SYNC_FD, one line a message:
``pid N``, ``ready``, or ``error CODE MESSAGE``.

* create: (the caller has put it in the container's cgroup) enter or unshare the
  namespaces, fork the container's pid 1, report its pid and exit.  The child
  sets up the root filesystem, reports ``ready`` (or an error), blocks on the
  exec FIFO until ``start`` opens it, switches identity and execs.
* exec: join the container's cgroup and namespaces, fork, and exec the process.

SYNC_FD is close-on-exec in the child, so its end-of-file after ``start`` means
the exec happened; an error line means it did not.
"""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum and functools on this path
import marshal
import os
import sys

from pallet.linux import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _send(fd: int, line: str) -> None:
    try:  # noqa: SIM105 - no contextlib import on the init's path
        os.write(fd, (line.replace("\n", " ") + "\n").encode())
    except OSError:
        pass  # nobody is listening any more (a runc-style create that exited)


def _fail(fd: int, message: str, code: int = 1) -> None:
    _send(fd, f"error {code} {message}")
    os._exit(code if 0 < code < 256 else 1)


def _read_request(fd: int) -> dict[str, Any]:
    chunks = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return dict(marshal.loads(b"".join(chunks)))


def _enter_namespaces(namespaces: list[dict[str, Any]], pid: int | None) -> int:
    """setns into the namespaces given by path (or those of ``pid``); the flags left to unshare.

    Every namespace file is opened first (the paths are host paths).  An exec joins
    the container's user namespace last: the others may belong to the host's user
    namespace (a network namespace made by the engine), which this process, root in
    the host's, can join only before it enters the container's."""
    flags = 0
    opened: list[tuple[str, int, int]] = []
    try:
        for ns in namespaces:
            kind = ns.get("type", "")
            flag = sc.NAMESPACE_FLAGS.get(kind)
            if flag is None:
                raise ValueError(f"unknown namespace type {kind!r}")
            path = ns.get("path")
            if pid is not None:
                path = f"/proc/{pid}/ns/{sc.NAMESPACE_FILES[kind]}"
                if _same_ns(path, f"/proc/self/ns/{sc.NAMESPACE_FILES[kind]}"):
                    continue
            if path:
                opened.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC), flag))
            else:
                flags |= flag
        if pid is not None:
            opened.sort(key=lambda o: o[0] == "user")
        for _kind, fd, flag in opened:
            sc.setns(fd, flag)
    finally:
        for _kind, fd, _flag in opened:
            os.close(fd)
    return flags


def _new_user_namespace(req: dict[str, Any], sync: int) -> None:
    """Unshare a new user namespace, have the caller (root in the parent namespace) write
    its uid and gid maps, then become its root: the other namespaces, made after this,
    belong to it."""
    go = int(req["userns_fd"])
    sc.unshare(sc.CLONE_NEWUSER)
    _send(sync, "userns")
    got = os.read(go, 1)
    os.close(go)
    if got != b"m":
        _fail(sync, "container init: the runtime did not write the user namespace's id maps", 1)
    _become_root()


def _become_root() -> None:
    """Root of the user namespace just entered (ids 0, no supplementary groups)."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.setgroups([])
    sc.set_dumpable(True)  # its /proc/self files are the namespace root's again


def _same_ns(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


_NS_ORDER = {"user": 0, "ipc": 1, "uts": 2, "network": 3, "pid": 4, "cgroup": 5, "mount": 6}


def _ordered(namespaces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # user first (it grants the rest), mount last (paths of the others are host paths)
    return sorted(namespaces, key=lambda n: _NS_ORDER.get(n.get("type", ""), 9))


def _connect_console(path: str | None) -> Any:
    """The caller's console socket, connected while its path is still reachable (before
    setns into another mount namespace or pivot_root)."""
    if not path:
        return None
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def _setup_terminal(console: Any, size: dict[str, Any] | None) -> None:
    """A new pty of the container's devpts as stdio; its master goes to ``console``."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    if size:
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(size.get("height", 0)), int(size.get("width", 0)), 0, 0))
    if console is not None:
        import socket

        socket.send_fds(console, [b"/dev/ptmx"], [master])
        console.close()
    os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _close_on_exec(first: int) -> None:
    """Whatever descriptors the caller's process leaked to us end here, not in the container."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        os.closerange(first, 4096)
        return
    for fd in fds:
        if fd >= first:
            try:  # noqa: SIM105 - no contextlib import on the init's path
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, already closed


def _exec(process: dict[str, Any], sync: int, seccomp: tuple[bytes, int] | None) -> None:
    from pallet.runtime.process import ExecError, apply_identity, lookup

    args = list(process.get("args") or [])
    env = list(process.get("env") or [])
    cwd = process.get("cwd") or "/"
    try:
        path = lookup(args, env, cwd)
    except ExecError as e:
        _fail(sync, str(e), e.code)
    apply_identity(process, seccomp)
    try:
        os.chdir(cwd)
    except OSError as e:
        _fail(sync, f"chdir to cwd ({cwd!r}) set in config.json failed: {os.strerror(e.errno or 0)}", 126)
    for s in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(s, _signal.SIG_DFL)
    _close_on_exec(3 + int(process.get("preserveFds") or 0))
    envd: dict[str, str] = {}
    for item in env:
        k, _, v = item.partition("=")
        envd[k] = v
    try:
        os.execve(path, args, envd)
    except OSError as e:
        code = 127 if e.errno == 2 else 126
        _fail(sync, f'exec: "{args[0]}": {os.strerror(e.errno or 0).lower()}', code)


def _cgroup_waiter(req: dict[str, Any], sync: int) -> Any:
    """A function that waits (once) until the caller has moved this process into the
    container's cgroup, then unshares the cgroup namespace if the spec asks for a new one."""
    join_fd = int(req.get("join_fd", -1))
    done = [join_fd < 0]
    unshare_cgroup = bool(req.get("late_cgroupns"))

    def wait() -> None:
        if done[0]:
            return
        done[0] = True
        got = os.read(join_fd, 1)
        os.close(join_fd)
        if not got:
            _fail(sync, "container init: the runtime did not place the container in its cgroup", 1)
        if unshare_cgroup:
            sc.unshare(sc.CLONE_NEWCGROUP)

    return wait


def _container(req: dict[str, Any], sync: int, seccomp: tuple[bytes, int] | None,
               fifo_fd: int, console: Any) -> None:
    """pid 1 of the new container: root filesystem, identity, wait for start, exec."""
    from pallet.runtime.process import ExecError, lookup, set_oom_score_adj, set_rlimits

    spec = req["spec"]
    process = spec.get("process") or {}
    kinds = {n.get("type") for n in (spec.get("linux") or {}).get("namespaces") or []}
    os.setsid()
    joined = _cgroup_waiter(req, sync)
    if process.get("terminal"):
        # after pivot_root nothing more can be imported: load what the terminal needs now
        import fcntl  # noqa: F401
        import socket  # noqa: F401
        import struct  # noqa: F401
        import termios  # noqa: F401
    if "mount" in kinds:
        from pallet.runtime.rootfs import setup_rootfs

        setup_rootfs(spec, req["bundle"], joined)
    joined()
    if "uts" in kinds and spec.get("hostname"):
        sc.sethostname(spec["hostname"])
    if process.get("terminal"):
        _setup_terminal(console, process.get("consoleSize"))
    set_rlimits(list(process.get("rlimits") or []))
    set_oom_score_adj(process.get("oomScoreAdj"))
    cwd = process.get("cwd") or "/"
    if not os.path.isdir(cwd):
        os.makedirs(cwd, exist_ok=True)
    try:
        lookup(list(process.get("args") or []), list(process.get("env") or []), cwd)
    except ExecError as e:
        _fail(sync, str(e), e.code)
    _send(sync, "ready")
    if fifo_fd >= 0:
        w = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(w, b"0")
        os.close(w)
        os.close(fifo_fd)
    _exec(process, sync, seccomp)


def main() -> None:
    """The re-executed init: the request comes marshalled on REQ_FD."""
    req_fd, sync = int(sys.argv[1]), int(sys.argv[2])
    try:
        req = _read_request(req_fd)
    except Exception as e:  # noqa: BLE001 - reported to the caller as one line
        _fail(sync, f"container init: {e}", 1)
    run(req, sync)


def run(req: dict[str, Any], sync: int) -> None:
    """Carry out ``req`` (see the module's docstring); never returns."""
    try:
        os.set_inheritable(sync, False)
        mode = req.get("mode", "create")
        spec = req.get("spec") or {}
        linux = spec.get("linux") or {}
        process: dict[str, Any] = dict(
            (req.get("process") if mode == "exec" else spec.get("process")) or {}
        )
        seccomp = req.get("seccomp")  # (program, flags), compiled by the caller
        namespaces = _ordered(list(linux.get("namespaces") or []))
        # nothing can be imported once inside the container's mount namespace
        import pallet.runtime.process  # noqa: F401
        if process.get("terminal"):
            import fcntl  # noqa: F401
            import socket  # noqa: F401
            import struct  # noqa: F401
            import termios  # noqa: F401
        console = _connect_console(req.get("console_socket")) if process.get("terminal") else None
        if mode == "exec":
            _enter_namespaces(namespaces, int(req["pid"]))
            flags = 0
        else:
            flags = _enter_namespaces(namespaces, None)
            if any(n.get("type") == "user" and n.get("path") for n in namespaces):
                _become_root()  # a user namespace joined by path
        fifo_fd = -1
        if mode == "create" and req.get("fifo"):
            fifo_fd = os.open(req["fifo"], os.O_PATH | os.O_CLOEXEC)
        if mode == "create" and "join_fd" in req and flags & sc.CLONE_NEWCGROUP:
            # the cgroup namespace is made by pid 1 once it is in the container's cgroup
            flags &= ~sc.CLONE_NEWCGROUP
            req["late_cgroupns"] = True
        if flags & sc.CLONE_NEWUSER:
            import pallet.runtime.rootfs  # noqa: F401 - read while still the host's root
            flags &= ~sc.CLONE_NEWUSER
            _new_user_namespace(req, sync)
        if flags:
            sc.unshare(flags)
    except Exception as e:  # noqa: BLE001 - reported to the caller as one line
        _fail(sync, f"container init: {e}", 1)
    pid = os.fork()
    if pid:
        _send(sync, f"pid {pid}")
        os._exit(0)
    try:
        if mode == "exec":
            os.setsid()
            if process.get("terminal"):
                _setup_terminal(console, process.get("consoleSize"))
            from pallet.runtime.process import set_rlimits

            set_rlimits(list(process.get("rlimits") or []))
            _exec(process, sync, seccomp)
        else:
            _container(req, sync, seccomp, fifo_fd, console)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        msg = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.filename else str(e)
        _fail(sync, f"container init: {msg}", 1)


if __name__ == "__main__":
    main()
