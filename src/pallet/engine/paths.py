"""Paths inside a container's root filesystem, resolved without ever leaving it."""

from __future__ import annotations

import os
from pathlib import Path


def secure_join(root: Path, path: str, max_links: int = 255) -> Path:
    """``root``/``path`` with every symlink resolved as if ``root`` were ``/``.

    ``..`` and absolute symlinks are clamped at ``root``, so the result never
    names anything outside it (like runc's securejoin).  Missing trailing
    components are kept as they are.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if resolved:
                resolved.pop()
            continue
        cur = os.path.join(str(root), *resolved, p)
        try:
            st = os.lstat(cur)
        except OSError:
            resolved.append(p)
            continue
        import stat

        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > max_links:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(cur)
            if target.startswith("/"):
                resolved = []
            parts = [t for t in target.split("/") if t and t != "."] + parts
            continue
        resolved.append(p)
    return Path(os.path.join(str(root), *resolved)) if resolved else Path(root)


def lookup_path(root: Path, cmd: str, env_path: str) -> Path | None:
    """Where ``cmd`` resolves inside ``root`` with the container's PATH (None if nowhere)."""
    if "/" in cmd:
        p = secure_join(root, cmd)
        return p if p.exists() else None
    for d in (env_path or "").split(":"):
        if not d:
            continue
        p = secure_join(root, f"{d}/{cmd}")
        if p.is_file():
            return p
    return None
