"""RUN: the step's command in a container over the parent's layers; its overlay upper dir
becomes the layer.  The container itself is made by an executor the engine provides."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pallet.oci.record import field, record

# paths the runtime creates as mount points: not part of the layer when they were not in the image
MOUNT_POINTS = ("proc", "sys", "dev", "etc/resolv.conf", "etc/hosts", "etc/hostname", "run/secrets")


@record(frozen=True)
class BindMount:
    source: str
    destination: str
    read_only: bool = True


@record(frozen=True)
class RunRequest:
    id: str
    rootfs: Path
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str
    network: str  # "host" | "none"
    mounts: tuple[BindMount, ...] = field(default_factory=tuple)


class Executor(Protocol):
    def run(self, req: RunRequest, output: Callable[[bytes], None]) -> int: ...


def cleanup_mount_points(upper: Path, in_image: Callable[[str], bool]) -> None:
    """Drop the runtime's mount points from the upper dir when the image did not have them."""
    for rel in MOUNT_POINTS:
        p = upper / rel
        if not os.path.lexists(p) or in_image(rel):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                if not any(p.iterdir()):
                    p.rmdir()
            elif p.stat().st_size == 0:
                p.unlink()
