"""Docker's resource and security flags -> HostConfig fields -> the OCI runtime spec.

Two steps, both pure:

1. :func:`parse_flags` validates the command line's strings (``--memory 64m``,
   ``--cpus 0.5``, ``--cap-add``, ``--security-opt``...) into Docker's
   ``HostConfig`` fields (``Memory``, ``NanoCpus``, ``CapAdd``...), applying the
   daemon's defaults (``MemorySwap`` = 2 x ``Memory``).  That dict is what a
   container record keeps and what ``inspect`` shows.
2. :func:`apply_to_spec` turns those fields into the OCI spec's
   ``linux.resources``, ``process.capabilities``, ``linux.seccomp``,
   ``linux.sysctl``, ``linux.devices``, ``root.readonly``...

``pallet update`` uses :func:`parse_update` and :func:`merge_update` (Docker's
rules for changing limits of an existing container) and
:func:`oci_resources` for the live write.

Error messages are Docker's.
"""

from __future__ import annotations

import math
import os
import re

from pallet.engine import process_limits, security
from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # on every start: typing only for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
MIN_MEMORY = 6 * 1024 * 1024  # Docker's floor for --memory and --memory-reservation

# HostConfig resource fields that `pallet update` may change
UPDATABLE = (
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "NanoCpus",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "BlkioWeight",
)


def _bad(value: Any, flag: str, why: str) -> InvalidArgument:
    return InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: {why}')


def ram_in_bytes(text: str) -> int:
    """Docker's size syntax, binary units: "64m", "1.5g", "512k", "1048576"."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def _size(value: str | int | None, flag: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    try:
        return ram_in_bytes(value)
    except ValueError as e:
        raise _bad(value, flag, str(e)) from None


def _int(value: str | int | None, flag: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _bad(value, flag, f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def _cpuset(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not _CPUSET_RE.match(value):
        raise InvalidArgument(f"Invalid value {value} for {what}")
    for part in value.split(","):
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            raise InvalidArgument(f"Invalid value {value} for {what}")
    return value


def cpuset_members(value: str) -> set[int]:
    out: set[int] = set()
    for part in value.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _throttle(values: Iterable[str], flag: str, *, bps: bool) -> list[dict[str, Any]]:
    out = []
    for v in values:
        path, sep, rate = v.rpartition(":")
        if not sep or not path:
            raise _bad(v, flag, f"bad format: {v}")
        if not path.startswith("/dev/"):
            raise _bad(v, flag, f"bad format for device path: {v}")
        try:
            n = ram_in_bytes(rate) if bps else int(rate)
            if n < 0:
                raise ValueError
        except ValueError:
            unit = "[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb" if bps else ". Number must be a positive integer"
            raise _bad(
                v, flag, f"invalid rate for device: {v}. The correct format is <device-path>:<number>{unit}"
            ) from None
        out.append({"Path": path, "Rate": n})
    return out


# -- 1. flags -> HostConfig -----------------------------------------------------------


def parse_flags(
    *,
    memory: str | None = None,
    memory_swap: str | None = None,
    memory_reservation: str | None = None,
    cpus: str | None = None,
    cpu_shares: str | int | None = None,
    cpu_period: str | int | None = None,
    cpu_quota: str | int | None = None,
    cpuset_cpus: str | None = None,
    cpuset_mems: str | None = None,
    pids_limit: str | int | None = None,
    blkio_weight: str | int | None = None,
    device_read_bps: Iterable[str] = (),
    device_write_bps: Iterable[str] = (),
    device_read_iops: Iterable[str] = (),
    device_write_iops: Iterable[str] = (),
    oom_kill_disable: bool = False,
    cap_add: Iterable[str] = (),
    cap_drop: Iterable[str] = (),
    privileged: bool = False,
    security_opt: Iterable[str] = (),
    read_only: bool = False,
    sysctl: Iterable[str] = (),
    device: Iterable[str] = (),
    userns: str | None = None,
    memory_swappiness: str | int | None = None,
    device_cgroup_rule: Iterable[str] = (),
    ulimit: Iterable[str] = (),
    shm_size: str | None = None,
    oom_score_adj: str | int | None = None,
    network_mode: str = "",
    ncpu: int | None = None,
    read_file: Callable[[str], bytes] | None = None,
) -> dict[str, Any]:
    """The HostConfig fields these ``run``/``create`` flags set (only those given),
    validated, with the daemon's defaults applied."""
    hc: dict[str, Any] = resource_fields(
        memory=memory,
        memory_swap=memory_swap,
        memory_reservation=memory_reservation,
        cpus=cpus,
        cpu_shares=cpu_shares,
        cpu_period=cpu_period,
        cpu_quota=cpu_quota,
        cpuset_cpus=cpuset_cpus,
        cpuset_mems=cpuset_mems,
        pids_limit=pids_limit,
        blkio_weight=blkio_weight,
        ncpu=ncpu,
    )
    for key, vals, flag, bps in (
        ("BlkioDeviceReadBps", device_read_bps, "--device-read-bps", True),
        ("BlkioDeviceWriteBps", device_write_bps, "--device-write-bps", True),
        ("BlkioDeviceReadIOps", device_read_iops, "--device-read-iops", False),
        ("BlkioDeviceWriteIOps", device_write_iops, "--device-write-iops", False),
    ):
        parsed = _throttle(vals, flag, bps=bps)
        if parsed:
            hc[key] = parsed
    if oom_kill_disable:
        hc["OomKillDisable"] = True
    swappiness = _int(memory_swappiness, "--memory-swappiness")
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
        hc["MemorySwappiness"] = swappiness
    hc.update(
        process_limits.parse_flags(
            ulimit=ulimit, shm_size=_size(shm_size, "--shm-size"), oom_score_adj=oom_score_adj
        )
    )
    rules = [security.parse_device_cgroup_rule(x) for x in device_cgroup_rule]
    if rules:
        hc["DeviceCgroupRules"] = rules
    hc.update(
        security.parse_flags(
            cap_add=cap_add,
            cap_drop=cap_drop,
            privileged=privileged,
            security_opt=security_opt,
            read_only=read_only,
            sysctl=sysctl,
            device=device,
            userns=userns,
            network_mode=network_mode,
            read_file=read_file,
        )
    )
    check(hc)
    if hc.get("Memory") and not hc.get("MemorySwap"):
        hc["MemorySwap"] = 2 * hc["Memory"]  # the daemon's default: as much swap as memory
    return hc


def resource_fields(
    *,
    memory: str | int | None = None,
    memory_swap: str | int | None = None,
    memory_reservation: str | int | None = None,
    cpus: str | float | None = None,
    cpu_shares: str | int | None = None,
    cpu_period: str | int | None = None,
    cpu_quota: str | int | None = None,
    cpuset_cpus: str | None = None,
    cpuset_mems: str | None = None,
    pids_limit: str | int | None = None,
    blkio_weight: str | int | None = None,
    ncpu: int | None = None,
) -> dict[str, Any]:
    """The limit flags shared by ``run``, ``create`` and ``update``, parsed (not cross-checked)."""
    hc: dict[str, Any] = {}
    mem = _size(memory, "-m, --memory")
    if mem is not None:
        hc["Memory"] = mem
    if memory_swap not in (None, ""):
        hc["MemorySwap"] = -1 if str(memory_swap) == "-1" else _size(memory_swap, "--memory-swap")
    res = _size(memory_reservation, "--memory-reservation")
    if res is not None:
        hc["MemoryReservation"] = res
    if cpus not in (None, ""):
        try:
            value = float(cpus)  # type: ignore[arg-type]
            if not math.isfinite(value):
                raise ValueError
        except ValueError:
            raise _bad(cpus, "--cpus", f"failed to parse {cpus} as a rational number") from None
        n = ncpu or os.cpu_count() or 1
        if value < 0 or (value > 0 and (value < 0.01 or value > n)):
            raise InvalidArgument(
                f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
            )
        hc["NanoCpus"] = round(value * 1e9)
    for key, val, flag in (
        ("CpuShares", cpu_shares, "-c, --cpu-shares"),
        ("CpuPeriod", cpu_period, "--cpu-period"),
        ("CpuQuota", cpu_quota, "--cpu-quota"),
        ("PidsLimit", pids_limit, "--pids-limit"),
        ("BlkioWeight", blkio_weight, "--blkio-weight"),
    ):
        iv = _int(val, flag)
        if iv is not None:
            hc[key] = iv
    cs = _cpuset(cpuset_cpus, "cpuset cpus")
    if cs is not None:
        n = ncpu or os.cpu_count() or 1
        bad = sorted(c for c in cpuset_members(cs) if c >= n)
        if bad:
            raise InvalidArgument(
                f"Requested CPUs are not available - requested {cs}, available: {'0' if n == 1 else f'0-{n - 1}'}"
            )
        hc["CpusetCpus"] = cs
    cm = _cpuset(cpuset_mems, "cpuset mems")
    if cm is not None:
        hc["CpusetMems"] = cm
    return hc


def check(hc: Mapping[str, Any]) -> None:
    """The daemon's consistency rules on a (complete) set of resource fields."""
    mem = hc.get("Memory") or 0
    swap = hc.get("MemorySwap") or 0
    res = hc.get("MemoryReservation") or 0
    if mem and mem < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if swap and swap != -1 and not mem:
        raise InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    if mem and swap and swap != -1 and swap < mem:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if res and res < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if mem and res and mem < res:
        raise InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    if hc.get("NanoCpus") and hc.get("CpuPeriod"):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if hc.get("NanoCpus") and hc.get("CpuQuota"):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    period = hc.get("CpuPeriod") or 0
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidArgument(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    quota = hc.get("CpuQuota") or 0
    if quota and 0 < quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if hc.get("CpuShares", 0) < 0:
        raise InvalidArgument("invalid CPU shares: must be a positive integer")
    weight = hc.get("BlkioWeight") or 0
    if weight and not 10 <= weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")


# -- update ---------------------------------------------------------------------------


def parse_update(**flags: Any) -> dict[str, Any]:
    """The fields ``pallet update`` flags change (same syntax as ``run``)."""
    return resource_fields(**flags)


def merge_update(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A container's HostConfig fields after ``update``, by Docker's rules."""
    if not changes:
        raise InvalidArgument("You must provide one or more flags when using this command.")
    new = dict(current)
    if "Memory" in changes and "MemorySwap" not in changes:
        cur_swap = current.get("MemorySwap") or 0
        if cur_swap > 0 and changes["Memory"] > cur_swap:
            raise InvalidArgument(
                "Memory limit should be smaller than already set memoryswap limit, "
                "update the memoryswap at the same time"
            )
    if "NanoCpus" in changes:  # --cpus replaces a period/quota pair, and the other way round
        new.pop("CpuPeriod", None)
        new.pop("CpuQuota", None)
    if "CpuPeriod" in changes or "CpuQuota" in changes:
        new.pop("NanoCpus", None)
    new.update(changes)
    if changes.get("PidsLimit") is not None and changes["PidsLimit"] <= 0:
        new["PidsLimit"] = -1
    check(new)
    return new


# -- 2. HostConfig -> OCI -------------------------------------------------------------


def oci_resources(
    hc: Mapping[str, Any], *, stat: Callable[[str], os.stat_result] = os.stat
) -> dict[str, Any]:
    """OCI ``linux.resources`` for the resource fields of ``hc`` (devices excluded)."""
    r: dict[str, Any] = {}
    mem: dict[str, Any] = {}
    if hc.get("Memory"):
        mem["limit"] = int(hc["Memory"])
    if hc.get("MemorySwap"):
        mem["swap"] = int(hc["MemorySwap"])
    if hc.get("MemoryReservation"):
        mem["reservation"] = int(hc["MemoryReservation"])
    if hc.get("OomKillDisable"):
        mem["disableOOMKiller"] = True
    if hc.get("MemorySwappiness") is not None:
        mem["swappiness"] = int(hc["MemorySwappiness"])
    if mem:
        r["memory"] = mem
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("NanoCpus"):
        cpu["period"] = 100_000
        cpu["quota"] = int(hc["NanoCpus"]) * 100_000 // 1_000_000_000
    else:
        if hc.get("CpuPeriod"):
            cpu["period"] = int(hc["CpuPeriod"])
        if hc.get("CpuQuota"):
            cpu["quota"] = int(hc["CpuQuota"])
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        r["cpu"] = cpu
    if hc.get("PidsLimit"):
        r["pids"] = {"limit": int(hc["PidsLimit"]) if hc["PidsLimit"] > 0 else -1}
    blkio: dict[str, Any] = {}
    if hc.get("BlkioWeight"):
        blkio["weight"] = int(hc["BlkioWeight"])
    for key, oci_key in (
        ("BlkioDeviceReadBps", "throttleReadBpsDevice"),
        ("BlkioDeviceWriteBps", "throttleWriteBpsDevice"),
        ("BlkioDeviceReadIOps", "throttleReadIOPSDevice"),
        ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice"),
    ):
        rules = []
        for d in hc.get(key) or []:
            try:
                st = stat(d["Path"])
            except OSError as e:
                raise InvalidArgument(f"error getting device {d['Path']}: {e.strerror}") from None
            rules.append({"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev), "rate": int(d["Rate"])})
        if rules:
            blkio[oci_key] = rules
    if blkio:
        r["blockIO"] = blkio
    return r


def apply_to_spec(
    spec: Mapping[str, Any],
    hc: Mapping[str, Any],
    *,
    stat: Callable[[str], os.stat_result] = os.stat,
    host_devices: Callable[[], list[dict[str, Any]]] | None = None,
    available_caps: Iterable[str] | None = None,
) -> dict[str, Any]:
    """A copy of the OCI ``spec`` with ``hc``'s limits and security settings in it.

    ``host_devices`` lists the nodes a privileged container gets (default: all of
    /dev); ``available_caps`` is what "all capabilities" means (default: this
    process's bounding set)."""
    import copy

    out = copy.deepcopy(dict(spec))
    linux = out.setdefault("linux", {})
    resources = linux.setdefault("resources", {})
    resources.update(oci_resources(hc, stat=stat))
    security.apply(out, hc, stat=stat, host_devices=host_devices, available_caps=available_caps)
    process_limits.apply(out, hc)
    return out
