"""``pallet import`` / ``pallet image import``: an image from a rootfs tarball."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(
    "import",
    help="Import the contents from a tarball to create a filesystem image.\n\n"
    "SOURCE is a file, an http(s) URL or '-' for standard input (plain, gzip, zstd, xz or bzip2).",
)
@click.argument("source")
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.option("--platform", "platform_", default="", help="Set platform if server is multi-platform capable.")
@click.pass_obj
def import_(
    config: Config, source: str, reference: str | None, changes: tuple[str, ...], message: str, platform_: str
) -> None:
    from pallet.engine.images import ImageService

    img = ImageService(config).import_(source, reference, list(changes), message, platform_)
    click.echo(img.id)
