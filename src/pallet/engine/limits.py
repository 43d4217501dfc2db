"""Live resource limits and usage of containers: ``pallet update`` and ``pallet stats``.

A container's cgroup is the ``linux.cgroupsPath`` of its bundle's config.json
(whichever OCI runtime runs it, the cgroup is where that path says).
``update`` writes the new limits through the cgroup Manager while the
container runs and records them in the container's HostConfig fields, so that
``inspect`` shows them and the next start applies them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from typing import Any

from pallet.config import Config
from pallet.engine import resources
from pallet.engine.state import Container, ContainerStore
from pallet.errors import InvalidArgument
from pallet.runtime import cgroups

DEFAULT_PARENT = "/pallet"


def cgroup_path(c: Container) -> str:
    """The container's cgroups path, as its bundle says (``/pallet/<id>`` otherwise)."""
    try:
        with open(c.bundle / "config.json") as f:
            spec = json.load(f)
        path = spec.get("linux", {}).get("cgroupsPath")
        if path:
            return str(path)
    except (OSError, ValueError):
        pass
    return f"{DEFAULT_PARENT}/{c.id}"


def cgroup_of(
    c: Container, root: str = cgroups.DEFAULT_ROOT, fs: cgroups.CgroupFs | None = None
) -> cgroups.Manager:
    return cgroups.manager(cgroup_path(c), root=root, fs=fs)


def update(
    config: Config,
    ref: str,
    changes: dict[str, Any],
    *,
    cgroup_root: str = cgroups.DEFAULT_ROOT,
    cgroup_fs: cgroups.CgroupFs | None = None,
) -> Container:
    """Change the limits of container ``ref`` (live when it runs) and record them."""
    store = ContainerStore(config.root)
    cid = store.resolve(ref)
    with store.locked(cid):
        c = store.load(cid)
        if c.spec.isolation == "vm":
            raise InvalidArgument(f"Cannot update container {c.short_id}: its limits are fixed by its virtual machine")
        new = resources.merge_update(c.spec.resources, changes)
        if c.state.running:
            m = cgroup_of(c, cgroup_root, cgroup_fs)
            if m.exists():
                live = resources.oci_resources({k: v for k, v in new.items() if k in resources.UPDATABLE})
                try:
                    m.apply(live)
                except cgroups.CgroupError as e:
                    raise InvalidArgument(f"Cannot update container {c.short_id}: {e}") from None
        return store.set_spec(c, replace(c.spec, resources=new))


# -- stats ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One reading of a container's counters."""

    when: float  # time.monotonic()
    cpu_ns: int
    mem_usage: int
    mem_limit: int
    net_rx: int
    net_tx: int
    blk_read: int
    blk_write: int
    pids: int


def host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def net_io(pid: int) -> tuple[int, int]:
    """Bytes received and sent on every interface but lo, seen from ``pid``'s network namespace."""
    rx = tx = 0
    if pid <= 0:
        return 0, 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, data = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = data.split()
        if len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def sample(
    c: Container,
    *,
    mem_total: int = 0,
    cgroup_root: str = cgroups.DEFAULT_ROOT,
    cgroup_fs: cgroups.CgroupFs | None = None,
) -> Sample | None:
    """The counters of a running container, or None when it has no cgroup."""
    if not c.state.running:
        return None
    m = cgroup_of(c, cgroup_root, cgroup_fs)
    if not m.exists():
        return None
    s = m.stats()
    mem = s["memory"]
    usage = max(0, int(mem["usage"]) - int(mem.get("inactive_file") or 0))
    limit = mem["limit"] or mem_total or host_memory()
    if mem_total and limit > mem_total:
        limit = mem_total
    rx, tx = net_io(c.state.pid)
    return Sample(
        when=time.monotonic(),
        cpu_ns=int(s["cpu"]["usage_total"]),
        mem_usage=usage,
        mem_limit=int(limit),
        net_rx=rx,
        net_tx=tx,
        blk_read=int(s["blkio"]["read_bytes"]),
        blk_write=int(s["blkio"]["write_bytes"]),
        pids=int(s["pids"]["current"]),
    )


def cpu_percent(prev: Sample | None, cur: Sample | None) -> float:
    """CPU use between two samples, in % of one CPU (Docker's figure: 200% = two CPUs busy)."""
    if prev is None or cur is None or cur.when <= prev.when:
        return 0.0
    return max(0.0, (cur.cpu_ns - prev.cpu_ns) / ((cur.when - prev.when) * 1e9) * 100.0)


def online_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def oom_killed(c: Container) -> bool:
    """Whether the kernel's OOM killer struck in the container's cgroup (read it
    before the runtime removes the cgroup)."""
    try:
        m = cgroup_of(c)
        return m.exists() and m.oom_killed()
    except Exception:
        return False
