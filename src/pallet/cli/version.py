"""``pallet version``."""

from __future__ import annotations

import platform

import click

from pallet import __version__


@click.command(help="Show the pallet version information.")
def version() -> None:
    click.echo(f"pallet version {__version__}")
    click.echo(f"python {platform.python_version()}, {platform.system()}/{platform.machine()}")
