"""``pallet rmi`` / ``pallet image rm``."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(help="Remove one or more images.")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@click.pass_obj
def rmi(config: Config, images: tuple[str, ...], force: bool, no_prune: bool) -> int:
    from pallet.cli.each import exit_status, for_each
    from pallet.engine.images import ImageService

    svc = ImageService(config)

    def remove_one(name: str) -> str:
        r = svc.remove(name, force=force, prune=not no_prune)
        return "\n".join([*(f"Untagged: {u}" for u in r.untagged), *(f"Deleted: {d}" for d in r.deleted)])

    return exit_status(for_each(images, remove_one))
