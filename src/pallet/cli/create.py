"""``pallet create``: create a new container without starting it."""

from __future__ import annotations

from typing import Any

import click

from pallet.cli.app import options
from pallet.cli.run import CONTEXT, container_options
from pallet.cli.run_impl import create_container
from pallet.cli.run_options import CREATE_ONLY
from pallet.config import Config


@click.command(context_settings=CONTEXT, short_help="Create a new container")
@options(CREATE_ONLY)
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(config: Config, **kw: Any) -> int:
    """Create a new container."""
    return create_container(config, **kw)
