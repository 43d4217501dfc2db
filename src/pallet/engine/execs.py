"""``exec``: run another process in a running container, as a child of this process."""

from __future__ import annotations

import contextlib
import json
import os
import select
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pallet.engine.state import Container
from pallet.errors import Conflict

if TYPE_CHECKING:
    from pallet.engine.containers import ContainerService


@dataclass(frozen=True)
class ExecOptions:
    command: tuple[str, ...]
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    env: tuple[str, ...] = ()
    user: str = ""
    workdir: str = ""
    privileged: bool = False


def process_for(c: Container, base: dict[str, Any], opts: ExecOptions) -> dict[str, Any]:
    """The OCI process of the exec, from the container's own (caps, rlimits, env) and the flags."""
    from pallet.engine.users import resolve_in_rootfs

    proc = dict(base)
    env: dict[str, str] = {}
    for e in [*proc.get("env", []), *opts.env]:
        k, _, v = e.partition("=")
        env[k] = v
    if opts.tty:
        env.setdefault("TERM", "xterm")
    if opts.user:
        u = resolve_in_rootfs(opts.user, c.rootfs)
        proc["user"] = {"uid": u.uid, "gid": u.gid, "additionalGids": list(u.additional_gids)}
        if not any(e.startswith("HOME=") for e in opts.env):
            env["HOME"] = u.home
    proc["env"] = [f"{k}={v}" for k, v in env.items()]
    proc["args"] = list(opts.command)
    proc["terminal"] = opts.tty
    if opts.workdir:
        proc["cwd"] = opts.workdir
    proc.pop("consoleSize", None)
    return proc


def run_exec(svc: ContainerService, c: Container, opts: ExecOptions) -> int:
    from pallet.engine.foreground import (
        _drain,
        _raw_terminal,
        _reap,
        _Signals,
        _write_all,
        exit_code,
    )
    from pallet.engine.lifecycle import check_command, close_console, console_socket, receive_master
    from pallet.engine.spec_builder import HostMount
    from pallet.linux.syscalls import set_child_subreaper

    if c.state.status == "paused":
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
    if not c.state.running or c.state.status == "restarting":
        raise Conflict(f"container {c.id} is not running")
    spec = json.loads((c.bundle / "config.json").read_bytes())
    proc = process_for(c, spec["process"], opts)
    mounts = [HostMount(m["destination"], m.get("type", ""), m.get("source", ""), ()) for m in spec.get("mounts", [])]
    from dataclasses import replace

    check_command(replace(c, spec=replace(c.spec, path=opts.command[0])), c.rootfs, proc["env"], mounts)
    rt = svc._runtime(c)
    set_child_subreaper()
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        if opts.tty and not opts.detach:
            sock, path = console_socket(c.dir)
            try:
                pid = rt.exec(c.id, proc, stdin=devnull, stdout=devnull, stderr=devnull,
                              console_socket=path, detach=True)
            except BaseException:
                close_console(sock, path)
                raise
            master: int | None = receive_master(sock, path)
        else:
            master = None
            if opts.detach:
                pid = rt.exec(c.id, proc, stdin=devnull, stdout=devnull, stderr=devnull, detach=True)
                return 0
            pid = rt.exec(c.id, proc, stdin=0 if opts.interactive else devnull, stdout=1, stderr=2, detach=True)
    finally:
        os.close(devnull)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    try:
        with _Signals(pid, master, wake_w):
            if master is None:
                while True:
                    st = _reap(pid)
                    if st is not None:
                        return exit_code(st)
                    select.select([wake_r], [], [], 1.0)
                    _drain(wake_r)
            stdin_open = opts.interactive
            status = None
            with _raw_terminal(0) if stdin_open else contextlib.nullcontext():
                master_open = True
                while True:
                    if status is None:
                        status = _reap(pid)
                    if status is not None and not master_open:
                        return exit_code(status)
                    fds = [wake_r] + ([master] if master_open else []) + ([0] if stdin_open else [])
                    ready, _, _ = select.select(fds, [], [], 0.2)
                    if status is not None and not ready:
                        return exit_code(status)
                    for fd in ready:
                        if fd == wake_r:
                            _drain(wake_r)
                        elif fd == master:
                            try:
                                data = os.read(master, 65536)
                            except OSError:
                                data = b""
                            if not data:
                                master_open = False
                            else:
                                _write_all(1, data)
                        else:
                            data = os.read(0, 65536)
                            if not data:
                                stdin_open = False
                            else:
                                _write_all(master, data)
    finally:
        os.close(wake_r)
        os.close(wake_w)
        if master is not None:
            with contextlib.suppress(OSError):
                os.close(master)
