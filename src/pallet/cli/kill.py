"""``pallet kill``: send a signal (SIGKILL by default) to running containers."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Kill one or more running containers")
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def kill(config: Config, sig: str, containers: tuple[str, ...]) -> int:
    """Kill one or more running containers."""
    from pallet.cli.each import exit_status, for_each
    from pallet.engine.containers import ContainerService, parse_signal

    signum = parse_signal(sig)
    svc = ContainerService(config)

    def kill_one(ref: str) -> None:
        svc.kill(svc.get(ref), signum, user=signum in (9, 15, 2))

    return exit_status(for_each(containers, kill_one))
