"""The compiled monitor (``cmonitor/pallet-monitor.c``), used when it was built and the runtime has a CLI.

``scripts/setup.sh`` compiles it with the machine's C compiler next to the
interpreter (``<venv>/bin/pallet-monitor``).  It drives a runc-compatible
runtime through its command line; when it is absent (no compiler) or the
runtime has no such command line (VM isolation), the Python monitor
(:mod:`pallet.engine.monitor`) does the same job.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pallet.config import Config
from pallet.engine.state import Container


def binary() -> Path | None:
    env = os.environ.get("PALLET_MONITOR")
    if env == "python":
        return None
    for p in ([Path(env)] if env else []) + [Path(sys.executable).parent / "pallet-monitor"]:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def attach_name(cid: str) -> str:
    """The abstract unix socket a monitor takes the container's stdin on."""
    return f"pallet-attach/{cid}"


def args_file(config: Config, c: Container, rt_argv: list[str]) -> str:
    """The monitor's directives (one per line, TAB-separated fields)."""
    s = c.spec
    log = str(c.dir / "runtime.log")
    base = [*rt_argv, "--log", log, "--log-format", "json"]
    exit_cmd = [sys.executable, "-m", "pallet.engine.cleanup", str(config.root), str(config.run_root), c.id]
    lines = [
        ["create", *base, "create", "--bundle", str(c.bundle), "--pid-file", str(c.dir / "pidfile"), c.id],
        ["start", *base, "start", c.id],
        ["delete", *base, "delete", "--force", c.id],
        ["exit", *exit_cmd],
        ["log", str(c.log_path)],
        ["status", str(c.dir / "monitor.json")],
        ["pidfile", str(c.dir / "pidfile")],
        ["stopfile", str(c.dir / "stopped-by-user")],
        ["tty", "1" if s.tty else "0"],
        ["stdin", "1" if s.open_stdin else "0"],
        ["restart", s.restart_policy, str(s.restart_max), str(c.state.restart_count)],
        ["seq", str(c.state.seq)],
        ["attach", attach_name(c.id)],
    ]
    if c.spec.runtime in ("pallet", "runc") and "--root" in rt_argv:
        # both keep the exec FIFO in their state directory: the monitor opens it itself,
        # as `start` would (the engine gives the spec no poststart hooks to run)
        root = rt_argv[rt_argv.index("--root") + 1]
        lines.append(["execfifo", f"{root}/{c.id}/exec.fifo"])
    for ln in lines:
        for f in ln:
            if "\t" in f or "\n" in f:
                raise ValueError(f"monitor argument with a tab or newline: {f!r}")
    return "".join("\t".join(ln) + "\n" for ln in lines)


def c_monitor_argv(config: Config, c: Container, sync_fd: int) -> list[str] | None:
    """The compiled monitor's command line, or None to use the Python monitor."""
    from pallet.engine.runtimes import runtime_argv

    exe = binary()
    if exe is None or c.spec.runtime not in ("runc", "crun", "pallet"):
        return None
    rt = runtime_argv(config, c.spec.runtime)
    if rt is None:
        return None
    path = c.dir / "monitor.args"
    from pallet.engine.state import atomic_write

    atomic_write(path, args_file(config, c, rt).encode())
    return [str(exe), str(path), str(sync_fd)]


def spawn_adopting(config: Config, c: Container, bundle: Path, argv: list[str], sync_fd: int) -> int | None:
    """Start the compiled monitor with the container already created: the monitor's pid.

    A forked child of the caller makes itself a child subreaper, creates the container
    through pallet's runtime in-process (no runtime command to start: ~50 ms less on
    ``run -d``), then becomes the monitor (exec), the parent of the container's pid 1.
    None when this does not apply (another runtime, the Python monitor, a caller with
    threads); failures of create reach ``sync_fd`` as the monitor's would."""
    threading = sys.modules.get("threading")
    if c.spec.runtime != "pallet" or not argv or argv[0] != str(binary()) or (
            threading is not None and threading.active_count() != 1):
        return None
    pid = os.fork()
    if pid == 0:
        _adopting_child(config, c, bundle, argv, sync_fd)  # never returns
    return pid


def _adopting_child(config: Config, c: Container, bundle: Path, argv: list[str], sync_fd: int) -> None:
    import json

    from pallet.engine.runtimes import open_runtime
    from pallet.errors import PalletError
    from pallet.linux.syscalls import set_child_subreaper

    rt: object = None
    created = False
    try:
        os.setsid()
        set_child_subreaper()
        rt = open_runtime(config, c.spec.runtime)
        devnull = os.open(os.devnull, os.O_RDWR)
        out_r = err_r = in_w = master = -1
        if c.spec.tty:
            from pallet.engine.lifecycle import close_console, console_socket, receive_master

            sock, path = console_socket(c.dir)
            try:
                pid = rt.create(c.id, str(bundle), stdin=devnull, stdout=devnull, stderr=devnull,  # type: ignore[attr-defined]
                                console_socket=path)
            except BaseException:
                close_console(sock, path)
                raise
            created = True
            master = receive_master(sock, path)
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            in_r = devnull
            if c.spec.open_stdin:
                in_r, in_w = os.pipe()
            pid = rt.create(c.id, str(bundle), stdin=in_r, stdout=out_w, stderr=err_w)  # type: ignore[attr-defined]
            created = True
            for fd in {out_w, err_w, in_r} - {devnull}:
                os.close(fd)
        for fd in (out_r, err_r, in_w, master):
            if fd >= 0:
                os.set_inheritable(fd, True)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.execv(argv[0], [*argv, str(pid), str(out_r), str(err_r), str(in_w), str(master)])
    except BaseException as e:  # noqa: BLE001 - reported to the caller like the monitor's errors
        code = e.exit_code if isinstance(e, PalletError) else 125
        msg = str(e) if isinstance(e, PalletError) else f"the container monitor failed to start: {e}"
        if created:
            import contextlib

            with contextlib.suppress(BaseException):  # the report below matters more
                rt.delete(c.id, force=True)  # type: ignore[attr-defined]
        try:
            os.write(sync_fd, json.dumps({"error": msg, "code": code}).encode())
        finally:
            os._exit(1)
    os._exit(1)
