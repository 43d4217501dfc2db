"""The monitor of a detached container (like conmon): ``python -m pallet.engine.monitor ROOT RUN_ROOT ID SYNC_FD``.

It is the container's parent (a child subreaper), so it can wait for it.  It
creates and starts the container through the runtime, tells the CLI the pid on
SYNC_FD (one JSON object, then EOF), copies stdout/stderr (or the pty) into the
json-file log, writes each change of state to ``monitor.json`` (a sequence
number the engine merges), honours the restart policy, and on the final exit
releases what the container held (runtime state, rootfs mount; the record too
for ``--rm``) and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any


class Monitor:
    def __init__(self, root: Path, run_root: Path, cid: str) -> None:
        self.root = root
        self.run_root = run_root
        self.cid = cid
        self.dir = root / "containers" / cid
        doc = json.loads((self.dir / "container.json").read_bytes())
        self.spec: dict[str, Any] = doc["Spec"]
        try:
            st = json.loads((self.dir / "state.json").read_bytes())
        except (OSError, ValueError):
            st = {}
        self.seq = int(st.get("seq", 0))
        self.restart_count = int(st.get("restart_count", 0))
        self.started_at = 0
        self.pid = 0
        self.pid_start = 0
        self.sigr, self.sigw = os.pipe()
        os.set_blocking(self.sigw, False)
        self.rt: Any = None
        self.stdin_closed = False
        self.asock: Any = None
        self.start_ns = 0

    # -- reports --------------------------------------------------------------------

    def report(self, **fields: Any) -> dict[str, Any]:
        self.seq += 1
        doc = {"seq": self.seq, "restart_count": self.restart_count, **fields}
        tmp = self.dir / f".monitor.json.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.dir / "monitor.json")
        return doc

    def runtime(self) -> Any:
        if self.rt is None:
            from pallet.config import Config
            from pallet.engine.runtimes import open_runtime

            cfg = Config(root=self.root, run_root=self.run_root, runtime=self.spec.get("runtime", "pallet"))
            self.rt = open_runtime(cfg, self.spec.get("runtime", "pallet"))
        return self.rt

    # -- one run of the container ------------------------------------------------------

    def launch(self) -> tuple[int, int | None, int | None, int | None]:
        """Create and start; returns (pid, stdout fd, stderr fd or None, stdin write end)."""
        rt = self.runtime()
        devnull = os.open(os.devnull, os.O_RDWR)
        stdin_w = None
        tty = bool(self.spec.get("tty"))
        try:
            if tty:
                from pallet.engine.lifecycle import close_console, console_socket, receive_master

                sock, path = console_socket(self.dir)
                try:
                    pid = rt.create(self.cid, str(self.dir / "bundle"), stdin=devnull, stdout=devnull,
                                    stderr=devnull, console_socket=path)
                except BaseException:
                    close_console(sock, path)
                    raise
                master = receive_master(sock, path)
                self.start_ns = time.time_ns()
                rt.start(self.cid)
                return pid, master, None, None
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            stdin = devnull
            if self.spec.get("open_stdin"):
                stdin, stdin_w = os.pipe()
            try:
                pid = rt.create(self.cid, str(self.dir / "bundle"), stdin=stdin, stdout=out_w, stderr=err_w)
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                raise
            finally:
                os.close(out_w)
                os.close(err_w)
                if stdin != devnull:
                    os.close(stdin)
            self.start_ns = time.time_ns()
            rt.start(self.cid)
            return pid, out_r, err_r, stdin_w
        finally:
            os.close(devnull)

    def attach_socket(self) -> Any:
        import socket

        from pallet.engine.monitor_c import attach_name

        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind("\0" + attach_name(self.cid))
            s.listen(4)
        except OSError:
            s.close()
            return None
        s.setblocking(False)
        return s

    def pump(self, pid: int, out: int | None, err: int | None, stdin_w: int | None = None) -> int:
        """Copy output into the log until the container exits; its wait status."""
        from pallet.engine.logs import LogWriter

        log = LogWriter(self.dir / f"{self.cid}-json.log")
        streams = {fd: name for fd, name in ((out, "stdout"), (err, "stderr")) if fd is not None}
        tty = bool(self.spec.get("tty"))
        target = out if tty else stdin_w
        asock = self.asock
        client: Any = None
        status: int | None = None
        deadline = 0.0
        try:
            while streams or status is None:
                if status is None:
                    status = self.reap(pid)
                    if status is not None:
                        deadline = time.monotonic() + 2.0
                if status is not None and (not streams or time.monotonic() > deadline):
                    break
                fds: list[Any] = [*streams, self.sigr]
                if asock is not None:
                    fds.append(asock)
                if client is not None:
                    fds.append(client)
                ready, _, _ = select.select(fds, [], [], 0.5 if status is None else 0.05)
                for fd in ready:
                    if fd is asock:
                        with contextlib.suppress(OSError):
                            if client is not None:
                                client.close()
                            client = asock.accept()[0]
                        continue
                    if fd is client:
                        data = b""
                        with contextlib.suppress(OSError):
                            data = client.recv(65536)
                        if data and target is not None:
                            with contextlib.suppress(OSError):
                                os.write(target, data)
                        elif not data:
                            client.close()
                            client = None
                            if not tty and stdin_w is not None and target is not None:
                                os.close(stdin_w)
                                target = None
                                self.stdin_closed = True
                        continue
                    if fd == self.sigr:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.sigr, 512)
                        continue
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    if data:
                        log.write(streams[fd], data)
                    else:
                        os.close(fd)
                        del streams[fd]
        finally:
            for fd in streams:
                os.close(fd)
            if client is not None:
                client.close()
            log.close()
        return status if status is not None else 255 << 8

    def reap(self, pid: int) -> int | None:
        while True:
            try:
                got, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return self._poll_foreign(pid)
            if got == 0:
                return None
            if got == pid:
                return status

    def _poll_foreign(self, pid: int) -> int | None:
        """The container's process is not our child (e.g. a VM's shim): ask the runtime."""
        from pallet.engine.containers import pid_alive

        if pid_alive(pid, self.pid_start):
            return None
        w = getattr(self.runtime(), "wait", None)
        if w is not None:
            try:
                code = int(w(self.cid, timeout=1))
                return code << 8 if code < 128 else (code - 128)
            except Exception:
                return 255 << 8
        return 255 << 8

    # -- the whole life ----------------------------------------------------------------

    def run(self, sync_fd: int) -> int:
        from pallet.errors import PalletError
        from pallet.linux.proc import start_time as _pid_start

        signal.set_wakeup_fd(self.sigw)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if self.spec.get("open_stdin") or self.spec.get("tty"):
            self.asock = self.attach_socket()
        policy = self.spec.get("restart_policy", "no")
        max_retry = int(self.spec.get("restart_max", 0))
        backoff = 0.1
        first = True
        while True:
            try:
                pid, out, err, stdin_w = self.launch()
            except BaseException as e:
                msg = str(e) if isinstance(e, PalletError) else f"OCI runtime create failed: {e}"
                code = getattr(e, "exit_code", 125)
                if first:
                    os.write(sync_fd, json.dumps({"error": msg, "code": code}).encode())
                    os.close(sync_fd)
                    return 1
                self.report(status="exited", pid=0, exit_code=code, error=msg,
                            finished_at=time.time_ns(), started_at=self.started_at)
                break
            self.pid = pid
            self.pid_start = _pid_start(pid)
            self.started_at = self.start_ns or time.time_ns()
            doc = self.report(status="running", pid=pid, pid_start=self.pid_start,
                              started_at=self.started_at, finished_at=0, exit_code=0, error="",
                              oom_killed=False)
            if first:
                os.write(sync_fd, json.dumps(doc).encode())
                os.close(sync_fd)
                first = False
            self.stdin_closed = False
            status = self.pump(pid, out, err, stdin_w)
            if stdin_w is not None and not self.stdin_closed:
                os.close(stdin_w)
            code = os.waitstatus_to_exitcode(status)
            if code < 0:
                code = 128 - code
            finished = time.time_ns()
            ran = (finished - self.started_at) / 1e9
            stopped = (self.dir / "stopped-by-user").exists()
            restart = not stopped and (
                policy in ("always", "unless-stopped")
                or (policy == "on-failure" and code != 0 and (not max_retry or self.restart_count < max_retry))
            )
            self.report(status="restarting" if restart else "exited", pid=0, exit_code=code,
                        started_at=self.started_at, finished_at=finished)
            if not restart:
                break
            with contextlib.suppress(Exception):
                self.runtime().delete(self.cid, force=True)
            backoff = 0.1 if ran > 10 else min(backoff * 2, 60.0)
            end = time.monotonic() + backoff
            while time.monotonic() < end:
                if (self.dir / "stopped-by-user").exists():
                    break
                time.sleep(0.05)
            if (self.dir / "stopped-by-user").exists():
                self.report(status="exited", pid=0, exit_code=code, started_at=self.started_at,
                            finished_at=finished)
                break
            self.restart_count += 1
        self.finish()
        return 0

    def finish(self) -> None:
        """Release the container's runtime state and mounts; remove it for --rm."""
        from pallet.config import Config
        from pallet.engine.containers import ContainerService

        cfg = Config(root=self.root, run_root=self.run_root, runtime=self.spec.get("runtime", "pallet"))
        svc = ContainerService(cfg)
        try:
            c = svc.store.load(self.cid)
        except Exception:
            return
        c = svc.refresh(c)
        if self.spec.get("auto_remove"):
            svc.remove(c, force=True)
        else:
            svc.cleanup(c)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root, run_root, cid, sync = args[:4]
    try:
        from pallet.linux.syscalls import set_child_subreaper

        set_child_subreaper()
    except OSError:
        pass
    os.chdir("/")
    m = Monitor(Path(root), Path(run_root), cid)
    return m.run(int(sync))


if __name__ == "__main__":
    sys.exit(main())
