"""``pallet wait``: block until containers stop, print their exit codes."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Block until one or more containers stop, then print their exit codes")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def wait(config: Config, containers: tuple[str, ...]) -> int:
    """Block until one or more containers stop, then print their exit codes."""
    from pallet.engine.containers import ContainerService

    svc = ContainerService(config)
    targets = [svc.get(ref) for ref in containers]
    for c in targets:
        c = svc.wait(c)
        click.echo(str(c.state.exit_code))
    return 0
