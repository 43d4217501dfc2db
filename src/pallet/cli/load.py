"""``pallet load``: load images from a Docker archive, an OCI layout or an oci-archive."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(help="Load an image from a tar archive or STDIN")
@click.option("-i", "--input", "input_", default="",
              help="Read from tar archive file (or OCI layout directory), instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@click.option("--platform", default="", help="Platform to load from a multi-platform archive")
@click.pass_obj
def load(config: Config, input_: str, quiet: bool, platform: str) -> None:
    from pallet.engine.distribution import load as do_load

    lines = do_load(config, input_, platform=platform)
    if not quiet:
        for line in lines:
            click.echo(line)
