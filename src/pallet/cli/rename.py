"""``pallet rename``."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Rename a container")
@click.argument("container")
@click.argument("new_name")
@click.pass_obj
def rename(config: Config, container: str, new_name: str) -> int:
    """Rename a container."""
    from pallet.engine.containers import ContainerService

    svc = ContainerService(config)
    svc.rename(svc.get(container), new_name)
    return 0
