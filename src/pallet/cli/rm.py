"""``pallet rm``: remove containers (``-f`` kills running ones, ``-v`` removes anonymous volumes)."""

from __future__ import annotations

import sys

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
    from pallet.engine.containers import ContainerService
    from pallet.errors import PalletError

    svc = ContainerService(config)
    errors: list[PalletError] = []
    for ref in containers:
        try:
            svc.remove(svc.get(ref), force=force, volumes=volumes)
            click.echo(ref)
        except PalletError as e:
            errors.append(e)
            if len(containers) > 1:
                sys.stderr.write(f"Error response from daemon: {e}\n")
    if errors:
        if len(containers) == 1:
            raise errors[0]
        return 1
    return 0
