"""``pallet port``: the published ports of a container."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(short_help="List port mappings or a specific mapping for the container")
@click.argument("container")
@click.argument("private_port", required=False, default="")
@click.pass_obj
def port(config: Config, container: str, private_port: str) -> int:
    """List port mappings or a specific mapping for the container."""
    from pallet.engine.containers import ContainerService
    from pallet.engine.inspect import _port_bindings
    from pallet.errors import NotFound

    c = ContainerService(config).get(container)
    bindings = _port_bindings(c.spec.port_bindings)
    want = ""
    if private_port:
        want = private_port if "/" in private_port else private_port + "/tcp"
        if want not in bindings:
            raise NotFound(f"No public port '{want}' published for {container}")
    for ctr, hosts in sorted(bindings.items()):
        if want and ctr != want:
            continue
        for h in hosts:
            addr = f"{h['HostIp'] or '0.0.0.0'}:{h['HostPort']}"
            click.echo(addr if want else f"{ctr} -> {addr}")
    return 0
