"""VMRuntime: the OCI runtime operations (create, start, state, kill, delete, exec) on a QEMU guest.

State lives in ``<run_root>/vm/<id>/``: plan.json (what to start), state.json
(written by the shim), the agent and control sockets, the console log and,
when not cached, the root filesystem image.  Cached images and the initramfs
live in ``<root>/vm/``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal as signals
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pallet.config import Config
from pallet.errors import Conflict, ContainerNotFound, InvalidArgument, RuntimeFailure
from pallet.vm import accel as accel_mod
from pallet.vm import bundle as bundle_mod
from pallet.vm import netdev
from pallet.vm import qemu as qemu_mod
from pallet.vm.bundle import CopiedFile
from pallet.vm.initramfs import ensure_initramfs
from pallet.vm.kernel import ensure_boot_image, find_kernel, find_qemu, find_virtiofsd, tsc_khz
from pallet.vm.rootfs import ensure_image
from pallet.vm.unixsock import connect_unix, same_process

Stdio = int | IO[Any] | None
SUMMARY = "vm.json"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class VMState:
    """The OCI state of a VM container, with what ``inspect`` shows about the VM."""

    id: str
    status: str  # creating | created | running | paused | stopped
    pid: int
    bundle: str
    exit_code: int | None = None
    kernel: str = ""
    accelerator: str = ""
    rootfs: str = ""
    memory_mib: int = 0
    cpus: int = 0
    boot_seconds: float | None = None
    error: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    oci_version: str = "1.0.2"

    def to_oci(self) -> dict[str, Any]:
        return {"ociVersion": self.oci_version, "id": self.id, "status": self.status,
                "pid": self.pid, "bundle": self.bundle, "annotations": self.annotations}


def _fd(x: Stdio, default: int) -> int:
    if x is None:
        return default
    return x if isinstance(x, int) else x.fileno()


class VMRuntime:
    """Runs each container's process in its own QEMU guest."""

    name = "vm"

    def __init__(self, config: Config, notice: IO[str] | None = None) -> None:
        self.config = config
        self.vm_dir = config.root / "vm"
        self.state_root = config.run_root / "vm"
        self.notice = notice if notice is not None else sys.stderr
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # shims this object started

    def _dir(self, id_: str) -> Path:
        if not _ID.match(id_):
            raise InvalidArgument(f"invalid container id {id_!r}")
        return self.state_root / id_

    # -- create -------------------------------------------------------------------

    def create(self, id: str, bundle: str | Path, *, stdin: Stdio = None, stdout: Stdio = None,
               stderr: Stdio = None, console_socket: str | None = None,
               pid_file: str | Path | None = None) -> int:
        d = self._dir(id)
        if d.exists():
            raise Conflict(f"container with id exists: {id}")
        b = bundle_mod.load(bundle)
        kernel = find_kernel()
        qemu_bin = find_qemu()
        initrd = ensure_initramfs(self.vm_dir, kernel)
        acc = accel_mod.choose(self.vm_dir, qemu_bin, kernel, str(initrd))
        if acc.name != "kvm":
            print(acc.notice, file=self.notice, flush=True)
        if b.process.terminal and not console_socket:
            raise InvalidArgument("a terminal was requested but no console socket was given")
        d.mkdir(parents=True)
        nul = os.open(os.devnull, os.O_RDONLY)
        try:
            boot_image = ensure_boot_image(self.vm_dir, kernel)
            return self._create(id, d, b, boot_image, qemu_bin, str(initrd), acc, _fd(stdin, nul),
                                _fd(stdout, 1), _fd(stderr, 2), pid_file, console_socket or "")
        except BaseException:
            self._net_teardown(d)
            shutil.rmtree(d, ignore_errors=True)
            raise
        finally:
            os.close(nul)

    def _cgroup_destroy(self, d: Path) -> None:
        try:
            path = json.loads((d / "plan.json").read_text()).get("cgroups_path", "")
        except (OSError, ValueError):
            return
        if path:
            from pallet.runtime import cgroups

            with contextlib.suppress(Exception):
                m = cgroups.manager(path)
                if m.exists():
                    m.destroy()

    def _net_teardown(self, d: Path) -> None:
        with contextlib.suppress(OSError):
            netns = (d / "netns").read_text()
            if os.path.exists(netns):
                netdev.teardown(netns)

    def _create(self, id_: str, d: Path, b: bundle_mod.VMBundle, kernel: str, qemu_bin: str,
                initrd: str, acc: accel_mod.Accel, fin: int, fout: int, ferr: int,
                pid_file: str | Path | None, console_socket: str) -> int:
        disk, cached = "", False
        filesystems: list[qemu_mod.VirtioFS] = []
        virtiofsd: list[tuple[list[str], str]] = []
        vfsd = ""
        if b.rootfs_mode == "virtiofs" or b.shares:
            vfsd = find_virtiofsd()
        # sockets are named relative to the state directory, the shim's and QEMU's working
        # directory: absolute ones could exceed the 108 bytes a unix socket path may have
        if b.rootfs_mode == "virtiofs":
            sock = "fs-rootfs.sock"
            filesystems.append(qemu_mod.VirtioFS("rootfs", sock))
            virtiofsd.append((qemu_mod.virtiofsd_argv(vfsd, sock, str(b.rootfs)), sock))
        else:
            path, cached, upper = ensure_image(b.rootfs, b.rootfs_mode, self.vm_dir / "images",
                                               b.cache_key, d)
            disk = str(path)
            # the container's own additions, copied in before the bundle's file mounts
            b = replace(b, files=tuple(CopiedFile(p, data, mode) for p, data, mode in upper) + b.files)
        for sh in b.shares:
            sock = f"fs-{sh.tag}.sock"
            filesystems.append(qemu_mod.VirtioFS(sh.tag, sock))
            virtiofsd.append((qemu_mod.virtiofsd_argv(vfsd, sock, sh.source, sh.readonly), sock))
        net = None
        if b.network and b.netns:
            net = netdev.setup(b.netns)  # removed with the namespace, or by delete
            (d / "netns").write_text(b.netns)
        cmdline = qemu_mod.kernel_cmdline(
            root=b.rootfs_mode, hostname=bundle_mod.safe_hostname(b.hostname),
            network=b.network, shares=bool(b.shares), tsc_khz=tsc_khz() if acc.name == "tcg" else 0,
            address=net.address if net else "", gateway=net.gateway if net else "",
            debug=self.config.debug)
        machine = qemu_mod.Machine(
            qemu=qemu_bin, kernel=kernel, initrd=initrd, cmdline=cmdline,
            agent_socket="agent.sock", console_log=str(d / "console.log"),
            accel=acc.name, memory_mib=b.memory_mib, cpus=b.cpus, disk=disk,
            filesystems=tuple(filesystems), network=b.network, ports=() if net else b.ports,
            tap=netdev.TAP if net else "", mac=net.mac if net else "", netns=b.netns if net else "")
        p = b.process
        plan = {
            "id": id_,
            "bundle": str(b.bundle),
            "qemu_argv": qemu_mod.argv(machine),
            "virtiofsd": virtiofsd,
            "agent_socket": machine.agent_socket,
            "ctl_socket": "ctl.sock",
            "console_socket": console_socket,
            "process": {"args": list(p.args), "env": list(p.env), "cwd": p.cwd, "uid": p.uid,
                        "gid": p.gid, "additional_gids": list(p.additional_gids),
                        "terminal": p.terminal},
            "shares": [{"tag": s.tag, "target": s.target, "readonly": s.readonly} for s in b.shares],
            "files": [{"target": f.target, "mode": f.mode,
                       "content": base64.b64encode(f.content).decode()} for f in b.files],
            # after the shares and files; a read-only root last of all
            "mounts": [[m.fstype, m.source, m.target, list(m.options)] for m in b.mounts]
            + ([["", "", "/", ["remount", "ro"]]] if b.readonly else []),
            "cgroups_path": b.cgroups_path,
            "cpu": b.cpu,
            "accelerator": acc.name,
            "accelerator_reason": acc.reason,
            "rootfs": b.rootfs_mode,
            "disk": disk,
            "disk_cached": cached,
            "memory_mib": b.memory_mib,
            "cpus": b.cpus,
            "annotations": b.annotations,
            "boot_timeout": 120 if acc.name == "tcg" else 30,
        }
        (d / "plan.json").write_text(json.dumps(plan))
        rfd, wfd = os.pipe()
        try:
            shim = subprocess.Popen(
                [sys.executable, "-m", "pallet.vm.shim", str(d), str(wfd)],
                stdin=fin, stdout=fout, stderr=ferr, pass_fds=(wfd,), start_new_session=True,
                cwd=str(d),
            )
        finally:
            os.close(wfd)
        with os.fdopen(rfd, "rb") as r:
            answer = r.readline().decode().strip()
        if answer != "ok":
            shim.wait()
            raise RuntimeFailure(answer.removeprefix("error: ") or "the VM shim failed to start")
        (d / "shim.pid").write_text(str(shim.pid))
        self._write_summary(id_, b.bundle)
        if pid_file:
            Path(pid_file).write_text(str(shim.pid))
        self._children[id_] = shim
        return shim.pid

    def _write_summary(self, id_: str, bundle: Path) -> None:
        """``vm.json`` beside config.json: what ``inspect`` shows of the VM, kept after it is gone."""
        st = self.vm_state(id_)
        plan = self._plan(id_)
        doc = {"Kernel": st.kernel, "Accelerator": st.accelerator,
               "AcceleratorReason": plan.get("accelerator_reason", ""), "RootFilesystem": st.rootfs,
               "MemoryMiB": st.memory_mib, "CPUs": st.cpus, "BootSeconds": st.boot_seconds,
               "Machine": "microvm"}
        with contextlib.suppress(OSError):
            tmp = bundle / f".vm.json.{os.getpid()}"
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, bundle / SUMMARY)

    # -- control ------------------------------------------------------------------

    def _request(self, id_: str, req: dict[str, Any], fds: list[int] | None = None,
                 timeout: float | None = 30) -> dict[str, Any]:
        d = self._dir(id_)
        if not d.exists():
            raise ContainerNotFound(id_)
        try:
            s = connect_unix(str(d / "ctl.sock"), timeout)
        except OSError as e:
            raise RuntimeFailure(f"container {id_} is not running: {e.strerror or e}") from None
        try:
            socket.send_fds(s, [json.dumps(req).encode()], fds or [])
            line = s.makefile("rb").readline()
        except OSError as e:
            raise RuntimeFailure(f"container {id_} is not running: {e.strerror or e}") from None
        finally:
            s.close()
        if not line:
            raise RuntimeFailure(f"container {id_}: the VM stopped")
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise RuntimeFailure(msg["error"])
        return msg

    def start(self, id: str) -> None:
        st = self.vm_state(id)
        if st.status != "created":
            raise Conflict(f"cannot start a container that is {st.status}")
        self._request(id, {"op": "start"})

    def kill(self, id: str, sig: int | str = signals.SIGTERM, all: bool = False) -> None:
        num = _signum(sig)
        st = self.vm_state(id)
        if st.status == "stopped":
            raise Conflict(f"container {id} is not running")
        if st.status == "paused" and num == signals.SIGKILL:
            self.resume(id)
        if num == signals.SIGKILL:
            # the shim kills QEMU; should it not answer, do it without its help
            try:
                self._request(id, {"op": "kill", "signal": num}, timeout=5)
            except RuntimeFailure:
                raw = self._raw_state(id)
                qpid = int(raw.get("qemu_pid", 0))
                if same_process(qpid, int(raw.get("starts", {}).get(str(qpid), 0))):
                    os.kill(qpid, signals.SIGKILL)
            return
        self._request(id, {"op": "kill", "signal": num})

    def pause(self, id: str) -> None:
        """Freeze the whole VM (QEMU stopped; the guest's clock jumps on resume)."""
        self._freeze(id, True)

    def resume(self, id: str) -> None:
        self._freeze(id, False)

    def _freeze(self, id_: str, on: bool) -> None:
        st = self.vm_state(id_)
        if on and st.status != "running":
            raise Conflict(f"container {id_} is not running")
        if not on and st.status != "paused":
            raise Conflict(f"container {id_} is not paused")
        raw = self._raw_state(id_)
        qpid = int(raw.get("qemu_pid", 0))
        if not same_process(qpid, int(raw.get("starts", {}).get(str(qpid), 0))):
            raise Conflict(f"container {id_} is not running")
        os.kill(qpid, signals.SIGSTOP if on else signals.SIGCONT)
        marker = self._dir(id_) / "paused"
        if on:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def exec(self, id: str, process: dict[str, Any], *, stdin: Stdio = None, stdout: Stdio = None,
             stderr: Stdio = None, console_socket: str | None = None,
             detach: bool = False) -> int:
        """Run another process in the guest.

        With ``detach`` it returns at once the pid of a local relay process (a child of
        the caller) that stands for the guest process: it exits with its status and passes
        signals on, as the process ``runc exec -d`` leaves.  Otherwise it waits and returns
        the exit status.
        """
        user = process.get("user") or {}
        spec = {"args": list(process.get("args") or ()), "env": list(process.get("env") or ()),
                "cwd": process.get("cwd") or "/", "uid": int(user.get("uid", 0)),
                "gid": int(user.get("gid", 0)),
                "additional_gids": [int(g) for g in user.get("additionalGids") or ()],
                "terminal": bool(process.get("terminal", False))}
        if not spec["args"]:
            raise InvalidArgument("no command specified")
        d = self._dir(id)
        if self.vm_state(id).status != "running":
            raise Conflict(f"container {id} is not running")
        if spec["terminal"] and not console_socket:
            raise InvalidArgument("a terminal was requested but no console socket was given")
        argv = [sys.executable, "-m", "pallet.vm.execrelay", str(d / "ctl.sock"), json.dumps(spec)]
        if console_socket:
            argv.append(console_socket)
        nul = os.open(os.devnull, os.O_RDWR)
        try:
            relay = subprocess.Popen(argv, stdin=_fd(stdin, nul), stdout=_fd(stdout, 1),
                                     stderr=_fd(stderr, 2), start_new_session=True, cwd="/")
        finally:
            os.close(nul)
        if detach:
            return relay.pid
        return relay.wait()

    # -- state ----------------------------------------------------------------------

    def _plan(self, id_: str) -> dict[str, Any]:
        try:
            plan: dict[str, Any] = json.loads((self._dir(id_) / "plan.json").read_text())
            return plan
        except FileNotFoundError:
            raise ContainerNotFound(id_) from None

    def _raw_state(self, id_: str) -> dict[str, Any]:
        try:
            st: dict[str, Any] = json.loads((self._dir(id_) / "state.json").read_text())
            return st
        except (FileNotFoundError, ValueError):
            return {"status": "creating"}

    def state(self, id: str) -> dict[str, Any]:
        """runc's state JSON (the runtime interface), with the VM's own fields under ``vm``."""
        st = self.vm_state(id)
        doc = st.to_oci()
        doc["rootfs"] = str(Path(st.bundle) / "rootfs")
        doc["vm"] = {"kernel": st.kernel, "accelerator": st.accelerator, "rootfs": st.rootfs,
                     "memoryMiB": st.memory_mib, "cpus": st.cpus, "bootSeconds": st.boot_seconds,
                     "exitCode": st.exit_code, "error": st.error}
        return doc

    def vm_state(self, id: str) -> VMState:
        plan = self._plan(id)
        raw = self._raw_state(id)
        status = raw.get("status", "creating")
        shim_pid = int(raw.get("shim_pid", 0))
        self._reap(id)
        if status in ("created", "running", "creating") and not same_process(
            shim_pid, int(raw.get("starts", {}).get(str(shim_pid), 0))
        ):
            status = "stopped"
        if status == "running" and (self._dir(id) / "paused").exists():
            status = "paused"
        return VMState(
            id=id, status=status, pid=shim_pid if status != "stopped" else 0,
            bundle=plan["bundle"], exit_code=raw.get("exit_code"), kernel=raw.get("kernel", ""),
            accelerator=plan["accelerator"], rootfs=plan["rootfs"], memory_mib=plan["memory_mib"],
            cpus=plan["cpus"], boot_seconds=raw.get("boot_seconds"), error=raw.get("error", ""),
            annotations=plan.get("annotations", {}))

    def _reap(self, id_: str) -> None:
        child = self._children.get(id_)
        if child is not None:
            child.poll()

    def wait(self, id: str, timeout: float | None = None) -> int:
        """Block until the container's process ends; its exit status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        child = self._children.get(id)
        while True:
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=0.05)
            st = self.vm_state(id)
            if st.status == "stopped":
                return st.exit_code if st.exit_code is not None else 255
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"container {id} still running")
            if child is None:
                time.sleep(0.05)

    def delete(self, id: str, force: bool = False) -> None:
        d = self._dir(id)
        if not d.exists():
            raise ContainerNotFound(id)
        st = self.vm_state(id)
        if st.status != "stopped" and not force:
            raise Conflict(f"cannot delete container {id} that is not stopped: {st.status}")
        raw = self._raw_state(id)
        starts = {int(p): int(t) for p, t in raw.get("starts", {}).items()}
        ours = [p for p, t in starts.items() if same_process(p, t)]
        for pid in ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signals.SIGKILL)
        child = self._children.pop(id, None)
        if child is not None:
            child.wait()
        deadline = time.monotonic() + 5
        while any(same_process(p, starts[p]) for p in ours) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._net_teardown(d)
        self._cgroup_destroy(d)
        shutil.rmtree(d, ignore_errors=True)

    def list(self) -> list[str]:
        if not self.state_root.is_dir():
            return []
        return sorted(p.name for p in self.state_root.iterdir() if (p / "plan.json").exists())


if TYPE_CHECKING:
    from pallet.runtime.base import Runtime

    def _conforms(r: VMRuntime) -> Runtime:  # mypy checks the VM runtime against the interface
        return r


def _signum(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    s = sig.upper()
    if s.isdigit():
        return int(s)
    name = s if s.startswith("SIG") else "SIG" + s
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise InvalidArgument(f"invalid signal: {sig}") from None
