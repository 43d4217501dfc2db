"""``pallet pause`` / ``pallet unpause``: freeze and thaw all processes of containers."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Pause all processes within one or more containers")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def pause(config: Config, containers: tuple[str, ...]) -> int:
    """Pause all processes within one or more containers."""
    from pallet.engine.containers import ContainerService

    svc = ContainerService(config)
    for ref in containers:
        svc.pause(svc.get(ref))
        click.echo(ref)
    return 0


@click.command(short_help="Unpause all processes within one or more containers")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def unpause(config: Config, containers: tuple[str, ...]) -> int:
    """Unpause all processes within one or more containers."""
    from pallet.engine.containers import ContainerService

    svc = ContainerService(config)
    for ref in containers:
        svc.unpause(svc.get(ref))
        click.echo(ref)
    return 0
