"""``pallet update``: change the resource limits of containers, live."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(help="Update configuration of one or more containers")
@click.argument("containers", nargs=-1, required=True)
@click.option("--blkio-weight", default=None, help="Block IO (relative weight), between 10 and 1000, or 0 to disable")
@click.option("--cpu-period", default=None, help="Limit CPU CFS (Completely Fair Scheduler) period")
@click.option("--cpu-quota", default=None, help="Limit CPU CFS (Completely Fair Scheduler) quota")
@click.option("-c", "--cpu-shares", default=None, help="CPU shares (relative weight)")
@click.option("--cpus", default=None, help="Number of CPUs")
@click.option("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1)")
@click.option("--cpuset-mems", default=None, help="MEMs in which to allow execution (0-3, 0,1)")
@click.option("-m", "--memory", default=None, help="Memory limit")
@click.option("--memory-reservation", default=None, help="Memory soft limit")
@click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
@click.option("--pids-limit", default=None, help="Tune container pids limit (set -1 for unlimited)")
@click.option("--restart", default=None, help="Restart policy to apply when a container exits")
@click.pass_obj
def update(config: Config, containers: tuple[str, ...], restart: str | None, **flags: str | None) -> None:
    from pallet.engine import limits, resources
    from pallet.errors import InvalidArgument

    changes = resources.parse_update(**flags)
    if not changes and restart is None:
        raise InvalidArgument("You must provide one or more flags when using this command.")
    for ref in containers:
        if changes:
            limits.update(config, ref, changes)
        if restart is not None:
            _set_restart(config, ref, restart)
        click.echo(ref)


def _set_restart(config: Config, ref: str, policy: str) -> None:
    from dataclasses import replace

    from pallet.engine.state import ContainerStore
    from pallet.errors import InvalidArgument

    name, _, count = policy.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (count and (name != "on-failure" or not count.isdigit())):
        raise InvalidArgument(f"invalid restart policy '{policy}'")
    store = ContainerStore(config.root)
    cid = store.resolve(ref)
    with store.locked(cid):
        c = store.load(cid)
        if c.spec.auto_remove and name != "no":
            raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container")
        spec = replace(c.spec, restart_policy=name, restart_max=int(count or 0))
        store.set_spec(c, spec)
