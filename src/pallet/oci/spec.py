"""Docker's default OCI runtime spec (config.json) for a container: a pure builder.

The defaults are those ``docker run`` gives a container that is not
``--privileged``: Docker's 14 capabilities, its masked and read-only paths under
/proc and /sys, its /dev, /dev/shm (64 MB) and /sys/fs/cgroup mounts, and
RLIMIT_NOFILE at 1048576.
"""

from __future__ import annotations

from pallet.oci.capabilities import DOCKER_DEFAULT

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2"
DEFAULT_CAPS = list(DOCKER_DEFAULT)
MASKED = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_NAMESPACES = ("pid", "ipc", "uts", "mount", "network", "cgroup")
NOFILE = 1048576


def default_nofile() -> int:
    """Docker's RLIMIT_NOFILE (1048576), capped at what this process may grant."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return NOFILE if hard == resource.RLIM_INFINITY or hard >= NOFILE else int(hard)


def default_mounts() -> list[dict[str, Any]]:
    """Docker's mounts for every container (before the user's volumes)."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    ]


def default_spec(args: list[str], *, env: list[str], cwd: str = "/", uid: int = 0, gid: int = 0,
                 additional_gids: list[int] | tuple[int, ...] | None = None, hostname: str = "",
                 terminal: bool = False, readonly_rootfs: bool = False, rootfs: str = "rootfs",
                 namespaces: tuple[str, ...] | list[str] = DEFAULT_NAMESPACES,
                 netns_path: str | None = None, no_new_privileges: bool = False,
                 oom_score_adj: int = 0, nofile: int | None = None) -> dict[str, Any]:
    """The config.json of a container running ``args``, with Docker's defaults.

    ``netns_path`` joins an existing network namespace (``network`` is then kept in the
    list with that path); ``namespaces`` leaves one out to share the host's.  Capabilities
    follow Docker: bounding, effective and permitted hold the default set, inheritable and
    ambient are empty, so a non-root user's permitted and effective sets are emptied by the
    kernel when it execs the process (its bounding set still holds the default).

    RLIMIT_NOFILE is ``nofile``, by default Docker's 1048576, or the caller's own hard
    limit when that is lower (raising it needs CAP_SYS_RESOURCE, which a host may withhold).
    """
    if nofile is None:
        nofile = default_nofile()
    ns: list[dict[str, str]] = []
    for t in namespaces:
        if t == "network" and netns_path:
            ns.append({"type": "network", "path": netns_path})
        else:
            ns.append({"type": t})
    if netns_path and "network" not in namespaces:
        ns.append({"type": "network", "path": netns_path})
    caps = list(DEFAULT_CAPS)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": uid, "gid": gid, "additionalGids": list(additional_gids or [])},
            "args": list(args),
            "env": list(env),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": no_new_privileges,
            "oomScoreAdj": oom_score_adj,
        },
        "root": {"path": rootfs, "readonly": readonly_rootfs},
        "hostname": hostname,
        "mounts": default_mounts(),
        "linux": {
            "namespaces": ns,
            "maskedPaths": list(MASKED),
            "readonlyPaths": list(READONLY),
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }
