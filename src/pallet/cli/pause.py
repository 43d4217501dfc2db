"""``pallet pause`` / ``pallet unpause``: freeze and thaw all processes of containers."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Pause all processes within one or more containers")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def pause(config: Config, containers: tuple[str, ...]) -> int:
    """Pause all processes within one or more containers."""
    return _each(config, containers, "pause")


@click.command(short_help="Unpause all processes within one or more containers")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def unpause(config: Config, containers: tuple[str, ...]) -> int:
    """Unpause all processes within one or more containers."""
    return _each(config, containers, "unpause")


def _each(config: Config, containers: tuple[str, ...], verb: str) -> int:
    from pallet.cli.each import exit_status, for_each
    from pallet.engine.containers import ContainerService

    svc = ContainerService(config)
    change = svc.pause if verb == "pause" else svc.unpause

    def one(ref: str) -> None:
        change(svc.get(ref))

    return exit_status(for_each(containers, one))
