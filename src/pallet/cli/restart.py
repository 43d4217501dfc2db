"""``pallet restart``: stop then start containers."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Restart one or more containers")
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default="", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def restart(config: Config, timeout: int | None, sig: str, containers: tuple[str, ...]) -> int:
    """Restart one or more containers."""
    from pallet.engine.containers import ContainerService

    svc = ContainerService(config)
    for ref in containers:
        c = svc.stop(svc.get(ref), timeout, sig)
        c = svc.refresh(svc.store.load(c.id))
        svc.start(c)
        click.echo(ref)
    return 0
