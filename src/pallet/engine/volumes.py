"""Named and anonymous volumes: ``<root>/volumes/<name>/_data`` plus a small JSON record."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.config import Config
from pallet.engine.state import ContainerStore, atomic_write
from pallet.errors import Conflict, InvalidArgument, VolumeNotFound

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANON_LABEL = "com.docker.volume.anonymous"


@dataclass(frozen=True)
class Volume:
    name: str
    mountpoint: Path
    created_at: str
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return ANON_LABEL in self.labels

    def inspect(self) -> dict[str, Any]:
        return {
            "CreatedAt": self.created_at,
            "Driver": "local",
            "Labels": self.labels or None,
            "Mountpoint": str(self.mountpoint),
            "Name": self.name,
            "Options": self.options or None,
            "Scope": "local",
        }


class VolumeService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dir = config.root / "volumes"

    def _record(self, name: str) -> Path:
        return self.dir / name / "volume.json"

    def create(
        self, name: str = "", labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None, anonymous: bool = False,
    ) -> Volume:
        labels = dict(labels or {})
        if not name:
            name = os.urandom(32).hex()
            if anonymous:
                labels[ANON_LABEL] = ""
        if not _NAME.match(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume name, '
                'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed'
            )
        for k in options or {}:
            if k not in ("type", "device", "o"):
                raise InvalidArgument(f"invalid option key: {k!r}")
        try:
            return self.get(name)  # Docker: creating an existing volume is a no-op
        except VolumeNotFound:
            pass
        d = self.dir / name
        (d / "_data").mkdir(parents=True, exist_ok=True)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        vol = Volume(name, d / "_data", created, labels, dict(options or {}))
        doc = {"Name": name, "CreatedAt": created, "Labels": labels, "Options": vol.options}
        atomic_write(self._record(name), json.dumps(doc).encode())
        return vol

    def get(self, name: str) -> Volume:
        try:
            doc = json.loads(self._record(name).read_bytes()) if "/" not in name else None
        except (FileNotFoundError, ValueError):
            doc = None
        if not doc:
            raise VolumeNotFound(name)
        return Volume(name, self.dir / name / "_data", doc.get("CreatedAt", ""),
                      dict(doc.get("Labels") or {}), dict(doc.get("Options") or {}))

    def all(self) -> list[Volume]:
        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        for n in names:
            try:
                out.append(self.get(n))
            except VolumeNotFound:
                continue
        return out

    def users(self) -> dict[str, list[str]]:
        """Volume name -> ids of the containers that mount it."""
        out: dict[str, list[str]] = {}
        for c in ContainerStore(self.config.root).all():
            for m in c.spec.mounts:
                if m.type == "volume" and m.source:
                    out.setdefault(m.source, []).append(c.id)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        vol = self.get(name)
        using = self.users().get(name)
        if using:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(using)}]")
        self._delete(vol)
        del force

    def _delete(self, vol: Volume) -> None:
        d = self.dir / vol.name
        tomb = self.dir / f".removing-{vol.name}"
        try:
            os.rename(d, tomb)
        except FileNotFoundError:
            return
        shutil.rmtree(tomb, ignore_errors=True)

    def prune(self, all_volumes: bool = False, label_filters: tuple[str, ...] = ()) -> tuple[list[str], int]:
        used = self.users()
        removed: list[str] = []
        size = 0
        for v in self.all():
            if v.name in used or (not all_volumes and not v.anonymous):
                continue
            if not _labels_match(v.labels, label_filters):
                continue
            size += du(v.mountpoint)
            self._delete(v)
            removed.append(v.name)
        return removed, size


def _labels_match(labels: dict[str, str], filters: tuple[str, ...]) -> bool:
    for f in filters:
        k, eq, v = f.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def copy_up(src: Path, dst: Path) -> None:
    """Fill an empty new volume with the image's content at its mount point (Docker does this)."""
    if not src.is_dir() or any(dst.iterdir()):
        return
    for entry in os.listdir(src):
        s, d = src / entry, dst / entry
        if s.is_symlink() or not s.is_dir():
            shutil.copy2(s, d, follow_symlinks=False)
        else:
            shutil.copytree(s, d, symlinks=True)
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, st.st_mode & 0o7777)
