"""Paths inside a container's root filesystem, resolved without ever leaving it."""

from __future__ import annotations

from pathlib import Path


def secure_join(root: Path, path: str) -> Path:
    """``root``/``path`` with every symlink resolved as if ``root`` were ``/``.

    ``..`` and absolute symlinks are clamped at ``root``, so the result never
    names anything outside it (like runc's securejoin).  Missing trailing
    components are kept as they are.  The runtime's resolver, shared.
    """
    from pallet.runtime.rootfs import secure_join as join

    return Path(join(str(root), path))


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
