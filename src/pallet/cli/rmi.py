"""``pallet rmi`` / ``pallet image rm``."""

from __future__ import annotations

import sys

import click

from pallet.config import Config


@click.command(help="Remove one or more images.")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@click.pass_obj
def rmi(config: Config, images: tuple[str, ...], force: bool, no_prune: bool) -> None:
    from pallet.engine.images import ImageService
    from pallet.errors import PalletError

    svc = ImageService(config)
    failed: list[str] = []
    for name in images:
        try:
            r = svc.remove(name, force=force, prune=not no_prune)
        except PalletError as e:
            failed.append(str(e))
            continue
        for u in r.untagged:
            click.echo(f"Untagged: {u}")
        for d in r.deleted:
            click.echo(f"Deleted: {d}")
    if failed:
        for msg in failed:
            sys.stderr.write(f"Error response from daemon: {msg}\n" if len(failed) > 1 else f"Error: {msg}\n")
        sys.exit(1 if len(failed) < len(images) else 125)
