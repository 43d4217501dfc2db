"""``pallet container prune``: remove all stopped containers."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Remove all stopped containers")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "until=<timestamp>")')
@click.pass_obj
def container_prune(config: Config, force: bool, filters: tuple[str, ...]) -> int:
    """Remove all stopped containers."""
    from pallet.cli.pruning import confirmed, report_deleted, report_reclaimed
    from pallet.engine.containers import ContainerService
    from pallet.engine.logs import parse_time
    from pallet.errors import InvalidArgument

    labels: list[str] = []
    until = 0
    for f in filters:
        k, _, v = f.partition("=")
        if k == "until":
            until = parse_time(v)
        elif k in ("label", "label!"):
            labels.append(("!" if k == "label!" else "") + v)
        else:
            raise InvalidArgument(f"invalid filter '{k}'")
    if not confirmed("WARNING! This will remove all stopped containers.", force):
        return 0
    removed, space = ContainerService(config).prune(tuple(labels), until)
    report_deleted("Containers", removed)
    report_reclaimed(space)
    return 0
