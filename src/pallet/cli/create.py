"""``pallet create``: create a new container without starting it."""

from __future__ import annotations

from typing import Any

import click

from pallet.cli.run import CONTEXT, build_options, container_options
from pallet.config import Config


@click.command(context_settings=CONTEXT, short_help="Create a new container")
@click.option("--rm", "auto_remove", is_flag=True, help="Automatically remove the container when it exits")
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(config: Config, auto_remove: bool, image: str, command: tuple[str, ...], **kw: Any) -> int:
    """Create a new container."""
    from pallet.engine.containers import ContainerService

    opts = build_options(config, image, command, kw, auto_remove=auto_remove)
    c = ContainerService(config).create(opts)
    click.echo(c.id)
    return 0
