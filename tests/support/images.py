"""Test images made without a registry: a tiny busybox rootfs from Debian's busybox-static."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = "/bin/busybox"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
"""
GROUP = """root:x:0:
daemon:x:1:
wheel:x:10:app
audio:x:29:app
app:x:1000:
nogroup:x:65534:
"""


def busybox_available() -> bool:
    return os.path.exists(BUSYBOX) and os.access(BUSYBOX, os.X_OK)


def busybox_applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
    return [a for a in out.split() if a and a != "busybox"]


def make_busybox_rootfs(dest: Path) -> Path:
    """Lay out a minimal busybox root filesystem in ``dest``."""
    for d in ("bin", "etc", "root", "tmp", "home/app", "proc", "sys", "dev", "usr/bin", "var"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    for applet in busybox_applets():
        link = dest / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    (dest / "etc" / "os-release").write_text('NAME="BusyBox"\nID=busybox\nPRETTY_NAME="BusyBox test image"\n')
    (dest / "etc" / "hostname").write_text("busybox\n")
    return dest


def make_busybox_tar(path: Path, compress: str = "") -> Path:
    """A rootfs tarball (plain, 'gz' or 'zst') of the busybox tree, entries relative to '.'."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = make_busybox_rootfs(Path(tmp) / "rootfs")
        plain = path if not compress else path.with_suffix(".tar")
        with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tf:
            tf.add(root, arcname=".")
        if compress == "gz":
            subprocess.run(["gzip", "-f", "-k", str(plain)], check=True)
            os.replace(str(plain) + ".gz", path)
            plain.unlink()
        elif compress == "zst":
            subprocess.run(["zstd", "-q", "-f", "--rm", str(plain), "-o", str(path)], check=True)
    return path


def tar_with(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """Build a tar archive in memory from (TarInfo, data) pairs: for hostile-input tests."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()
