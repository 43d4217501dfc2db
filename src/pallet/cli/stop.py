"""``pallet stop``: stop one or more running containers (stop signal, then SIGKILL)."""

from __future__ import annotations

import sys

import click

from pallet.config import Config


@click.command(short_help="Stop one or more running containers")
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default="", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop(config: Config, timeout: int | None, sig: str, containers: tuple[str, ...]) -> int:
    """Stop one or more running containers."""
    from pallet.engine.containers import ContainerService, parse_signal
    from pallet.errors import PalletError

    if sig:
        parse_signal(sig)
    svc = ContainerService(config)
    errors = 0
    for ref in containers:
        try:
            svc.stop(svc.get(ref), timeout, sig)
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
