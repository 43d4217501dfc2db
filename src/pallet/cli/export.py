"""``pallet export CONTAINER``: a container's filesystem as a tar archive."""

from __future__ import annotations

import sys

import click

from pallet.config import Config


@click.command(help="Export a container's filesystem as a tar archive.")
@click.argument("container")
@click.option("-o", "--output", default="", help="Write to a file, instead of STDOUT.")
@click.pass_obj
def export(config: Config, container: str, output: str) -> None:
    from pallet.engine.image_export import export_container
    from pallet.errors import InvalidArgument

    if not output and sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    if output:
        with open(output, "wb") as f:
            export_container(config, container, f)
    else:
        sys.stdout.flush()
        export_container(config, container, sys.stdout.buffer)
