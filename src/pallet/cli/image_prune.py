"""``pallet image prune``."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(help="Remove unused images.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
@click.pass_obj
def image_prune(config: Config, all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    from pallet.cli.pruning import confirmed, report_deleted, report_reclaimed
    from pallet.engine.images import ImageService

    what = "all images without at least one container associated to them" if all_ else "all dangling images"
    if not confirmed(f"WARNING! This will remove {what}.", force):
        return
    r = ImageService(config).prune(all_=all_, filters=list(filters))
    report_deleted("Images", r.deleted)
    report_reclaimed(r.reclaimed)
