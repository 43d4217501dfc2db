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
    from pallet.cli.each import exit_status, for_each
    from pallet.engine.containers import ContainerService

    svc = ContainerService(config)

    def restart_one(ref: str) -> None:
        c = svc.stop(svc.get(ref), timeout, sig)
        svc.start(svc.refresh(svc.store.load(c.id)))

    return exit_status(for_each(containers, restart_one))
