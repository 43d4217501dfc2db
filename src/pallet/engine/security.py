"""Docker's security flags: capabilities, seccomp, no-new-privileges, sysctls,
devices, read-only root, privileged mode and user namespaces.

``parse_flags`` turns the flags into HostConfig fields (``CapAdd``, ``CapDrop``,
``Privileged``, ``SecurityOpt``, ``ReadonlyRootfs``, ``Sysctls``, ``Devices``,
``UsernsMode``); ``apply`` writes them into an OCI spec.  Both pure but for
reading a seccomp profile file and stat()ing device nodes (both injectable).
"""

from __future__ import annotations

import json
import os
import stat as stat_mod
from pathlib import Path

from pallet.errors import InvalidArgument
from pallet.oci import seccomp_default

TYPE_CHECKING = False  # typing only for the type checker
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

# Capabilities by number (capability.h), up to CAP_CHECKPOINT_RESTORE (Linux 5.9)
ALL_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip

# Docker's default set
DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip

# Sysctls that belong to a container's own namespaces (Docker's list)
NAMESPACED_SYSCTLS = frozenset(
    {
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
    }
)  # fmt: skip
NAMESPACED_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")

# The device nodes every container gets and may use (runc's and Docker's default)
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},  # mknod of any char or block node, but no use
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # pts/*
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # net/tun
)


# nodes every runtime creates itself in a container's /dev
_DEFAULT_NODES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}


def normalize_cap(name: str) -> str:
    up = name.strip().upper()
    if up == "ALL":
        return up
    cap = up if up.startswith("CAP_") else f"CAP_{up}"
    if cap not in ALL_CAPS:
        raise InvalidArgument(f'unknown capability: "{cap}"')
    return cap


def bounding_caps(status: str | None = None) -> list[str]:
    """The capabilities in this process's bounding set: "all" can be no more
    (an engine itself confined cannot hand out what it lacks)."""
    if status is None:
        try:
            with open("/proc/self/status") as f:
                status = f.read()
        except OSError:
            return list(ALL_CAPS)
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return [c for i, c in enumerate(ALL_CAPS) if mask >> i & 1]
    return list(ALL_CAPS)


def capabilities(
    cap_add: Iterable[str] = (),
    cap_drop: Iterable[str] = (),
    *,
    privileged: bool = False,
    available: Iterable[str] | None = None,
) -> list[str]:
    """The container's capability set, by Docker's rules: ALL in --cap-add
    grants everything, ALL in --cap-drop starts from nothing, and an added
    capability wins over a dropped one.  "Everything" is ``available``
    (default: this process's bounding set)."""
    every = list(available) if available is not None else bounding_caps()
    if privileged:
        return every
    add = [normalize_cap(c) for c in cap_add]
    drop = [normalize_cap(c) for c in cap_drop]
    base = list(every) if "ALL" in add else list(DEFAULT_CAPS)
    caps = [] if "ALL" in drop else [c for c in base if c not in drop]
    for c in add:
        if c != "ALL" and c not in caps:
            caps.append(c)
    return caps


def validate_sysctl(item: str, network_mode: str = "") -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidArgument(f"sysctl '{item}' is not whitelisted")
    if key not in NAMESPACED_SYSCTLS and not key.startswith(NAMESPACED_SYSCTL_PREFIXES):
        raise InvalidArgument(f"sysctl '{item}' is not whitelisted")
    if key.startswith("net.") and network_mode == "host":
        raise InvalidArgument(f"sysctl '{item}' not allowed in host network namespace")
    return key, value


def parse_device(spec: str) -> dict[str, str]:
    """``--device HOST[:CONTAINER][:PERMISSIONS]``."""
    parts = spec.split(":")
    perms = "rwm"
    if len(parts) > 1 and parts[-1] and set(parts[-1]) <= set("rwm") and not parts[-1].startswith("/"):
        perms = parts.pop()
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgument(f"invalid device specification: {spec}")
    host = parts[0]
    target = parts[1] if len(parts) == 2 and parts[1] else host
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid device specification: {spec}")
    return {"PathOnHost": host, "PathInContainer": target, "CgroupPermissions": perms}


def parse_device_cgroup_rule(rule: str) -> str:
    """``--device-cgroup-rule 'c 42:* rmw'`` (validated, kept as given)."""
    import re

    if not re.fullmatch(r"([abc]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})", rule.strip()):
        raise InvalidArgument(f"invalid device cgroup format '{rule}'")
    return rule.strip()


def device_cgroup_rule(rule: str) -> dict[str, Any]:
    typ, devs, access = rule.split()
    major, _, minor = devs.partition(":")
    out: dict[str, Any] = {"allow": True, "type": typ, "access": access}
    if major != "*":
        out["major"] = int(major)
    if minor != "*":
        out["minor"] = int(minor)
    return out


def parse_userns(value: str | None) -> str:
    """``--userns``: "" or "host" (the host's user namespace), "auto" or
    "auto:size=N" (a private range of subordinate ids, podman's syntax; see
    :mod:`pallet.engine.userns`).  The mode is kept as given."""
    v = (value or "").strip()
    if v in ("", "host"):
        return v  # the common case: nothing more imported on the run path
    from pallet.engine.userns import parse_size

    parse_size(v)
    return v


def parse_flags(
    *,
    cap_add: Iterable[str] = (),
    cap_drop: Iterable[str] = (),
    privileged: bool = False,
    security_opt: Iterable[str] = (),
    read_only: bool = False,
    sysctl: Iterable[str] = (),
    device: Iterable[str] = (),
    userns: str | None = None,
    network_mode: str = "",
    read_file: Callable[[str], bytes] | None = None,
) -> dict[str, Any]:
    hc: dict[str, Any] = {}
    add = [normalize_cap(c) for c in cap_add]
    drop = [normalize_cap(c) for c in cap_drop]
    if add:
        hc["CapAdd"] = add
    if drop:
        hc["CapDrop"] = drop
    if privileged:
        hc["Privileged"] = True
    opts = parse_security_opts(security_opt, read_file=read_file)
    if opts:
        hc["SecurityOpt"] = opts
    if read_only:
        hc["ReadonlyRootfs"] = True
    sysctls = dict(validate_sysctl(s, network_mode) for s in sysctl)
    if sysctls:
        hc["Sysctls"] = sysctls
    devices = [parse_device(d) for d in device]
    if devices:
        hc["Devices"] = devices
    mode = parse_userns(userns)
    if mode:
        hc["UsernsMode"] = mode
        if privileged and mode != "host":
            raise InvalidArgument(
                "privileged mode is incompatible with user namespaces.  You must run the container "
                "in the host namespace when running privileged mode"
            )
    return hc


def parse_security_opts(
    opts: Iterable[str], *, read_file: Callable[[str], bytes] | None = None
) -> list[str]:
    """Docker's ``--security-opt`` values; a seccomp profile path is replaced by
    the profile's content, as the docker CLI sends it."""
    out = []
    for opt in opts:
        if opt in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
            out.append("no-new-privileges=true")
            continue
        if opt in ("no-new-privileges=false", "no-new-privileges:false"):
            out.append("no-new-privileges=false")
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if not sep:
            raise InvalidArgument(f'Invalid --security-opt: "{opt}"')
        if key == "seccomp":
            if value == "unconfined" or value == "builtin":
                out.append(f"seccomp={value}")
                continue
            try:
                data = (read_file or _read)(value)
            except OSError as e:
                raise InvalidArgument(f"opening seccomp profile ({value}) failed: {e.strerror or e}") from None
            seccomp_default.parse_profile(data)  # fail now on a broken profile
            out.append(f"seccomp={json.dumps(json.loads(data), separators=(',', ':'))}")
        elif key in ("apparmor", "label", "systempaths", "mask", "unmask"):
            if key == "systempaths" and value != "unconfined":
                raise InvalidArgument(f'Invalid --security-opt: "{opt}"')
            out.append(f"{key}={value}")
        else:
            raise InvalidArgument(f'Invalid --security-opt: "{opt}"')
    return out


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _opt(hc: Mapping[str, Any], key: str) -> str | None:
    value = None
    for o in hc.get("SecurityOpt") or []:
        k, _, v = o.partition("=")
        if k == key:
            value = v
    return value


# -- HostConfig -> OCI spec ----------------------------------------------------------


def apply(
    spec: dict[str, Any],
    hc: Mapping[str, Any],
    *,
    stat: Callable[[str], os.stat_result] = os.stat,
    host_devices: Callable[[], list[dict[str, Any]]] | None = None,
    available_caps: Iterable[str] | None = None,
    userns_range: Callable[[str], Any] | None = None,
) -> None:
    """Write ``hc``'s security settings into the OCI ``spec`` (in place).

    A remapped container (``UsernsMode`` auto) gets a user namespace with its
    range, read by ``userns_range(root path)`` (default: the record in the
    container directory that holds the rootfs)."""
    privileged = bool(hc.get("Privileged"))
    caps = capabilities(
        hc.get("CapAdd") or (), hc.get("CapDrop") or (), privileged=privileged, available=available_caps
    )
    process = spec.setdefault("process", {})
    process["capabilities"] = {
        "bounding": list(caps),
        "effective": list(caps),
        "permitted": list(caps),
    }
    if _opt(hc, "no-new-privileges") == "true":
        process["noNewPrivileges"] = True
    linux = spec.setdefault("linux", {})

    # seccomp: Docker's default unless unconfined or privileged, else the given profile
    profile = _opt(hc, "seccomp")
    if privileged or profile == "unconfined":
        linux.pop("seccomp", None)
    elif profile and profile != "builtin":
        oci = seccomp_default.to_oci(seccomp_default.parse_profile(profile), caps)
        if oci is None:
            linux.pop("seccomp", None)
        else:
            linux["seccomp"] = oci
    else:
        linux["seccomp"] = seccomp_default.default_profile(caps)

    if hc.get("ReadonlyRootfs"):
        spec.setdefault("root", {})["readonly"] = True
    if hc.get("Sysctls"):
        linux.setdefault("sysctl", {}).update(hc["Sysctls"])

    resources = linux.setdefault("resources", {})
    devices = linux.setdefault("devices", [])
    if privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
        have = {d.get("path") for d in devices} | _DEFAULT_NODES
        for node in host_devices() if host_devices else list_host_devices():
            if node["path"] not in have:
                devices.append(node)
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
        for m in spec.get("mounts") or []:
            if m.get("type") in ("sysfs", "cgroup", "cgroup2"):
                m["options"] = [o for o in m.get("options") or [] if o != "ro"] + ["rw"]
    else:
        rules = [dict(r) for r in DEFAULT_DEVICE_RULES]
        for d in hc.get("Devices") or []:
            node = device_node(d["PathOnHost"], d["PathInContainer"], stat=stat)
            devices.append(node)
            rules.append(
                {
                    "allow": True,
                    "type": node["type"],
                    "major": node["major"],
                    "minor": node["minor"],
                    "access": d.get("CgroupPermissions") or "rwm",
                }
            )
        rules += [device_cgroup_rule(r) for r in hc.get("DeviceCgroupRules") or []]
        resources["devices"] = rules
        if _opt(hc, "systempaths") == "unconfined":
            linux["maskedPaths"] = []
            linux["readonlyPaths"] = []
    if (hc.get("UsernsMode") or "host") != "host":
        _apply_userns(spec, userns_range)


def _apply_userns(spec: dict[str, Any], userns_range: Callable[[str], Any] | None) -> None:
    from pallet.engine import userns

    root = str((spec.get("root") or {}).get("path") or "")
    rng = userns_range(root) if userns_range else userns.load(Path(root).parent)
    if rng is None:
        raise InvalidArgument("--userns=auto: this container has no user namespace range (recreate it)")
    userns.apply(spec, rng)


def device_node(host: str, target: str, *, stat: Callable[[str], os.stat_result] = os.stat) -> dict[str, Any]:
    """An OCI ``linux.devices`` entry for the host node ``host``."""
    try:
        st = stat(host)
    except OSError as e:
        raise InvalidArgument(
            f'error gathering device information while adding custom device "{host}": {e.strerror or e}'
        ) from None
    if stat_mod.S_ISCHR(st.st_mode):
        typ = "c"
    elif stat_mod.S_ISBLK(st.st_mode):
        typ = "b"
    else:
        raise InvalidArgument(f'error gathering device information while adding custom device "{host}": not a device node')
    return {
        "path": target,
        "type": typ,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat_mod.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def list_host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every char/block node under /dev (what --privileged hands a container)."""
    out = []
    skip = {"/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx"}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for f in filenames:
            p = os.path.join(dirpath, f)
            if p in skip:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat_mod.S_ISCHR(st.st_mode) or stat_mod.S_ISBLK(st.st_mode):
                out.append(device_node(p, p, stat=os.lstat))
    return out
