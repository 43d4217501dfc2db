"""The low-level runtime interface: an OCI bundle in, a process out.

Implementations: :class:`pallet.runtime.pallet_runtime.PalletRuntime` (pallet's
own, in Python) and :class:`pallet.runtime.oci_cli.OCICLIRuntime` (runc or crun
driven through their command line).  The VM runtime implements it too.

Reaping: ``create`` leaves the container's process (pid 1 of its pid namespace)
blocked before exec.  Its intermediate parent exits, so the process is
re-parented to the nearest *child subreaper* among the caller's ancestors: a
caller that wants to ``waitpid()`` it (a monitor, the foreground ``run``) calls
``pallet.linux.syscalls.set_child_subreaper()`` before ``create``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing and dataclasses stay out of the runtime's start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Protocol
else:
    Protocol = object

STATUSES = ("creating", "created", "running", "stopped", "paused")


def state_json(id: str, status: str, pid: int, bundle: str, created: str = "",
               annotations: dict[str, str] | None = None, owner: str = "") -> dict[str, Any]:
    """runc's state JSON."""
    return {
        "ociVersion": "1.0.2",
        "id": id,
        "pid": pid,
        "status": status,
        "bundle": bundle,
        "rootfs": bundle.rstrip("/") + "/rootfs" if bundle else "rootfs",
        "created": created,
        "owner": owner,
        "annotations": dict(annotations or {}),
    }


class Runtime(Protocol):
    def create(
        self,
        id: str,
        bundle: str | Path,
        *,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        console_socket: str | None = None,
        pid_file: str | Path | None = None,
    ) -> int: ...

    def start(self, id: str) -> None: ...

    def state(self, id: str) -> dict[str, Any]: ...

    def kill(self, id: str, sig: int | str = 15, all: bool = False) -> None: ...

    def delete(self, id: str, force: bool = False) -> None: ...

    def pause(self, id: str) -> None: ...

    def resume(self, id: str) -> None: ...

    def exec(
        self,
        id: str,
        process: dict[str, Any],
        *,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        console_socket: str | None = None,
        detach: bool = False,
    ) -> int: ...


def run(runtime: Runtime, id: str, bundle: str | Path, *, stdin: int | None = None,
        stdout: int | None = None, stderr: int | None = None) -> int:
    """create, start, wait and delete: the container's exit status as Docker reports it
    (its own code, or 128 + the signal that ended it).

    Makes the calling process a child subreaper (see the module's docstring) so that it
    can wait for the container's process; errors of create and start are raised as
    :class:`pallet.errors.PalletError` (127 not found, 126 cannot execute)."""
    import os

    from pallet.linux.syscalls import set_child_subreaper

    set_child_subreaper()
    pid = runtime.create(id, bundle, stdin=stdin, stdout=stdout, stderr=stderr)
    try:
        runtime.start(id)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        runtime.delete(id, force=True)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
