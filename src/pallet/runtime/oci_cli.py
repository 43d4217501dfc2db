"""A runc-compatible runtime driven through its command line (runc, crun, or any binary
that answers runc's verbs and flags)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from pallet.errors import CommandCannotRun, CommandNotFound, ContainerNotFound, RuntimeFailure


class OCICLIRuntime:
    def __init__(self, name: str, state_root: Path) -> None:
        import shutil

        path = name if os.path.isabs(name) else shutil.which(name)
        if not path:
            raise RuntimeFailure(f"OCI runtime {name!r} not found in $PATH")
        self.name = name
        self.argv = [path]
        self.root = state_root

    def _run(self, *args: str, stdin: Any = None, stdout: Any = None, stderr: Any = None,
             check: bool = True) -> subprocess.CompletedProcess[bytes]:
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f".log-{os.getpid()}"
        argv = [*self.argv, "--root", str(self.root), "--log", str(log), "--log-format", "json", *args]
        p = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=stderr)
        if check and p.returncode != 0:
            msg = _last_error(log)
            log.unlink(missing_ok=True)
            if "does not exist" in msg or "not exist" in msg:
                raise ContainerNotFound(args[-1])
            if "executable file not found" in msg or "no such file or directory" in msg and "exec" in msg:
                raise CommandNotFound(msg)
            if "permission denied" in msg and "exec" in msg:
                raise CommandCannotRun(msg)
            raise RuntimeFailure(f"OCI runtime {args[0]} failed: {msg or 'exit status ' + str(p.returncode)}")
        log.unlink(missing_ok=True)
        return p

    def create(self, id: str, bundle: str, *, stdin: Any = None, stdout: Any = None, stderr: Any = None,
               console_socket: str | None = None, pid_file: str | None = None) -> int:
        pf = pid_file or str(Path(bundle) / "pid")
        args = ["create", "--bundle", str(bundle), "--pid-file", pf]
        if console_socket:
            args += ["--console-socket", console_socket]
        self._run(*args, id, stdin=stdin, stdout=stdout, stderr=stderr)
        return int(Path(pf).read_text().strip())

    def start(self, id: str) -> None:
        self._run("start", id, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def state(self, id: str) -> dict[str, Any]:
        p = self._run("state", id, stdout=subprocess.PIPE)
        return dict(json.loads(p.stdout))

    def kill(self, id: str, sig: int | str = 15, all: bool = False) -> None:
        args = ["kill"] + (["--all"] if all else []) + [id, str(int(sig)) if isinstance(sig, int) else sig]
        self._run(*args, stdout=subprocess.DEVNULL)

    def delete(self, id: str, force: bool = False) -> None:
        self._run("delete", *(["--force"] if force else []), id, stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, check=False)

    def pause(self, id: str) -> None:
        self._run("pause", id)

    def resume(self, id: str) -> None:
        self._run("resume", id)

    def exec(self, id: str, process: dict[str, Any], *, stdin: Any = None, stdout: Any = None,
             stderr: Any = None, console_socket: str | None = None, detach: bool = False) -> int:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=self.root) as f:
            json.dump(process, f)
            proc_path = f.name
        pid_file = proc_path + ".pid"
        try:
            args = ["exec", "--process", proc_path, "--pid-file", pid_file, "--detach"]
            if console_socket:
                args += ["--console-socket", console_socket]
            self._run(*args, id, stdin=stdin, stdout=stdout, stderr=stderr)
            return int(Path(pid_file).read_text().strip())
        finally:
            for p in (proc_path, pid_file):
                Path(p).unlink(missing_ok=True)


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("level") in ("error", "fatal"):
            return str(d.get("msg", "")).strip()
    return ""
