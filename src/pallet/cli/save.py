"""``pallet save``: write images to a tar archive (Docker's format, or OCI's)."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(help="Save one or more images to a tar archive (streamed to STDOUT by default)")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", default="", help="Write to a file, instead of STDOUT")
@click.option("--format", "fmt", default="docker-archive", show_default=True,
              type=click.Choice(["docker-archive", "oci-archive", "oci-dir"]),
              help="Archive format: Docker's, an OCI layout in a tar, or an OCI layout directory.")
@click.pass_obj
def save(config: Config, images: tuple[str, ...], output: str, fmt: str) -> None:
    from pallet.engine.distribution import save as do_save

    do_save(config, list(images), output, fmt)
