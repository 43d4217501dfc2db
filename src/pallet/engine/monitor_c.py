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
