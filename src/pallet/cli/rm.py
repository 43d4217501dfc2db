"""``pallet rm``: remove containers (``-f`` kills running ones, ``-v`` removes anonymous volumes)."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Remove one or more containers")
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@click.option("-l", "--link", is_flag=True, hidden=True)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def rm(config: Config, force: bool, volumes: bool, link: bool, containers: tuple[str, ...]) -> int:
    """Remove one or more containers."""
    from pallet.cli.each import exit_status, for_each
    from pallet.engine.containers import ContainerService
    from pallet.errors import NotFound

    svc = ContainerService(config)

    def remove_one(ref: str) -> None:
        svc.remove(svc.get(ref), force=force, volumes=volumes)

    # as Docker: with -f, a container that does not exist is reported but is no failure
    return exit_status(for_each(containers, remove_one, warn=lambda e: force and isinstance(e, NotFound)))
