"""``pallet wait``: block until containers stop, print their exit codes."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Block until one or more containers stop, then print their exit codes")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def wait(config: Config, containers: tuple[str, ...]) -> int:
    """Block until one or more containers stop, then print their exit codes."""
    from pallet.cli.each import exit_status, for_each
    from pallet.engine.containers import ContainerService

    svc = ContainerService(config)

    def wait_one(ref: str) -> str:
        return str(svc.wait(svc.get(ref)).state.exit_code)

    return exit_status(for_each(containers, wait_one))
