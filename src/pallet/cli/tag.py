"""``pallet tag SOURCE TARGET``."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(help="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.")
@click.argument("source")
@click.argument("target")
@click.pass_obj
def tag(config: Config, source: str, target: str) -> None:
    from pallet.engine.images import ImageService

    ImageService(config).tag(source, target)
