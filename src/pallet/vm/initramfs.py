"""The guest's initramfs: busybox, the kernel modules it needs, an init script and the agent.

Pure builders (:func:`file_list`, :func:`init_script`, :func:`write_cpio`) and one
cached build (:func:`ensure_initramfs`) under ``<root>/vm/``.  The archive is
cpio "newc", gzip-compressed, written in Python.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pallet.errors import Unavailable
from pallet.vm.kernel import Kernel

BUSYBOX = "/bin/busybox"
AGENT_PORT = "pallet.agent"
# Load order matters: each module after those it depends on.  Each belongs to a
# group; the guest loads only the groups its kernel command line asks for.
MODULE_GROUPS = (
    ("core", "drivers/virtio/virtio_ring"),
    ("core", "drivers/virtio/virtio"),
    ("core", "drivers/virtio/virtio_mmio"),
    ("core", "drivers/char/virtio_console"),
    ("blk", "drivers/block/virtio_blk"),
    ("net", "net/core/failover"),
    ("net", "drivers/net/net_failover"),
    ("net", "drivers/net/virtio_net"),
    ("fs", "fs/fuse/fuse"),
    ("fs", "fs/fuse/virtiofs"),
    ("blk", "fs/overlayfs/overlay"),
    ("erofs", "lib/libcrc32c"),
    ("erofs", "fs/erofs/erofs"),
)
MODULES = tuple(m for _g, m in MODULE_GROUPS)
APPLETS = ("sh", "mount", "umount", "mkdir", "insmod", "cat", "hostname", "ip", "echo",
           "poweroff", "sleep", "ls", "ln")
INIT_VERSION = "6"


@dataclass(frozen=True)
class Entry:
    """One archive member: a directory, a file (from ``source`` or ``data``), a symlink or a node."""

    path: str
    kind: str  # "dir" | "file" | "symlink" | "chr"
    mode: int = 0o755
    source: str = ""
    data: bytes = b""
    target: str = ""
    rdev: tuple[int, int] = (0, 0)


def init_script() -> str:
    """The guest's /init: mount the root filesystem, set the stage, hand over to the agent.

    Kernel command line parameters read: ``pallet.root=erofs|ext4|virtiofs``,
    ``pallet.hostname=NAME``, ``pallet.net=1``, ``pallet.ip=ADDR/LEN``, ``pallet.gw=ADDR``
    (otherwise QEMU's user network), ``pallet.fs=1`` (virtio-fs shares),
    ``pallet.probe=1``.
    """
    return r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
ROOT=erofs HOST= NET= PROBE= FS= IP= GW=
for a in $(cat /proc/cmdline); do
  case "$a" in
    pallet.root=*) ROOT=${a#pallet.root=} ;;
    pallet.hostname=*) HOST=${a#pallet.hostname=} ;;
    pallet.net=*) NET=${a#pallet.net=} ;;
    pallet.fs=*) FS=${a#pallet.fs=} ;;
    pallet.ip=*) IP=${a#pallet.ip=} ;;
    pallet.gw=*) GW=${a#pallet.gw=} ;;
    pallet.probe=*) PROBE=1 ;;
  esac
done
fail() { echo "pallet-init: $*"; poweroff -f; }
if [ -n "$PROBE" ]; then echo "pallet-probe-ok"; poweroff -f; fi
WANT=" core "
case "$ROOT" in erofs) WANT="$WANT blk erofs " ;; ext4) WANT="$WANT blk " ;; virtiofs) FS=1 ;; esac
[ "$FS" = 1 ] && WANT="$WANT fs "
[ "$NET" = 1 ] && WANT="$WANT net "
/bin/pallet-agent --modules /lib/modules "$WANT "
mkdir -p /lower /rw /newroot
case "$ROOT" in
  virtiofs) mount -t virtiofs rootfs /newroot || fail "cannot mount the virtio-fs root" ;;
  erofs|ext4)
    n=0; while [ ! -b /dev/vda ] && [ $n -lt 200 ]; do sleep 0.01; n=$((n+1)); done
    mount -t $ROOT -o ro /dev/vda /lower || fail "cannot mount the $ROOT root"
    mount -t tmpfs -o mode=0755 tmpfs /rw
    mkdir -p /rw/upper /rw/work
    mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot \
      || fail "cannot mount the overlay" ;;
  *) fail "unknown root $ROOT" ;;
esac
R=/newroot
mkdir -p $R/proc $R/sys $R/dev $R/tmp
mount -t proc proc $R/proc
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts $R/dev/pts
mount --bind $R/dev/pts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
mount -t tmpfs -o nosuid,nodev,mode=1777 shm $R/dev/shm
[ -n "$HOST" ] && hostname "$HOST"
ip link set lo up
if [ "$NET" = 1 ] && [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  if [ -n "$IP" ]; then
    ip addr add "$IP" dev eth0
    [ -n "$GW" ] && ip route add default via "$GW"
  else
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
  fi
fi
PORT=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat $p/name 2>/dev/null)" = "pallet.agent" ] && PORT=/dev/${p##*/}
done
[ -n "$PORT" ] || fail "no agent port"
exec /bin/pallet-agent $PORT
"""


def file_list(kernel: Kernel, agent: str, busybox: str = BUSYBOX) -> list[Entry]:
    """Everything in the initramfs, in archive order (directories before their contents)."""
    entries = [Entry(d, "dir") for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules", "tmp")]
    entries.append(Entry("dev/console", "chr", 0o600, rdev=(5, 1)))
    entries.append(Entry("bin/busybox", "file", 0o755, source=busybox))
    entries += [Entry(f"bin/{a}", "symlink", 0o777, target="busybox") for a in APPLETS]
    entries.append(Entry("bin/pallet-agent", "file", 0o755, source=agent))
    names = []
    for group, m in MODULE_GROUPS:
        name = os.path.basename(m)
        names.append(f"{group}:{name}")
        entries.append(Entry(f"lib/modules/{name}.ko", "file", 0o644, source=f"{kernel.modules}/kernel/{m}.ko"))
    entries.append(Entry("lib/modules/order", "file", 0o644, data=("\n".join(names) + "\n").encode()))
    entries.append(Entry("init", "file", 0o755, data=init_script().encode()))
    return entries


def _header(ino: int, mode: int, nlink: int, size: int, name: bytes, rdev: tuple[int, int]) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    return b"070701" + b"".join(f"{f:08X}".encode() for f in fields)


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def write_cpio(entries: Iterable[Entry]) -> bytes:
    """The entries as an uncompressed cpio newc archive."""
    out = bytearray()
    kinds = {"dir": 0o040000, "file": 0o100000, "symlink": 0o120000, "chr": 0o020000}
    for ino, e in enumerate([*entries, Entry("TRAILER!!!", "file", 0)], start=1):
        if e.kind == "file":
            data = Path(e.source).read_bytes() if e.source else e.data
        elif e.kind == "symlink":
            data = e.target.encode()
        else:
            data = b""
        name = e.path.encode()
        nlink = 2 if e.kind == "dir" else 1
        mode = 0 if e.path == "TRAILER!!!" else kinds[e.kind] | e.mode
        hdr = _header(ino, mode, nlink, len(data), name, e.rdev) + name + b"\0"
        out += hdr + _pad(len(hdr)) + data + _pad(len(data))
    return bytes(out)


def agent_source() -> bytes:
    return resources.files("pallet.vm").joinpath("agent.c").read_bytes()


def build_agent(dest: Path) -> Path:
    """Compile the guest agent statically (gcc and libc6-dev)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise Unavailable("cannot build the VM guest agent: no C compiler (apt-get install gcc libc6-dev)")
    with tempfile.TemporaryDirectory(prefix="pallet-agent-") as tmp:
        src = Path(tmp) / "agent.c"
        src.write_bytes(agent_source())
        out = Path(tmp) / "agent"
        r = subprocess.run([cc, "-static", "-Os", "-s", "-o", str(out), str(src)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Unavailable(f"cannot build the VM guest agent: {r.stderr.strip().splitlines()[-1:]}"
                              " (apt-get install gcc libc6-dev)")
        tmp_dest = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.copy2(out, tmp_dest)
        os.replace(tmp_dest, dest)
    return dest


def cache_key(kernel: Kernel) -> str:
    h = hashlib.sha256()
    h.update(INIT_VERSION.encode())
    h.update(kernel.release.encode())
    h.update(agent_source())
    h.update(init_script().encode())
    st = os.stat(BUSYBOX)
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def ensure_initramfs(vm_dir: Path, kernel: Kernel) -> Path:
    """The cached initramfs for ``kernel`` (built on first use)."""
    if not os.access(BUSYBOX, os.X_OK):
        raise Unavailable("VM isolation needs busybox in the guest: apt-get install busybox-static")
    for m in MODULES:
        if not os.path.exists(f"{kernel.modules}/kernel/{m}.ko"):
            raise Unavailable(f"the guest kernel {kernel.release} lacks the module {os.path.basename(m)}")
    key = cache_key(kernel)
    path = vm_dir / f"initramfs-{key}.img"
    if path.exists():
        return path
    vm_dir.mkdir(parents=True, exist_ok=True)
    agent = build_agent(vm_dir / f"agent-{key}")
    data = gzip.compress(write_cpio(file_list(kernel, str(agent))), compresslevel=6, mtime=0)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    agent.unlink(missing_ok=True)
    return path
