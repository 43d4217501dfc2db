"""Filesystem set-up inside the container's mount namespace (run by the init only).

Order, as runc does it: make / private, bind the rootfs onto itself, mount the
spec's mounts under it (paths resolved without following symlinks out of the
root), create the default devices, pivot_root, then mask and make read-only the
paths the spec names.
"""

from __future__ import annotations

import errno
import os
import stat

from pallet.linux import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    # option: (clear?, flag)
    "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID),
    "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV),
    "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC),
    "exec": (True, sc.MS_NOEXEC),
    "noatime": (False, sc.MS_NOATIME),
    "relatime": (False, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME),
    "bind": (False, sc.MS_BIND),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "remount": (False, sc.MS_REMOUNT),
    "silent": (False, sc.MS_SILENT),
    "defaults": (False, 0),
}
PROPAGATION = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
}

DEFAULT_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """(mount flags, propagation flags, data string) from OCI mount options."""
    flags = 0
    prop = 0
    data: list[str] = []
    for o in options:
        if o in MOUNT_FLAGS:
            clear, f = MOUNT_FLAGS[o]
            flags = flags & ~f if clear else flags | f
        elif o in PROPAGATION:
            prop = PROPAGATION[o]
        elif o in ("tmpcopyup", "nocopy", "private-tmpfs", "idmap", "ridmap"):
            continue
        else:
            data.append(o)
    return flags, prop, ",".join(data)


def secure_join(root: str, path: str) -> str:
    """``root/path`` with every symlink resolved as if ``root`` were ``/``: never outside root."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    seen = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if resolved:
                resolved.pop()
            continue
        cur = os.path.join(root, *resolved, p)
        try:
            st = os.lstat(cur)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(p)  # missing components are kept as they are
            continue
        if stat.S_ISLNK(st.st_mode):
            seen += 1
            if seen > 255:
                raise OSError(errno.ELOOP, "too many symlinks", path)
            target = os.readlink(cur)
            if target.startswith("/"):
                resolved = []
            parts = [x for x in target.split("/") if x and x != "."] + parts
            continue
        resolved.append(p)
    return os.path.join(root, *resolved)


def _mkdirs(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _make_target(dest: str, source_is_dir: bool) -> None:
    if source_is_dir:
        _mkdirs(dest)
    else:
        _mkdirs(os.path.dirname(dest))
        if not os.path.lexists(dest):
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def mount_one(rootfs: str, m: dict[str, Any], cgroup_mounts: list[tuple[str, str]]) -> None:
    dest_rel = m["destination"]
    dest = secure_join(rootfs, dest_rel)
    mtype = m.get("type") or ""
    source = m.get("source") or ""
    options = list(m.get("options") or [])
    flags, prop, data = parse_options(options)
    is_bind = bool(flags & sc.MS_BIND) or mtype == "bind"
    if is_bind:
        try:
            st = os.stat(source)
        except OSError as e:
            raise OSError(e.errno, f"bind mount source {source}: {os.strerror(e.errno or 0)}") from None
        _make_target(dest, stat.S_ISDIR(st.st_mode))
        sc.mount(source, dest, None, sc.MS_BIND | (flags & sc.MS_REC))
        extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if extra:
            # read-only and friends apply only on a remount of the bind
            sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | extra | _locked_flags(dest))
        if prop:
            sc.mount(None, dest, None, prop)
        return
    if mtype == "cgroup":
        _mount_cgroups(dest, flags, cgroup_mounts)
        return
    _mkdirs(dest)
    if mtype == "sysfs":
        try:
            sc.mount(source or "sysfs", dest, "sysfs", flags, data or None)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EBUSY):
                raise
            # no network namespace of its own: a read-only bind of the host's /sys instead
            sc.mount("/sys", dest, None, sc.MS_BIND | sc.MS_REC)
            sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | flags)
        return
    sc.mount(source or mtype, dest, mtype, flags, data or None)
    if prop:
        sc.mount(None, dest, None, prop)


def _locked_flags(path: str) -> int:
    """Flags of the mount at ``path`` that a remount in a namespace may not clear."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    out = 0
    for bit, flag in ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV),
                      (os.ST_NOEXEC, sc.MS_NOEXEC)):
        if st.f_flag & bit:
            out |= flag
    return out


def host_cgroup_mounts() -> list[tuple[str, str]]:
    """(mount point name, fstype:options) of the host's cgroup hierarchies, from the init's view."""
    out: list[tuple[str, str]] = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return out
    for line in lines:
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        fstype, _src, superopts = (post.split() + ["", "", ""])[:3]
        mp = fields[4]
        if not mp.startswith("/sys/fs/cgroup"):
            continue
        if fstype == "cgroup":
            subsys = [o for o in superopts.split(",") if o not in ("rw", "ro") and not o.startswith("release_agent")]
            out.append((mp[len("/sys/fs/cgroup"):].lstrip("/"), "cgroup:" + ",".join(subsys)))
        elif fstype == "cgroup2":
            out.append((mp[len("/sys/fs/cgroup"):].lstrip("/"), "cgroup2:"))
    return out


def _mount_cgroups(dest: str, flags: int, hierarchies: list[tuple[str, str]]) -> None:
    """/sys/fs/cgroup as the container sees it: its own cgroup (cgroup namespace) of each hierarchy."""
    _mkdirs(dest)
    ro = flags & sc.MS_RDONLY
    base = (flags & ~sc.MS_RDONLY) | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    only_v2 = len(hierarchies) == 1 and hierarchies[0][0] == ""
    if only_v2:
        sc.mount("cgroup2", dest, "cgroup2", base | ro)
        return
    sc.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for name, spec in hierarchies:
        if not name:
            continue
        fstype, _, opts = spec.partition(":")
        target = os.path.join(dest, name)
        _mkdirs(target)
        try:
            sc.mount("cgroup", target, fstype, base | ro, opts or None)
        except OSError:
            os.rmdir(target)
    # the comounted names the host links (cpu -> cpu,cpuacct) are not needed on this layout
    if ro:
        sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | base)


def setup_devices(rootfs: str, devices: list[dict[str, Any]]) -> None:
    """Bind the default device nodes (and the spec's) from the host into /dev."""
    dev = os.path.join(rootfs, "dev")
    names = list(DEFAULT_DEVICES)
    for d in devices:
        # the spec's nodes are made from their type and numbers (--device HOST:OTHER-PATH)
        path = d.get("path", "")
        if d.get("type") in ("c", "b", "u") and "major" in d and "minor" in d and path.startswith("/dev/"):
            dst = secure_join(rootfs, path)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.lexists(dst):
                os.unlink(dst)
            kind = stat.S_IFBLK if d["type"] == "b" else stat.S_IFCHR
            try:
                os.mknod(dst, kind | (int(d.get("fileMode", 0o666)) & 0o7777),
                         os.makedev(int(d["major"]), int(d["minor"])))
            except PermissionError:
                # in a user namespace no node can be made: the host's, bound (as runc does)
                _make_target(dst, False)
                sc.mount(path, dst, None, sc.MS_BIND)
                continue
            os.chown(dst, int(d.get("uid", 0)), int(d.get("gid", 0)))
            os.chmod(dst, int(d.get("fileMode", 0o666)) & 0o7777)
            continue
        if path.startswith("/dev/") and path[5:] not in names:
            names.append(path[5:])
    for name in names:
        src = "/dev/" + name
        dst = secure_join(rootfs, src)
        if not os.path.exists(src):
            continue
        _make_target(dst, False)
        sc.mount(src, dst, None, sc.MS_BIND)
    for link, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ):
        p = os.path.join(dev, link)
        if not os.path.lexists(p):
            os.symlink(target, p)
    if os.path.exists("/proc/kcore") and not os.path.lexists(os.path.join(dev, "core")):
        os.symlink("/proc/kcore", os.path.join(dev, "core"))


def pivot(rootfs: str) -> None:
    os.chdir(rootfs)
    sc.pivot_root(".", ".")
    sc.umount(".", sc.MNT_DETACH)
    os.chdir("/")


def mask_paths(paths: list[str]) -> None:
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        try:
            if stat.S_ISDIR(st.st_mode):
                sc.mount("tmpfs", p, "tmpfs", sc.MS_RDONLY, None)
            else:
                sc.mount("/dev/null", p, None, sc.MS_BIND)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EACCES):
                raise


def readonly_paths(paths: list[str]) -> None:
    for p in paths:
        if not os.path.exists(p):
            continue
        sc.mount(p, p, None, sc.MS_BIND | sc.MS_REC)
        sc.mount(None, p, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | _locked_flags(p))


def readonly_root() -> None:
    sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _locked_flags("/"))


def write_sysctls(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        with open(path, "w") as f:
            f.write(str(value))


def setup_rootfs(spec: dict[str, Any], bundle: str, before_cgroup: Any = None) -> None:
    """Everything from a private / to pivot_root and the masks (in the container's mount ns).

    ``before_cgroup`` is called before the first cgroup mount (the process must be in its
    cgroup and cgroup namespace by then), and in any case before pivot_root."""
    root = spec.get("root") or {}
    rootfs = root.get("path") or "rootfs"
    if not rootfs.startswith("/"):
        rootfs = os.path.join(bundle, rootfs)
    rootfs = os.path.realpath(rootfs)
    linux = spec.get("linux") or {}
    prop = PROPAGATION.get(linux.get("rootfsPropagation") or "rprivate", sc.MS_PRIVATE | sc.MS_REC)
    sc.mount(None, "/", None, sc.MS_REC | (prop if prop & sc.MS_SLAVE else sc.MS_PRIVATE))
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    hierarchies = host_cgroup_mounts()
    dev_mounted = False
    for m in spec.get("mounts") or []:
        if before_cgroup is not None and m.get("type") == "cgroup":
            before_cgroup()
        mount_one(rootfs, m, hierarchies)
        if m.get("destination") == "/dev":
            dev_mounted = True
    if dev_mounted:
        setup_devices(rootfs, list(linux.get("devices") or []))
    if before_cgroup is not None:
        before_cgroup()
    pivot(rootfs)
    if linux.get("sysctl"):
        write_sysctls(dict(linux["sysctl"]))
    mask_paths(list(linux.get("maskedPaths") or []))
    readonly_paths(list(linux.get("readonlyPaths") or []))
    if root.get("readonly"):
        readonly_root()
