"""``pallet kill``: send a signal (SIGKILL by default) to running containers."""

from __future__ import annotations

import sys

import click

from pallet.config import Config


@click.command(short_help="Kill one or more running containers")
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def kill(config: Config, sig: str, containers: tuple[str, ...]) -> int:
    """Kill one or more running containers."""
    from pallet.engine.containers import ContainerService, parse_signal
    from pallet.errors import PalletError

    signum = parse_signal(sig)
    svc = ContainerService(config)
    errors = 0
    for ref in containers:
        try:
            svc.kill(svc.get(ref), signum, user=signum in (9, 15, 2))
            click.echo(ref)
        except PalletError as e:
            errors += 1
            last = e
            if len(containers) > 1:
                sys.stderr.write(f"Error response from daemon: {e}\n")
    if errors:
        if len(containers) == 1:
            raise last
        return 1
    return 0
