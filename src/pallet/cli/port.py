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
    from pallet.errors import NotFound

    svc = ContainerService(config)
    c = svc.get(container)
    published = svc.published_ports(c)  # "0.0.0.0:8080->80/tcp"
    want = ""
    if private_port:
        want = private_port if "/" in private_port else private_port + "/tcp"
        if not any(p.endswith("->" + want) for p in published):
            raise NotFound(f"No public port '{want}' published for {container}")
    for p in published:
        addr, _, ctr = p.partition("->")
        if want and ctr != want:
            continue
        click.echo(addr if want else f"{ctr} -> {addr}")
    return 0
