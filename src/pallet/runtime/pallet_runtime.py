"""pallet's own OCI runtime: the runc verbs as methods, state under ``state_root/<id>``.

``create`` forks a child that runs :mod:`pallet.runtime.init` with the request
(the caller's modules are already loaded: no second interpreter to start) and
waits until the container's pid 1 is set up and blocked on its exec FIFO.  A
caller with other threads running re-executes the init instead (a fork copies
only the calling thread, and the locks the others hold).  See
:mod:`pallet.runtime.base` for who reaps the container's process.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import signal
import sys
import time
from pathlib import Path

from pallet.errors import (
    CommandCannotRun,
    CommandNotFound,
    ContainerNotFound,
    RuntimeFailure,
)
from pallet.linux.proc import start_time as _start_time
from pallet.runtime.base import state_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The init runs without site (-S): it finds pallet through the path of this very package.
_SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INIT_CODE = f"import sys; sys.path.insert(0, {_SRC!r}); from pallet.runtime.init import main; main()"
INIT_ARGV = [sys.executable, "-S", "-E", "-s", "-c", INIT_CODE]


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _raise_for(msg: dict[str, Any], what: str) -> None:
    code = int(msg.get("code", 1))
    text = str(msg.get("error", "unknown error"))
    if code == 127:
        raise CommandNotFound(f"failed to {what}: {text}")
    if code == 126:
        raise CommandCannotRun(f"failed to {what}: {text}")
    raise RuntimeFailure(f"OCI runtime {what} failed: {text}")


class PalletRuntime:
    name = "pallet"

    def __init__(self, state_root: Path) -> None:
        self.root = Path(state_root)
        self._sync: dict[str, int] = {}  # id -> read end of the sync pipe, kept until start

    # -- helpers -----------------------------------------------------------

    def _dir(self, id: str) -> Path:
        if not id or "/" in id or id in (".", ".."):
            raise RuntimeFailure(f"invalid container id {id!r}")
        return self.root / id

    def _load(self, id: str) -> dict[str, Any]:
        try:
            with open(self._dir(id) / "state.json") as f:
                return dict(json.load(f))
        except FileNotFoundError:
            raise ContainerNotFound(id) from None

    def _save(self, id: str, st: dict[str, Any]) -> None:
        d = self._dir(id)
        tmp = d / "state.json.tmp"
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, d / "state.json")

    def _spawn(self, req: dict[str, Any], stdin: int | None, stdout: int | None,
               stderr: int | None, join_r: int = -1,
               warm: bool = False) -> tuple[int, int]:
        """Start the init with ``req``; (init pid, read end of the sync pipe).

        ``join_r`` (create): the read end of a pipe on which the container's pid 1 waits
        until the caller has moved it into its cgroup (see ``_create``)."""
        if join_r >= 0:
            req["join_fd"] = join_r
        if _single_threaded():
            return self._fork(req, stdin, stdout, stderr, warm)
        req_r, req_w = os.pipe()
        sync_r, sync_w = os.pipe()
        os.set_inheritable(req_r, True)
        os.set_inheritable(sync_w, True)
        if join_r >= 0:
            os.set_inheritable(join_r, True)
        actions = []
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            if fd is not None and fd != target:
                actions.append((os.POSIX_SPAWN_DUP2, fd, target))
        try:
            pid = os.posix_spawn(
                INIT_ARGV[0], [*INIT_ARGV, str(req_r), str(sync_w)], _init_env(),
                file_actions=actions, setsigdef=(signal.SIGPIPE, signal.SIGINT, signal.SIGTERM),
            )
        finally:
            os.close(req_r)
            os.close(sync_w)
        # exec: join the init to the container's cgroup here, while it is still starting
        # Python (a migration on cgroup v1 waits for an RCU grace period).  The init reads
        # the request only after this, so it forks nothing before.
        try:
            _join(pid, req.pop("cgroup_procs", None) or [])
        except OSError as e:
            os.close(req_w)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(sync_r)
            raise RuntimeFailure(f"OCI runtime create failed: joining the cgroup: {e}") from None
        data = marshal.dumps(req)
        try:
            view = memoryview(data)
            while view:
                n = os.write(req_w, view)
                view = view[n:]
        except BrokenPipeError:
            pass
        finally:
            os.close(req_w)
        return pid, sync_r

    @staticmethod
    def _fork(req: dict[str, Any], stdin: int | None, stdout: int | None,
              stderr: int | None, warm: bool = False) -> tuple[int, int]:
        """``_spawn`` by fork: the child runs the init on ``req`` as it is.

        ``warm`` (create): move the child within its cgroup at once; see
        :func:`_warm_migration`."""
        from pallet.runtime import init

        procs = req.pop("cgroup_procs", None) or []
        sync_r, sync_w = os.pipe()
        go_r, go_w = os.pipe() if procs else (-1, -1)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            try:
                os.close(sync_r)
                if go_w >= 0:
                    os.close(go_w)
                for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
                    if fd is not None and fd != target:
                        os.dup2(fd, target)
                _default_signals()
                if go_r >= 0 and os.read(go_r, 1) != b"g":
                    os._exit(1)  # the caller failed to join it to the cgroup: it reports that
                init.run(req, sync_w)
            finally:
                os._exit(1)
        os.close(sync_w)
        if warm:
            _warm_migration(pid)
        if go_r >= 0:
            os.close(go_r)
            try:
                _join(pid, procs)
            except OSError as e:
                os.close(go_w)
                os.waitpid(pid, 0)
                os.close(sync_r)
                raise RuntimeFailure(f"OCI runtime create failed: joining the cgroup: {e}") from None
            os.write(go_w, b"g")
            os.close(go_w)
        return pid, sync_r

    @staticmethod
    def _read_msg(fd: int) -> dict[str, Any] | None:
        """One line of the init's: ``pid N``, ``ready`` or ``error CODE MESSAGE``; None at EOF."""
        buf = b""
        while not buf.endswith(b"\n"):
            b = os.read(fd, 1)
            if not b:
                break
            buf += b
        if not buf:
            return None
        word, _, rest = buf.decode(errors="replace").strip().partition(" ")
        if word == "pid":
            return {"pid": int(rest)}
        if word == "ready":
            return {"ready": True}
        if word == "userns":
            return {"userns": True}
        code, _, text = rest.partition(" ")
        return {"error": text, "code": int(code) if code.lstrip("-").isdigit() else 1}

    # -- verbs ------------------------------------------------------------

    def create(self, id: str, bundle: str | Path, *, stdin: int | None = None,
               stdout: int | None = None, stderr: int | None = None,
               console_socket: str | None = None, pid_file: str | Path | None = None) -> int:
        d = self._dir(id)
        try:
            d.mkdir(parents=True)
        except FileExistsError:
            raise RuntimeFailure(f"container with id {id} already exists") from None
        try:
            return self._create(id, d, Path(bundle).absolute(), stdin, stdout, stderr,
                                console_socket, pid_file)
        except BaseException:
            self._cleanup(id, d)
            raise

    def _create(self, id: str, d: Path, bundle: Path, stdin: int | None, stdout: int | None,
                stderr: int | None, console_socket: str | None,
                pid_file: str | Path | None) -> int:
        try:
            with open(bundle / "config.json") as f:
                spec = json.load(f)
        except FileNotFoundError:
            raise RuntimeFailure(f"bundle {bundle}: config.json not found") from None
        except ValueError as e:
            raise RuntimeFailure(f"bundle {bundle}: invalid config.json: {e}") from None
        fifo = d / "exec.fifo"
        os.mkfifo(fifo, 0o622)
        linux = spec.get("linux") or {}
        cgroup = linux.get("cgroupsPath") or f"/pallet/{id}"
        req = {
            "mode": "create",
            "id": id,
            "bundle": str(bundle),
            "spec": spec,
            "fifo": str(fifo),
            "console_socket": console_socket,
            "seccomp": self._seccomp(linux.get("seccomp")),
        }
        procs = _make_cgroup(cgroup, linux.get("resources"))
        self._save(id, {"id": id, "bundle": str(bundle), "pid": 0, "created": _now(),
                        "cgroup": cgroup, "annotations": spec.get("annotations") or {},
                        "namespaces": linux.get("namespaces") or [],
                        "hooks": spec.get("hooks") or {}})
        # The container's pid 1 is moved into its cgroup while it sets up its root
        # filesystem: a migration on cgroup v1 waits for an RCU grace period (15-25 ms
        # here), the mounts take as long.  pid 1 forks nothing before exec, and waits for
        # the move before it unshares its cgroup namespace and mounts /sys/fs/cgroup.
        userns_r, userns_w = _userns_pipe(linux, req)
        if linux.get("uidMappings") and any(n.get("type") == "user" for n in linux.get("namespaces") or []):
            os.chown(fifo, _host_id(linux, "uidMappings"), _host_id(linux, "gidMappings"))
        join_r, join_w = os.pipe()
        try:
            init_pid, sync = self._spawn(req, stdin, stdout, stderr, join_r, warm=True)
        except BaseException:
            if userns_w >= 0:
                os.close(userns_w)
            raise
        finally:
            os.close(join_r)
            if userns_r >= 0:
                os.close(userns_r)
        try:
            first = self._read_msg(sync)
            if first is not None and first.get("userns"):
                # the init is in its new user namespace: its maps are written from here
                try:
                    _write_id_maps(init_pid, linux)
                    os.write(userns_w, b"m")
                finally:
                    os.close(userns_w)
                    userns_w = -1
                first = self._read_msg(sync)
            os.waitpid(init_pid, 0)
            if first is None or "pid" not in first:
                _raise_for(first or {"error": "init exited without a word"}, "create container")
            pid = int(first["pid"])  # type: ignore[index]
            try:
                _join(pid, procs)
            except OSError as e:
                os.close(join_w)
                join_w = -1
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _reap_quietly(pid)
                raise RuntimeFailure(f"OCI runtime create failed: joining the cgroup: {e}") from None
            with contextlib.suppress(BrokenPipeError):  # pid 1 died: its error line follows
                os.write(join_w, b"j")
            os.close(join_w)
            join_w = -1
            ready = self._read_msg(sync)
            if ready is None or not ready.get("ready"):
                _reap_quietly(pid)
                _raise_for(ready or {"error": "container init exited during set-up"}, "create container")
        except BaseException:
            os.close(sync)
            raise
        finally:
            if join_w >= 0:
                os.close(join_w)
            if userns_w >= 0:
                os.close(userns_w)
                _reap_quietly(init_pid)
        st = self._load(id)
        st.update(pid=pid, start_time=_start_time(pid))
        self._save(id, st)
        self._sync[id] = sync
        try:
            for kind in ("prestart", "createRuntime"):
                self._hooks(id, st, kind, strict=True)
        except RuntimeFailure:
            self.delete(id, force=True)
            raise
        if pid_file:
            tmp = Path(str(pid_file) + ".tmp")
            tmp.write_text(str(pid))
            os.replace(tmp, pid_file)
        return pid

    def start(self, id: str) -> None:
        st = self._load(id)
        fifo = self._dir(id) / "exec.fifo"
        if not fifo.exists():
            raise RuntimeFailure(f"cannot start a container that has stopped or already started: {id}")
        if not self._alive(st):
            raise RuntimeFailure(f"cannot start a container that has stopped: {id}")
        # not a blocking open: a pid 1 that died before writing would leave it hanging
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            import select

            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not poller.poll(100):
                if not self._alive(st):
                    raise RuntimeFailure(f"cannot start a container that has stopped: {id}")
            if os.read(fd, 1) != b"0":
                raise RuntimeFailure(f"cannot start a container that has stopped: {id}")
        finally:
            os.close(fd)
        fifo.unlink(missing_ok=True)
        sync = self._sync.pop(id, None)
        if sync is not None:
            try:
                msg = self._read_msg(sync)
            finally:
                os.close(sync)
            if msg and "error" in msg:
                _raise_for(msg, "start container")
        self._hooks(id, st, "poststart", strict=False)

    def _hooks(self, id: str, st: dict[str, Any], kind: str, *, strict: bool) -> None:
        """The spec's ``hooks[kind]`` in order, each given the container's state JSON on
        stdin; a failure raises when ``strict`` (create's hooks), else is ignored."""
        hooks = (st.get("hooks") or {}).get(kind) or []
        if not hooks:
            return
        import subprocess

        state = state_json(id, "stopped" if kind == "poststop" else
                           ("running" if kind == "poststart" else "created"),
                           int(st.get("pid") or 0), st["bundle"], st.get("created", ""),
                           st.get("annotations"))
        for h in hooks:
            args = list(h.get("args") or [h["path"]])
            env = dict(e.split("=", 1) for e in h.get("env") or [] if "=" in e)
            try:
                r = subprocess.run(args, executable=h["path"], input=json.dumps(state).encode(),
                                   env=env, timeout=h.get("timeout"), capture_output=True,
                                   check=False)
                err = f"exit status {r.returncode}: {r.stderr.decode(errors='replace').strip()}"
                ok = r.returncode == 0
            except (OSError, subprocess.TimeoutExpired) as e:
                ok, err = False, str(e)
            if not ok and strict:
                raise RuntimeFailure(f"OCI runtime create failed: {kind} hook {h['path']}: {err}")

    def _seccomp(self, spec: dict[str, Any] | None) -> tuple[bytes, int] | None:
        """The filter compiled here (the init has no libseccomp after pivot_root); cached."""
        if not spec:
            return None
        from pallet.runtime import seccomp

        prepared = seccomp.prepare(spec, cache_dir=str(self.root / ".seccomp"))
        return None if prepared is None else (prepared.program, prepared.flags)

    def _alive(self, st: dict[str, Any]) -> bool:
        pid = int(st.get("pid") or 0)
        return pid > 0 and _start_time(pid) == int(st.get("start_time") or -1)

    def _status(self, id: str, st: dict[str, Any]) -> str:
        if not st.get("pid"):
            return "creating"
        if not self._alive(st):
            return "stopped"
        if (self._dir(id) / "exec.fifo").exists():
            return "created"
        try:
            from pallet.runtime import cgroups

            m = cgroups.manager(st["cgroup"])
            if getattr(m, "frozen", None) and m.frozen():  # type: ignore[attr-defined]
                return "paused"
        except Exception:  # noqa: BLE001 - a state query never fails on the freezer
            pass
        if (self._dir(id) / "paused").exists():
            return "paused"
        return "running"

    def state(self, id: str) -> dict[str, Any]:
        st = self._load(id)
        status = self._status(id, st)
        return state_json(id, status, int(st.get("pid") or 0) if status != "stopped" else 0,
                          st.get("bundle", ""), st.get("created", ""), st.get("annotations"))

    def list(self) -> list[dict[str, Any]]:
        if not self.root.exists():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if (d / "state.json").exists():
                try:
                    out.append(self.state(d.name))
                except ContainerNotFound:
                    continue
        return out

    def kill(self, id: str, sig: int | str = signal.SIGTERM, all: bool = False) -> None:
        st = self._load(id)
        signum = _signum(sig)
        if not self._alive(st):
            raise RuntimeFailure("container not running")
        if all:
            from pallet.runtime import cgroups

            for p in cgroups.manager(st["cgroup"]).pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signum)
            return
        try:
            os.kill(int(st["pid"]), signum)
        except ProcessLookupError:
            raise RuntimeFailure("container not running") from None

    def delete(self, id: str, force: bool = False) -> None:
        d = self._dir(id)
        st = self._load(id)
        if self._alive(st):
            status = self._status(id, st)
            if status not in ("created",) and not force:
                raise RuntimeFailure(f"cannot delete container {id} that is not stopped: {status}")
            self._kill_all(st)
        self._cleanup(id, d, st)

    def _kill_all(self, st: dict[str, Any]) -> None:
        from pallet.runtime import cgroups

        m = cgroups.manager(st["cgroup"])
        with contextlib.suppress(Exception):
            m.thaw()
        pid = int(st.get("pid") or 0)
        for p in {pid, *m.pids()}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (self._alive(st) or _live(m.pids())):
            time.sleep(0.005)

    def _cleanup(self, id: str, d: Path, st: dict[str, Any] | None = None) -> None:
        if st is not None and st.get("pid"):
            self._hooks(id, st, "poststop", strict=False)
        sync = self._sync.pop(id, None)
        if sync is not None:
            os.close(sync)
        cg = (st or {}).get("cgroup")
        if cg:
            from pallet.runtime import cgroups

            with contextlib.suppress(Exception):  # removal is retried by the next delete
                cgroups.manager(cg).destroy()
        for name in ("exec.fifo", "state.json", "state.json.tmp", "paused"):
            (d / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            d.rmdir()

    def pause(self, id: str) -> None:
        st = self._load(id)
        if not self._alive(st):
            raise RuntimeFailure("container not running")
        from pallet.runtime import cgroups

        cgroups.manager(st["cgroup"]).freeze()
        (self._dir(id) / "paused").touch()

    def resume(self, id: str) -> None:
        st = self._load(id)
        from pallet.runtime import cgroups

        cgroups.manager(st["cgroup"]).thaw()
        (self._dir(id) / "paused").unlink(missing_ok=True)

    def exec(self, id: str, process: dict[str, Any], *, stdin: int | None = None,
             stdout: int | None = None, stderr: int | None = None,
             console_socket: str | None = None, detach: bool = False) -> int:
        st = self._load(id)
        if not self._alive(st) or (self._dir(id) / "exec.fifo").exists():
            raise RuntimeFailure(f"cannot exec in a stopped or not yet started container: {id}")
        with open(Path(st["bundle"]) / "config.json") as f:
            spec = json.load(f)
        linux = spec.get("linux") or {}
        req = {
            "mode": "exec",
            "id": id,
            "pid": int(st["pid"]),
            "spec": {"linux": {"namespaces": linux.get("namespaces") or []}},
            "process": process,
            "cgroup_procs": _cgroup_procs(st.get("cgroup")),
            "console_socket": console_socket,
            "seccomp": self._seccomp(linux.get("seccomp")),
        }
        init_pid, sync = self._spawn(req, stdin, stdout, stderr)
        try:
            first = self._read_msg(sync)
            os.waitpid(init_pid, 0)
            if first is None or "pid" not in first:
                _raise_for(first or {"error": "exec init exited without a word"}, "exec")
            pid = int(first["pid"])  # type: ignore[index]
            msg = self._read_msg(sync)  # EOF once the process has exec'd
            if msg and "error" in msg:
                _reap_quietly(pid)
                _raise_for(msg, "exec")
        finally:
            os.close(sync)
        return pid


def _cgroup_manager(path: str) -> Any:
    from pallet.runtime import cgroups

    return cgroups.manager(path)


def _procs_files(m: Any) -> list[str]:
    dirs = set(m.dirs.values()) if hasattr(m, "dirs") else {m.dir}
    return sorted(os.path.join(d, "cgroup.procs") for d in dirs)


# The devices every container may use whatever its spec's device rules say (runc adds
# the same): mknod of any node, and the default nodes and pseudo-terminals.
ALLOWED_DEVICES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
      for ma, mi in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200))),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


def _make_cgroup(path: str, resources: dict[str, Any] | None) -> list[str]:
    """Create the container's cgroup, apply its limits; the cgroup.procs files the init joins."""
    m = _cgroup_manager(path)
    m.create()
    res = dict(resources or {})
    if "devices" in res:
        res["devices"] = [*res["devices"], *ALLOWED_DEVICES]
    if res:
        m.apply(res)
    return _procs_files(m)


def _cgroup_procs(path: str | None) -> list[str]:
    if not path:
        return []
    m = _cgroup_manager(path)
    return [f for f in _procs_files(m) if os.path.exists(f)]


def _live(pids: list[int]) -> list[int]:
    return [p for p in pids if _start_time(p)]


def _join(pid: int, procs_files: list[str]) -> None:
    me = str(pid)
    for path in procs_files:
        with open(path, "w") as f:
            f.write(me)


def _warm_migration(pid: int) -> None:
    """Move ``pid`` (just forked from us) into the cgroup it is already in.

    The first cgroup migration after a quiet spell waits for an RCU grace period
    (10-15 ms; the lock it waits on is shared by every hierarchy); the ones that
    follow within about a grace period do not.  Done right after the fork, this
    wait overlaps the child's own set-up, and moving the container's pid 1 a few
    milliseconds later is then quick.  Best effort: nothing changes for the process,
    and any failure only costs the wait later."""
    target = _own_procs_file()
    if target is not None:
        with contextlib.suppress(OSError), open(target, "w") as f:
            f.write(str(pid))


def warm_cgroup_migrations() -> None:
    """Start the RCU grace period of the cgroup migrations to come, without waiting for it.

    A short-lived shell moves itself into the cgroup it is already in (``echo 0 >
    cgroup.procs``): the grace period (see :func:`_warm_migration`) passes while the
    caller prepares the container, and moving its pid 1 some milliseconds later is
    quick.  For a caller about to create a container; the shell exits at once and is
    reaped with the caller's other children.  Best effort: nothing changes for anyone."""
    target = _own_procs_file()
    if target is not None:
        with contextlib.suppress(OSError):
            os.posix_spawn("/bin/sh", ["sh", "-c", 'echo 0 > "$0"', target], {"PATH": "/usr/bin:/bin"})


def _own_procs_file() -> str | None:
    """The cgroup.procs file of this process's cgroup on one hierarchy under /sys/fs/cgroup."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [ln.split(":", 2) for ln in f.read().splitlines() if ln.count(":") >= 2]
    except OSError:
        return None
    for _hid, controllers, path in sorted(lines, key=lambda ln: ln[1] != "pids"):
        if controllers:
            base = "/sys/fs/cgroup/" + controllers.removeprefix("name=")
        elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            base = "/sys/fs/cgroup"
        else:
            base = "/sys/fs/cgroup/unified"
        procs = f"{base}{path.rstrip('/')}/cgroup.procs"
        if os.path.exists(procs):
            return procs
    return None


def _userns_pipe(linux: dict[str, Any], req: dict[str, Any]) -> tuple[int, int]:
    """A new user namespace in the spec: the pipe on which the init waits for its id maps
    (its read end goes in ``req``); (-1, -1) otherwise."""
    new = [n for n in linux.get("namespaces") or [] if n.get("type") == "user" and not n.get("path")]
    if not new:
        return -1, -1
    if not linux.get("uidMappings") or not linux.get("gidMappings"):
        raise RuntimeFailure("OCI runtime create failed: user namespace enabled, but no user mapping found")
    r, w = os.pipe()
    os.set_inheritable(r, True)
    req["userns_fd"] = r
    return r, w


def _host_id(linux: dict[str, Any], key: str) -> int:
    """The host id that id 0 of the container's user namespace maps to (its root)."""
    for m in linux.get(key) or []:
        start, size = int(m["containerID"]), int(m["size"])
        if start <= 0 < start + size:
            return int(m["hostID"]) - start
    return 0


def _write_id_maps(pid: int, linux: dict[str, Any]) -> None:
    """Write ``pid``'s uid_map and gid_map from the spec's mappings (as root in the parent
    namespace, so setgroups stays allowed inside)."""
    for name, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        text = "".join(f"{int(m['containerID'])} {int(m['hostID'])} {int(m['size'])}\n"
                       for m in linux.get(key) or [])
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise RuntimeFailure(f"OCI runtime create failed: writing {name}: {e.strerror or e}") from None


def _reap_quietly(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signum(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    s = sig.strip().upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(signal.Signals[s])
    except KeyError:
        raise RuntimeFailure(f"invalid signal: {sig}") from None


def _single_threaded() -> bool:
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _default_signals() -> None:
    """In a forked init: the dispositions a fresh process has (what is ignored stays
    ignored across exec; Python ignores SIGPIPE and handles SIGINT)."""
    for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
              signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGWINCH):
        signal.signal(s, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _init_env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    return env
