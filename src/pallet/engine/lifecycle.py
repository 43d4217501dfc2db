"""Starting a container: its root filesystem and OCI bundle, then a monitor (detached) or this process.

``prepare`` mounts the rootfs, resolves the user and the mounts, checks that the
command exists (Docker's 127/126) and writes ``bundle/config.json``.
``start_detached`` hands the container to a monitor process and returns once it
runs; :mod:`pallet.engine.foreground` runs it as a child of the CLI itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from pathlib import Path

from pallet.engine.paths import lookup_path, secure_join
from pallet.engine.spec_builder import HostMount, bind, command, finish_spec, process_env, tmpfs
from pallet.engine.state import Container, atomic_write, now_ns, write_file
from pallet.errors import (
    CommandCannotRun,
    CommandNotFound,
    InvalidArgument,
    PalletError,
    RuntimeFailure,
)
from pallet.oci.record import replace

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    import socket
    from typing import Any

    from pallet.config import Config
    from pallet.engine.containers import ContainerService
    from pallet.engine.volumes import VolumeService


def hostname_of(c: Container) -> str:
    if c.spec.hostname:
        return c.spec.hostname
    if c.spec.network_mode == "host":
        return os.uname().nodename
    return c.id[:12]


def _under_mount(path: str, mounts: list[HostMount]) -> bool:
    return any(path == m.destination or path.startswith(m.destination.rstrip("/") + "/") for m in mounts)


def check_command(c: Container, rootfs: Path, env: list[str], mounts: list[HostMount]) -> None:
    """Docker's exit codes before anything runs: 127 not found, 126 cannot execute."""
    cmd = c.spec.path
    if cmd.startswith("/") and _under_mount(cmd, mounts):
        return
    path_env = next((e[5:] for e in env if e.startswith("PATH=")), "")
    found = lookup_path(rootfs, cmd, path_env)
    if found is None:
        if "/" in cmd:
            raise CommandNotFound(
                f'failed to create task for container: exec: "{cmd}": stat {cmd}: no such file or directory'
            )
        raise CommandNotFound(
            f'failed to create task for container: exec: "{cmd}": executable file not found in $PATH'
        )
    try:
        st = os.stat(found)
    except OSError:
        raise CommandNotFound(f'failed to create task for container: exec: "{cmd}": no such file or directory') from None
    if stat.S_ISDIR(st.st_mode) or not (st.st_mode & 0o111):
        raise CommandCannotRun(f'failed to create task for container: exec: "{cmd}": permission denied')


def _host_mounts(svc: ContainerService, c: Container, rootfs: Path) -> list[HostMount]:
    out: list[HostMount] = []
    vs: VolumeService | None = None
    for m in c.spec.mounts:
        prop = next((o for o in m.options if o in ("shared", "rshared", "slave", "rslave", "private", "rprivate")), "rprivate")
        if m.type == "bind":
            if not os.path.exists(m.source):
                raise InvalidArgument(
                    f'invalid mount config for type "bind": bind source path does not exist: {m.source}'
                )
            out.append(bind(m.source, m.destination, m.read_only, prop))
        elif m.type == "volume":
            from pallet.engine.volumes import VolumeService, copy_up

            vs = vs or VolumeService(svc.config)
            vol = vs.create(m.source)
            if not m.nocopy:
                with contextlib.suppress(OSError):
                    copy_up(secure_join(rootfs, m.destination), vol.mountpoint)
            out.append(bind(str(vol.mountpoint), m.destination, m.read_only, prop))
        elif m.type == "tmpfs":
            out.append(tmpfs(m.destination, m.options, m.read_only))
    return out


def _etc_files(svc: ContainerService, c: Container, hostname: str, ip: str = "") -> list[HostMount]:
    from pallet.engine.spec_builder import hosts_file, resolv_conf

    # written in place: nothing reads them before the container starts
    write_file(c.dir / "hostname", (hostname + "\n").encode())
    write_file(c.dir / "hosts", hosts_file(hostname, ip, c.spec.extra_hosts).encode())
    try:
        host_resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    if c.spec.network_mode == "host" and not c.spec.dns:
        text = host_resolv
    else:
        text = resolv_conf(host_resolv, c.spec.dns)
    write_file(c.dir / "resolv.conf", text.encode())
    taken = {m.destination for m in c.spec.mounts}
    return [
        bind(str(c.dir / n), f"/etc/{n}", c.spec.read_only)
        for n in ("hostname", "hosts", "resolv.conf")
        if f"/etc/{n}" not in taken
    ]


def prepare(svc: ContainerService, c: Container) -> tuple[Container, Path]:
    """Mount the rootfs and write the bundle; on failure leave nothing mounted."""
    from pallet.engine.rootfs import is_mountpoint, unmount_all

    rootfs = c.rootfs
    if not is_mountpoint(rootfs):
        images = svc.images()
        # a --rm container's writes go with it: its overlay need not be synced, not even
        # when it is unmounted (which would sync the whole filesystem under it)
        images.snapshots.volatile = c.spec.auto_remove
        images.mount(svc.image(c.spec.image_id, c.spec.image), c.dir / "upper", c.dir / "work", rootfs)
    c = svc.store.update_state(c, mounted=True)
    try:
        bundle = write_bundle(svc, c, rootfs)
    except BaseException:
        unmount_all(rootfs)
        svc.store.update_state(c, mounted=False)
        raise
    return c, bundle


def write_bundle(svc: ContainerService, c: Container, rootfs: Path) -> Path:
    from pallet.engine.users import resolve_in_rootfs
    from pallet.oci.spec import default_spec

    user = resolve_in_rootfs(c.spec.user, rootfs)
    hostname = hostname_of(c)
    env = process_env(c.spec, user, hostname)
    mounts = _host_mounts(svc, c, rootfs)
    netns_path, ip = _network_setup(svc, c)
    mounts += _etc_files(svc, c, hostname, ip)
    if netns_path:
        from pallet.engine import networks as _networks

        _networks.write_hosts(svc.config, c)
    if c.spec.init:
        from pallet.engine.create_spec import init_binary
        from pallet.engine.spec_builder import INIT_PATH

        mounts.append(bind(init_binary(), INIT_PATH, True))
    check_command(c, rootfs, env, mounts)
    cwd = c.spec.working_dir or "/"
    wd = secure_join(rootfs, cwd)
    if not wd.exists():
        wd.mkdir(parents=True, mode=0o755)
        os.chown(wd, user.uid, user.gid)
    base = default_spec(
        command(c.spec),
        env=env,
        cwd=cwd,
        uid=user.uid,
        gid=user.gid,
        additional_gids=list(user.additional_gids),
        hostname=hostname,
        terminal=c.spec.tty,
        readonly_rootfs=c.spec.read_only,
        netns_path=netns_path,
    )
    spec = finish_spec(base, c.spec, rootfs=str(rootfs), mounts=mounts, container_id=c.id,
                       name=c.name, network_mode=c.spec.network_mode)
    if c.spec.network_mode == "host" and not c.spec.hostname:
        # the host's network comes with the host's name
        spec["hostname"] = hostname
    # limits and Docker's security defaults (seccomp, capabilities, devices) apply to every
    # container, flags or not; its own cgroup is where update/stats/rm look for it
    from pallet.engine.resources import apply_to_spec

    spec.setdefault("linux", {}).setdefault("cgroupsPath", f"/pallet/{c.id}")
    spec = apply_to_spec(spec, c.spec.resources)
    if c.spec.runtime == "vm":
        # a VM caches its root image per image; it joins its network namespace with a tap
        from pallet.vm.bundle import engine_annotations

        spec.setdefault("annotations", {}).update(engine_annotations(c.spec.image_id, c.spec.network_mode))
    bundle = c.bundle
    bundle.mkdir(exist_ok=True)
    atomic_write(bundle / "config.json", json.dumps(spec).encode())
    return bundle


def _network_setup(svc: ContainerService, c: Container) -> tuple[str | None, str]:
    if c.spec.network_mode in ("none", "host"):
        return None, ""
    try:
        from pallet.engine import networks  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise InvalidArgument(f"network {c.spec.network_mode} not found") from None
    res = networks.setup(svc.config, c)
    return getattr(res, "netns_path", None), str(getattr(res, "ip", "") or "")


# -- detached start -------------------------------------------------------------------------


def warm_cgroup_migrations(config: Config, runtime: str | None, isolation: str | None) -> None:
    """Before a container is created and started at once (``run``): with pallet's runtime,
    set off the wait its move into a cgroup costs, so that it is over by then (see
    :func:`pallet.runtime.pallet_runtime.warm_cgroup_migrations`)."""
    if (runtime or config.runtime or "pallet") == "pallet" and isolation != "vm":
        from pallet.runtime.pallet_runtime import warm_cgroup_migrations as warm

        warm()


def monitor_argv(svc: ContainerService, c: Container, sync_fd: int) -> list[str]:
    from pallet.engine.monitor_c import c_monitor_argv

    argv = c_monitor_argv(svc.config, c, sync_fd)
    if argv:
        return argv
    return [sys.executable, "-m", "pallet.engine.monitor",
            str(svc.config.root), str(svc.config.run_root), c.id, str(sync_fd)]


def await_monitor(svc: ContainerService, c: Container, timeout: float = 15.0) -> Container:
    """Wait until the monitor of a stopped container has finished its cleanup (unmounting...)."""
    import time

    from pallet.engine.containers import pid_alive

    mon = c.state.monitor_pid
    if not mon or mon == os.getpid() or c.state.running:
        return c
    deadline = time.monotonic() + timeout
    delay = 0.002
    while pid_alive(mon, c.state.monitor_start) and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    return svc.refresh(svc.store.load(c.id))


@contextlib.contextmanager
def start_lock(c: Container) -> Any:
    """Serializes starts of one container (two `start`s at once must not run it twice)."""
    import fcntl

    fd = os.open(c.dir / "start.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def start_detached(svc: ContainerService, c: Container) -> Container:
    with start_lock(c):
        return _start_detached(svc, c)


def _start_detached(svc: ContainerService, c: Container) -> Container:
    c = svc.refresh(svc.store.load(c.id))
    if c.state.running:
        return c
    c = await_monitor(svc, c)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(c.dir / "stopped-by-user")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(c.dir / "monitor.json")
    c, bundle = prepare(svc, c)
    r, w = os.pipe()
    try:
        os.set_inheritable(w, True)
        argv = monitor_argv(svc, c, w)
        from pallet.engine.monitor_c import spawn_adopting

        adopted = spawn_adopting(svc.config, c, bundle, argv, w)
        devnull = os.open(os.devnull, os.O_RDWR) if adopted is None else -1
        try:
            mpid = adopted if adopted is not None else os.posix_spawn(
                argv[0], argv, os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                              (os.POSIX_SPAWN_DUP2, devnull, 2)],
                setsid=True,
            )
        finally:
            if devnull >= 0:
                os.close(devnull)
        os.close(w)
        w = -1
        msg = _read_all(r)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    # reap the monitor's launcher status later: it lives on as its own session
    try:
        report = json.loads(msg or b"{}")
    except ValueError:
        report = {}
    if "pid" not in report:
        err = _runtime_log_error(c) or str(report.get("error") or "the container monitor failed to start")
        code = int(report.get("code") or 125)
        _mark_failed(svc, c, err, code)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(mpid, 0)
        if code == 127:
            raise CommandNotFound(err)
        if code == 126:
            raise CommandCannotRun(err)
        raise RuntimeFailure(err)
    from pallet.linux.proc import start_time as _pid_start

    with svc.store.locked(c.id):
        cur = svc.store.load(c.id)
        st = cur.state
        if int(report.get("seq", 0)) >= st.seq:
            st = replace(
                st, status="running", pid=int(report["pid"]), pid_start=int(report.get("pid_start", 0)),
                started_at=int(report.get("started_at", now_ns())), finished_at=0, exit_code=0, error="",
                monitor_pid=mpid, monitor_start=_pid_start(mpid), stopped_by_user=False,
                seq=int(report.get("seq", 0)), mounted=True,
                oom_killed=False,
            )
        else:
            st = replace(st, monitor_pid=mpid, monitor_start=_pid_start(mpid), stopped_by_user=False)
        c = svc.store.save_state(cur, st)
    return svc.refresh(c)


def _runtime_log_error(c: Container) -> str:
    from pallet.runtime.oci_cli import _last_error

    msg = _last_error(c.dir / "runtime.log")
    return f"OCI runtime create failed: {msg}" if msg else ""


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def _mark_failed(svc: ContainerService, c: Container, err: str, code: int) -> None:
    svc.cleanup(c)
    with svc.store.locked(c.id):
        cur = svc.store.load(c.id)
        svc.store.save_state(cur, replace(cur.state, status="created" if not cur.state.started_at else "exited",
                                          exit_code=code, error=err, pid=0, mounted=False))


def console_socket(dirpath: Path) -> tuple[socket.socket, str]:
    """A listening unix socket for the runtime to send a pty master on (short path)."""
    import socket
    import tempfile

    d = tempfile.mkdtemp(prefix="pallet-tty-")
    path = os.path.join(d, "c.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    del dirpath
    return s, path


def close_console(s: socket.socket, path: str) -> None:
    """Drop a console socket that will not be used (the runtime failed before sending)."""
    s.close()
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


def receive_master(s: socket.socket, path: str, timeout: float = 10) -> int:
    import socket

    s.settimeout(timeout)
    try:
        conn, _ = s.accept()
    except TimeoutError:
        close_console(s, path)
        raise RuntimeFailure("the runtime did not send the container's terminal") from None
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    s.close()
    with contextlib.suppress(OSError):
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    if not fds:
        raise RuntimeFailure("the runtime sent no terminal")
    return fds[0]


def runtime_error(e: BaseException) -> PalletError:
    if isinstance(e, PalletError):
        return e
    return RuntimeFailure(f"OCI runtime create failed: {e}")


def report_dict(**kw: Any) -> dict[str, Any]:
    return kw
