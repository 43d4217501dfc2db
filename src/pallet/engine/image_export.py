"""``pallet export``: a container's merged filesystem as a tar stream."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from pallet.config import Config
from pallet.store import Store


def export_container(config: Config, name: str, out: BinaryIO) -> None:
    """Write a container's merged filesystem (image layers + its changes) as a tar stream."""
    import shutil
    import subprocess

    from pallet.errors import Unavailable

    try:
        from pallet.engine.containers import ContainerService
        from pallet.engine.rootfs import is_mountpoint
    except ImportError:
        raise Unavailable("export needs the container engine, which is not installed") from None
    c = ContainerService(config).get(name)
    store = Store(config.root / "store")
    tmp: Path | None = None
    src = c.rootfs
    if not is_mountpoint(c.rootfs):
        img = store.images.get(c.spec.image_id)
        lowers = store.snapshots.ensure(img)
        tmp = config.run_root / "export" / f"{c.id[:12]}-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        store.snapshots.mount(lowers, c.dir / "upper", c.dir / "work", tmp, readonly=True)
        src = tmp
    try:
        argv = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=security.capability",
                "-C", str(src), "-cf", "-", "."]
        if _has_fileno(out):
            out.flush()
            r = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE)
        else:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert p.stdout is not None
            shutil.copyfileobj(p.stdout, out, 1 << 20)
            err = p.stderr.read() if p.stderr else b""
            r = subprocess.CompletedProcess(argv, p.wait(), b"", err)
        if r.returncode == -13 or b"Broken pipe" in (r.stderr or b""):
            raise BrokenPipeError
        if r.returncode not in (0, 1):  # 1: a file changed while read (running container)
            raise Unavailable(f"export failed: {r.stderr.decode(errors='replace').strip()}")
    finally:
        if tmp is not None:
            store.snapshots.unmount(tmp)
            with contextlib.suppress(OSError):
                tmp.rmdir()


def _has_fileno(f: object) -> bool:
    try:
        f.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return True
