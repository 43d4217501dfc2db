"""``pallet stop``: stop one or more running containers (stop signal, then SIGKILL)."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Stop one or more running containers")
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default="", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop(config: Config, timeout: int | None, sig: str, containers: tuple[str, ...]) -> int:
    """Stop one or more running containers."""
    from pallet.cli.each import exit_status, for_each
    from pallet.engine.containers import ContainerService, parse_signal

    if sig:
        parse_signal(sig)
    svc = ContainerService(config)

    def stop_one(ref: str) -> None:
        svc.stop(svc.get(ref), timeout, sig)

    return exit_status(for_each(containers, stop_one))
