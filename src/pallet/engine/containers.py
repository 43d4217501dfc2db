"""The container lifecycle: create, start, stop, kill, remove, and what the rest of pallet asks of it."""

from __future__ import annotations

from pallet.config import Config
from pallet.engine.state import ContainerStore


def image_ids_in_use(config: Config) -> dict[str, list[str]]:
    """Image id (``sha256:...``) -> names of the containers created from it."""
    out: dict[str, list[str]] = {}
    for c in ContainerStore(config.root).all():
        out.setdefault(c.spec.image_id, []).append(c.name)
    return out
