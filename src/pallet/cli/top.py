"""``pallet top``: the processes of a running container, as ``ps`` shows them."""

from __future__ import annotations

import os
import subprocess

import click

from pallet.config import Config


def container_pids(init_pid: int) -> list[int]:
    """Every host pid in the same pid namespace as ``init_pid``."""
    try:
        ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{e}/ns/pid") == ns:
                out.append(int(e))
        except OSError:
            continue
    return sorted(out)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(e))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return sorted(out)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
               short_help="Display the running processes of a container")
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top(config: Config, container: str, ps_args: tuple[str, ...]) -> int:
    """Display the running processes of a container."""
    from pallet.engine.containers import ContainerService
    from pallet.errors import Conflict, InvalidArgument

    c = ContainerService(config).get(container)
    if not c.state.running or not c.state.pid:
        raise Conflict(f"container {c.id} is not running")
    # a VM's processes on the host are its shim and what it started (QEMU, virtiofsd);
    # the shim shares the host's pid namespace, so the namespace would show everything
    pids = set(descendants(c.state.pid) if c.spec.runtime == "vm" else container_pids(c.state.pid))
    args = list(ps_args) or ["-ef"]
    p = subprocess.run(["ps", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise InvalidArgument(f"ps: {p.stderr.strip()}")
    lines = p.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("Couldn't find PID field in ps output")
    col = header.index("PID")
    click.echo(lines[0])
    for ln in lines[1:]:
        fields = ln.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            click.echo(ln)
    return 0
