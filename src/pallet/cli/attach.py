"""``pallet attach``: stream a running container's output until it exits."""

from __future__ import annotations

import time

import click

from pallet.config import Config


@click.command(short_help="Attach local standard input, output, and error streams to a running container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process")
@click.argument("container")
@click.pass_obj
def attach(config: Config, no_stdin: bool, sig_proxy: bool, container: str) -> int:
    """Attach to a running container's output (and its exit status)."""
    from pallet.engine.attach import follow_until_exit
    from pallet.engine.containers import ContainerService
    from pallet.errors import Conflict

    svc = ContainerService(config)
    c = svc.get(container)
    if not c.state.running:
        raise Conflict("You cannot attach to a stopped container, start it first")
    if c.state.status == "paused":
        raise Conflict("You cannot attach to a paused container, unpause it first")
    return follow_until_exit(svc, c, since=time.time_ns(), proxy_signals=sig_proxy, stdin=not no_stdin)
