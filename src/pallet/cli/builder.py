"""``pallet builder prune``."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(help="Remove build cache.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused build cache, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values.")
@click.pass_obj
def prune(config: Config, all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    from pallet.cli.format import human_size
    from pallet.engine.build import prune as do_prune

    if not force:
        click.echo("WARNING! This will remove all dangling build cache.")
        if not click.confirm("Are you sure you want to continue?", default=False, prompt_suffix=" "):
            return
    n = do_prune(config, all_=all_)
    click.echo(f"Total reclaimed space: {human_size(n)}")
