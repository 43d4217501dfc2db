"""``pallet start``: start one or more stopped containers."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="Start one or more stopped containers")
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def start(config: Config, attach: bool, interactive: bool, containers: tuple[str, ...]) -> int:
    """Start one or more stopped containers."""
    from pallet.engine.containers import ContainerService
    from pallet.errors import InvalidArgument, PalletError

    svc = ContainerService(config)
    if (attach or interactive) and len(containers) > 1:
        raise InvalidArgument("you cannot start and attach multiple containers at once")
    if attach or interactive:
        from pallet.engine.attach import follow_until_exit

        c = svc.get(containers[0])
        c = svc.start(c)
        return follow_until_exit(svc, c, stdin=interactive)
    from pallet.cli.each import for_each

    def start_one(ref: str) -> None:
        svc.start(svc.get(ref))

    failed = for_each(containers, start_one, raise_single=False)
    if failed:
        raise PalletError("failed to start containers: " + ", ".join(failed))
    return 0
