"""The container lifecycle: create, start, stop, kill, remove, and reconciliation after a crash.

A container's state is the record on disk (:mod:`pallet.engine.state`) plus the
reports of its monitor (``monitor.json``, a sequence number ahead of what the
record has merged).  Every read goes through :meth:`ContainerService.refresh`,
which merges the report and reconciles with the kernel: a process that is gone
means the container has exited, whatever the files said.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from pallet.config import Config
from pallet.engine.state import (
    Container,
    ContainerSpec,
    ContainerState,
    ContainerStore,
    MountSpec,
    now_ns,
    read_monitor_report,
    validate_name,
)
from pallet.errors import (
    Conflict,
    InvalidArgument,
    NameInUse,
    PalletError,
)
from pallet.linux.proc import start_time
from pallet.oci.record import field, record, replace

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

EXIT_UNKNOWN = 255  # the process vanished without its status being recorded


def image_ids_in_use(config: Config) -> dict[str, list[str]]:
    """Image id (``sha256:...``) -> names of the containers created from it."""
    out: dict[str, list[str]] = {}
    for c in ContainerStore(config.root).all():
        out.setdefault(c.spec.image_id, []).append(c.name)
    return out


@record(frozen=True)
class CreateOptions:
    """What ``create``/``run`` were asked for, already parsed from the command line."""

    image: str
    command: tuple[str, ...] = ()
    entrypoint: str | None = None
    name: str = ""
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str | None = None
    hostname: str = ""
    mounts: tuple[MountSpec, ...] = ()
    read_only: bool = False
    interactive: bool = False
    tty: bool = False
    init: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    network: str = ""
    restart: str = "no"
    auto_remove: bool = False
    runtime: str | None = None
    isolation: str = ""
    publish: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    add_host: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    network_aliases: tuple[str, ...] = ()
    ip: str = ""
    publish_all: bool = False
    resources: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def parse_restart(value: str) -> tuple[str, int]:
    name, _, count = (value or "no").partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of "
                              "'no', 'always', 'on-failure', or 'unless-stopped'")
    if count:
        if name != "on-failure":
            raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
        if not count.isdigit():
            raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer")
        return name, int(count)
    return name, 0


def parse_signal(value: str) -> int:
    """``SIGTERM``, ``TERM``, ``15`` -> 15 (Docker's ``Invalid signal: X`` otherwise)."""
    v = value.strip().upper()
    if v.isdigit():
        n = int(v)
        if 0 < n < signal.NSIG:
            return n
    else:
        name = v if v.startswith("SIG") else "SIG" + v
        if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
            base = signal.SIGRTMIN if "MIN" in name else signal.SIGRTMAX
            off = name[9:]
            if off.isdigit():
                return int(base) + int(off) * (1 if "MIN" in name else -1)
        sig = getattr(signal.Signals, name, None) if hasattr(signal.Signals, name) else None
        if sig is not None:
            return int(sig)
    raise InvalidArgument(f"Invalid signal: {value}")


def pid_alive(pid: int, start: int) -> bool:
    if pid <= 0:
        return False
    s = start_time(pid)
    return s != 0 and (not start or s == start)


class ContainerService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = ContainerStore(config.root)
        self._images: Any = None  # pallet.engine.rootfs.Images, opened on first use
        self._created_image: Any = None  # the ImageInfo the last create looked up

    # -- images -------------------------------------------------------------------------

    def images(self) -> Any:
        """The image store's parts a container needs (:class:`pallet.engine.rootfs.Images`)."""
        if self._images is None:
            from pallet.engine.rootfs import Images

            self._images = Images(self.config)
        return self._images

    def image(self, ref: str, name: str = "") -> Any:
        """The image ``ref`` names, as :class:`pallet.engine.rootfs.ImageInfo`, found directly.

        The image ``create`` looked up is kept by its ID (content-addressed: it cannot
        change), so that ``run`` reads the image's manifest and config once.  ``name``
        (what the container was created from) is tried first for an ID: a name is found
        without reading the other images' manifests, and is used if it still names
        that image."""
        hit = self._created_image
        if hit is not None and ref == hit.id:
            return hit
        from pallet.engine.create_spec import lookup_image

        if name and name != ref and ref.startswith("sha256:"):
            try:
                info = lookup_image(self.config, name, self.images())
            except PalletError:
                info = None
            if info is not None and info.id == ref:
                return info
        return lookup_image(self.config, ref, self.images())

    # -- lookup -----------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        return self.refresh(self.store.load(self.store.resolve(ref)))

    def list_containers(self, all: bool = True) -> list[Container]:
        out = []
        for c in self.store.all():
            c = self.refresh(c)
            if all or c.state.running:
                out.append(c)
        out.sort(key=lambda c: c.created, reverse=True)
        return out

    # -- state merging and reconciliation ------------------------------------------------

    def refresh(self, c: Container) -> Container:
        """Merge the monitor's report; reconcile a container whose process is gone."""
        st = c.state
        report = read_monitor_report(c)
        changed = report is not None and int(report.get("seq", 0)) > st.seq
        if not changed and not st.running:
            return c
        if not changed and pid_alive(st.pid, st.pid_start):
            return c
        with self.store.locked(c.id):
            try:
                c = self.store.load(c.id)
            except PalletError:
                return c
            st = c.state
            report = read_monitor_report(c)
            if report is not None and int(report.get("seq", 0)) > st.seq:
                st = _merge(st, report)
            if st.running and st.status != "restarting" and not pid_alive(st.pid, st.pid_start):
                if self._monitor_alive(st):
                    # the monitor owns the exit status: give it a moment to report, never guess
                    for delay in _backoff(1.0):
                        time.sleep(delay)
                        report = read_monitor_report(c)
                        if report is not None and int(report.get("seq", 0)) > st.seq:
                            st = _merge(st, report)
                            break
                else:
                    st = replace(st, status="exited", exit_code=EXIT_UNKNOWN if not st.exit_code else st.exit_code,
                                 finished_at=st.finished_at or now_ns(), pid=0)
            if st.status == "restarting" and not self._monitor_alive(st):
                st = replace(st, status="exited", pid=0, finished_at=st.finished_at or now_ns())
            if st != c.state:
                c = self.store.save_state(c, st)
        if not c.state.running and c.state.mounted and not self._monitor_alive(c.state):
            self.cleanup(c)
            c = self.store.load(c.id)
        return c

    @staticmethod
    def _monitor_alive(st: ContainerState) -> bool:
        """The container's monitor (or foreground CLI) is still there, and is not us."""
        mon = st.monitor_pid
        return bool(mon) and mon != os.getpid() and pid_alive(mon, st.monitor_start)

    def reconcile_all(self) -> None:
        self.store.sweep()
        for c in self.store.all():
            self.refresh(c)

    # -- create -------------------------------------------------------------------------

    def create(self, opts: CreateOptions) -> Container:
        from pallet.engine import create_spec

        def image(ref: str) -> Any:
            self._created_image = info = self.image(ref)
            return info

        spec, image_volumes = create_spec.container_spec(self.config, opts, image=image)
        cid = os.urandom(32).hex()
        if opts.name:
            name = validate_name(opts.name)
            self.store.reserve(name, cid)
        else:
            from pallet.engine.names import generate

            for i in range(20):
                name = generate(i // 5)
                try:
                    self.store.reserve(name, cid)
                    break
                except NameInUse:
                    continue
            else:
                raise Conflict("could not generate a unique container name")
        try:
            c = self.store.create(cid, name, spec, now_ns())
            if image_volumes:
                c = self._anonymous_volumes(c, image_volumes)
            c = self._named_volumes(c)
            if spec.resources.get("UsernsMode") not in (None, "", "host"):
                from pallet.engine.userns import setup_container

                setup_container(self.config, c)  # its own range of subordinate ids
        except BaseException:
            self.store.release(name, cid)
            self._drop(cid)
            raise
        return c

    def _drop(self, cid: str) -> None:
        from pallet.linux.mounts import remove_tree

        d = self.store.dir / cid
        if d.exists():
            remove_tree(d)

    def _anonymous_volumes(self, c: Container, dests: list[str]) -> Container:
        from pallet.engine.volumes import VolumeService

        vs = VolumeService(self.config)
        mounts = list(c.spec.mounts)
        for dest in dests:
            v = vs.create(anonymous=True)
            mounts.append(MountSpec("volume", dest, v.name, anonymous=True))
        spec = replace(c.spec, mounts=tuple(mounts))
        self.store._write_config(c.dir, c.id, c.name, c.created, spec)
        return replace(c, spec=spec)

    def _named_volumes(self, c: Container) -> Container:
        """Create the named volumes a container mounts, and name its anonymous ones."""
        if not any(m.type == "volume" for m in c.spec.mounts):
            return c
        from pallet.engine.volumes import VolumeService

        vs = VolumeService(self.config)
        mounts = []
        changed = False
        for m in c.spec.mounts:
            if m.type == "volume" and not m.source:
                v = vs.create(anonymous=True)
                m = replace(m, source=v.name, anonymous=True)
                changed = True
            elif m.type == "volume":
                vs.create(m.source)
            mounts.append(m)
        if not changed:
            return c
        spec = replace(c.spec, mounts=tuple(mounts))
        self.store._write_config(c.dir, c.id, c.name, c.created, spec)
        return replace(c, spec=spec)

    # -- start (detached, under a monitor) -------------------------------------------------

    def start(self, c: Container) -> Container:
        from pallet.engine import lifecycle

        return lifecycle.start_detached(self, c)

    # -- stop / kill ------------------------------------------------------------------------

    def kill(self, c: Container, sig: int = signal.SIGKILL, user: bool = True) -> None:
        c = self.refresh(c)
        if not c.state.running or c.state.status == "restarting" and not c.state.pid:
            raise Conflict(f"Cannot kill container: {c.name}: container {c.id} is not running")
        if user:
            self._mark_stopped(c)
        self._signal(c, sig, all=sig == signal.SIGKILL)

    def _mark_stopped(self, c: Container) -> None:
        (c.dir / "stopped-by-user").touch()
        with self.store.locked(c.id):
            cur = self.store.load(c.id)
            if not cur.state.stopped_by_user:
                self.store.save_state(cur, replace(cur.state, stopped_by_user=True))

    def _signal(self, c: Container, sig: int, all: bool = False) -> None:
        if c.spec.runtime == "vm":
            from pallet.engine.runtimes import open_runtime

            open_runtime(self.config, c.spec.runtime).kill(c.id, sig, all=all)
            return
        pid = c.state.pid
        if pid and pid_alive(pid, c.state.pid_start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if c.state.status == "paused" and sig == signal.SIGKILL:
                with contextlib.suppress(Exception):
                    self._runtime(c).resume(c.id)

    def _runtime(self, c: Container) -> Any:
        from pallet.engine.runtimes import open_runtime

        return open_runtime(self.config, c.spec.runtime)

    def stop(self, c: Container, timeout: int | None = None, sig: str = "") -> Container:
        c = self.refresh(c)
        if not c.state.running:
            return c
        self._mark_stopped(c)
        if c.state.status == "restarting":
            self._wait_stopped(c, 5)
            return self.refresh(c)
        if timeout is None:
            timeout = c.spec.stop_timeout if c.spec.stop_timeout is not None else 10
        signum = parse_signal(sig or c.spec.stop_signal or "SIGTERM")
        self._signal(c, signum)
        if c.state.status == "paused":
            with contextlib.suppress(Exception):
                self._runtime(c).resume(c.id)
        if timeout < 0 or not self._wait_stopped(c, timeout):
            self._signal(self.refresh(c), signal.SIGKILL, all=True)
            self._wait_stopped(c, 30)
        return self.refresh(c)

    def _wait_stopped(self, c: Container, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.002  # a killed process is gone within milliseconds: look again soon
        while True:
            cur = self.refresh(self.store.load(c.id))
            if not cur.state.running:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def wait(self, c: Container, timeout: float | None = None) -> Container:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002
        while True:
            try:
                cur = self.refresh(self.store.load(c.id))
            except PalletError:
                return c
            if not cur.state.running:
                return cur
            if deadline is not None and time.monotonic() > deadline:
                return cur
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- pause --------------------------------------------------------------------------------

    def pause(self, c: Container) -> None:
        c = self.refresh(c)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.status == "paused":
            raise Conflict(f"Container {c.id} is already paused")
        self._runtime(c).pause(c.id)
        with self.store.locked(c.id):
            cur = self.store.load(c.id)
            self.store.save_state(cur, replace(cur.state, status="paused"))

    def unpause(self, c: Container) -> None:
        c = self.refresh(c)
        if c.state.status != "paused":
            raise Conflict(f"Container {c.id} is not paused")
        self._runtime(c).resume(c.id)
        with self.store.locked(c.id):
            cur = self.store.load(c.id)
            self.store.save_state(cur, replace(cur.state, status="running"))

    # -- cleanup and removal ------------------------------------------------------------------

    def cleanup(self, c: Container, record: bool = True) -> None:
        """Release what a stopped container holds: runtime state, network, rootfs mount.

        ``record=False``: the record is about to be removed, its state is not updated (a
        crash before that leaves ``mounted`` set: the next refresh cleans up again)."""
        oom = False
        if record and not c.spec.auto_remove:  # nobody can inspect a --rm container afterwards
            from pallet.engine.limits import oom_killed

            oom = oom_killed(c)  # State.OOMKilled: read before the runtime removes the cgroup
        with contextlib.suppress(Exception):
            self._runtime(c).delete(c.id, force=True)
        self._remove_stale_cgroup(c)
        self._network_teardown(c)
        from pallet.engine.rootfs import unmount_rootfs

        unmount_rootfs(c.rootfs)
        if not record:
            return
        with self.store.locked(c.id):
            try:
                cur = self.store.load(c.id)
            except PalletError:
                return
            if cur.state.mounted or (oom and not cur.state.oom_killed):
                self.store.save_state(
                    cur, replace(cur.state, mounted=False, oom_killed=cur.state.oom_killed or oom)
                )

    @staticmethod
    def _remove_stale_cgroup(c: Container) -> None:
        """A cgroup the runtime left behind (a create that failed halfway): remove it if empty."""
        if not any(os.path.isdir(f"/sys/fs/cgroup/{h}pallet/{c.id}") for h in ("pids/", "memory/", "unified/", "")):
            return
        with contextlib.suppress(Exception):
            from pallet.engine.limits import cgroup_of

            m = cgroup_of(c)
            if m.exists() and not m.pids():
                m.destroy()

    def _network_teardown(self, c: Container) -> None:
        if c.spec.network_mode in ("none", "host", ""):
            return
        try:
            from pallet.engine import networks  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            return
        with contextlib.suppress(Exception):
            networks.teardown(self.config, c)

    def _network_forget(self, c: Container) -> None:
        if c.spec.network_mode in ("none", "host", ""):
            return
        try:
            from pallet.engine import networks  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            return
        forget = getattr(networks, "forget", None)
        if forget is not None:
            with contextlib.suppress(Exception):
                forget(self.config, c.id)

    def network_settings(self, c: Container) -> dict[str, Any] | None:
        try:
            from pallet.engine import networks  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            return None
        settings = getattr(networks, "settings", None)
        return dict(settings(self.config, c)) if settings is not None else None

    def published_ports(self, c: Container) -> list[str]:
        """``0.0.0.0:8080->80/tcp`` for each published port (ps, port)."""
        try:
            from pallet.engine import networks  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            return []
        published = getattr(networks, "published", None)
        if published is None or not c.state.running:
            return []
        out = []
        for b in published(self.config, c):
            out.append(f"{b.host_ip or '0.0.0.0'}:{b.host_port}->{b.container_port}/{b.protocol}")
        return out

    def remove(self, c: Container, force: bool = False, volumes: bool = False) -> None:
        c = self.refresh(c)
        if c.state.running:
            if not force:
                if c.state.status == "paused":
                    raise Conflict(
                        f'cannot remove container "/{c.name}": container is paused and must be '
                        "unpaused first"
                    )
                raise Conflict(
                    f'cannot remove container "/{c.name}": container is running: stop the '
                    "container before removing or force remove"
                )
            self._mark_stopped(c)
            self._signal(c, signal.SIGKILL, all=True)
            if not self._wait_stopped(c, 10):
                raise PalletError(f"could not kill container {c.id}")
            c = self.refresh(c)
        mon = c.state.monitor_pid
        if mon and mon != os.getpid() and pid_alive(mon, 0):
            # the monitor is finishing (copying the last output, running its exit command)
            for delay in _backoff(2.0):
                if not pid_alive(mon, 0):
                    break
                time.sleep(delay)
        self.cleanup(c, record=False)
        self._network_forget(c)
        self.store.remove_record(c)
        if c.spec.resources.get("UsernsMode") not in (None, "", "host"):
            from pallet.engine.userns import release_container

            release_container(self.config, c)
        if volumes or c.spec.auto_remove:
            self._remove_anonymous_volumes(c)

    def _remove_anonymous_volumes(self, c: Container) -> None:
        if not any(m.type == "volume" and m.anonymous and m.source for m in c.spec.mounts):
            return
        from pallet.engine.volumes import VolumeService

        vs = VolumeService(self.config)
        for m in c.spec.mounts:
            if m.type == "volume" and m.anonymous and m.source:
                with contextlib.suppress(PalletError):
                    vs.remove(m.source)

    def rename(self, c: Container, new: str) -> None:
        new = validate_name(new)
        if new == c.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        self.store.reserve(new, c.id)
        with self.store.locked(c.id):
            cur = self.store.load(c.id)
            self.store.set_name(cur, new)
        self.store.release(c.name, c.id)

    def prune(self, label_filters: tuple[str, ...] = (), until: int = 0) -> tuple[list[str], int]:
        from pallet.engine.volumes import du

        removed, space = [], 0
        for c in self.list_containers(all=True):
            if c.state.running:
                continue
            if until and c.created >= until:
                continue
            if not _labels_match(c.spec.labels, label_filters):
                continue
            space += du(c.dir / "upper")
            self.remove(c, volumes=False)
            removed.append(c.id)
        return removed, space


def _backoff(total: float, first: float = 0.002, most: float = 0.02) -> Iterator[float]:
    """Sleeps for a poll of at most ``total`` seconds: short at first, then ``most`` each."""
    delay, spent = first, 0.0
    while spent < total:
        yield delay
        spent += delay
        delay = min(delay * 2, most)


def _labels_match(labels: dict[str, str], filters: tuple[str, ...]) -> bool:
    for f in filters:
        neg = f.startswith("!") or "!=" in f
        k, _, v = f.replace("!=", "=").lstrip("!").partition("=")
        hit = k in labels and (not v or labels[k] == v)
        if hit == neg:
            return False
    return True


def _merge(st: ContainerState, r: dict[str, Any]) -> ContainerState:
    status = str(r.get("status", st.status))
    if st.status == "paused" and status == "running":
        status = "paused"
    return replace(
        st,
        status=status,
        pid=int(r.get("pid", st.pid)),
        pid_start=int(r.get("pid_start", st.pid_start)),
        exit_code=int(r.get("exit_code", st.exit_code)),
        error=str(r.get("error", st.error)),
        oom_killed=bool(r.get("oom_killed", st.oom_killed)),
        started_at=int(r.get("started_at", st.started_at)),
        finished_at=int(r.get("finished_at", st.finished_at)),
        restart_count=int(r.get("restart_count", st.restart_count)),
        seq=int(r.get("seq", st.seq)),
    )


def write_json(path: Path, doc: dict[str, Any]) -> None:
    from pallet.engine.state import atomic_write

    atomic_write(path, json.dumps(doc).encode())


__all__ = [
    "ContainerService",
    "CreateOptions",
    "ContainerSpec",
    "image_ids_in_use",
    "parse_restart",
    "parse_signal",
]
