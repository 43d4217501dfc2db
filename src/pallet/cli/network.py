"""``pallet network create|ls|inspect|rm|prune|connect|disconnect``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from pallet.config import Config


def _kv(items: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, _, v in (i.partition("=") for i in items)}


@click.command(short_help="Create a network")
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network")
@click.option("--subnet", default="", help="Subnet in CIDR format that represents a network segment")
@click.option("--gateway", default="", help="IPv4 Gateway for the master subnet")
@click.option("--ip-range", default="", help="Allocate container ip from a sub-range")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--label", multiple=True, help="Set metadata on a network")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@click.argument("name")
@click.pass_obj
def create(config: Config, driver: str, subnet: str, gateway: str, ip_range: str, internal: bool,
           label: tuple[str, ...], opt: tuple[str, ...], name: str) -> int:
    """Create a network."""
    from pallet.network import registry

    net = registry.create(config, name, driver, subnet, gateway, ip_range, internal, _kv(label), _kv(opt))
    click.echo(net.id)
    return 0


def _match(net: Any, key: str, value: str) -> bool:
    from pallet.errors import InvalidArgument

    if key == "name":
        return value in net.name
    if key == "id":
        return net.id.startswith(value)
    if key == "driver":
        return bool(net.driver == value)
    if key == "label":
        k, eq, v = value.partition("=")
        return k in net.labels and (not eq or net.labels[k] == v)
    if key == "type":
        if value not in ("builtin", "custom"):
            raise InvalidArgument(f"invalid filter: 'type'='{value}'")
        return bool(net.builtin) == (value == "builtin")
    if key == "scope":
        return value == "local"
    raise InvalidArgument(f"invalid filter '{key}'")


def _filtered(config: Config, filters: tuple[str, ...]) -> list[Any]:
    from pallet.network import registry

    nets = registry.networks(config)
    by_key: dict[str, list[str]] = {}
    for f in filters:
        k, _, v = f.partition("=")
        by_key.setdefault(k, []).append(v)
    for k, values in by_key.items():
        nets = [n for n in nets if any(_match(n, k, v) for v in values)]
    return nets


@click.command(short_help="List networks")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge')")
@click.option("--format", "fmt", default="", help="Format output using a custom template")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@click.pass_obj
def ls(config: Config, quiet: bool, filters: tuple[str, ...], fmt: str, no_trunc: bool) -> int:
    """List networks."""
    from pallet.cli.format import render

    nets = sorted(_filtered(config, filters), key=lambda n: n.name)
    if quiet:
        for n in nets:
            click.echo(n.id if no_trunc else n.id[:12])
        return 0
    rows = [{"ID": n.id if no_trunc else n.id[:12], "Name": n.name, "Driver": n.driver, "Scope": "local",
             "IPv6": "false", "Internal": str(n.internal).lower(), "CreatedAt": n.created,
             "Labels": ",".join(f"{k}={v}" for k, v in n.labels.items())} for n in nets]
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r))
        return 0
    tpl = fmt or "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
    click.echo(render(tpl, rows, {"ID": "NETWORK ID"}), nl=False)
    return 0


@click.command(short_help="Display detailed information on one or more networks")
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
@click.option("-v", "--verbose", is_flag=True, help="Verbose output: CNI CHECK of each attached container")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(config: Config, fmt: str, verbose: bool, names: tuple[str, ...]) -> int:
    """Display detailed information on one or more networks."""
    from pallet.engine import networks
    from pallet.errors import NotFound

    docs, missing = [], []
    for n in names:
        try:
            docs.append(networks.network_inspect(config, n, check=verbose))
        except NotFound:
            missing.append(n)
    if fmt:
        from pallet.cli.format import execute

        for d in docs:
            click.echo(execute(fmt, d))
    elif docs or not missing:
        click.echo(json.dumps(docs, indent=4))
    for m in missing:
        sys.stderr.write(f"Error response from daemon: network {m} not found\n")
    return 1 if missing else 0


@click.command(short_help="Remove one or more networks")
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(config: Config, force: bool, names: tuple[str, ...]) -> int:
    """Remove one or more networks."""
    from pallet.cli.each import exit_status, for_each
    from pallet.engine import networks
    from pallet.errors import NotFound

    def remove_one(name: str) -> None:
        networks.remove_network(config, name)

    return exit_status(for_each(names, remove_one, tolerate=lambda e: force and isinstance(e, NotFound)))


@click.command(short_help="Remove all unused networks")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>')")
@click.pass_obj
def prune(config: Config, force: bool, filters: tuple[str, ...]) -> int:
    """Remove all unused networks."""
    from pallet.cli.pruning import confirmed, report_deleted

    if confirmed("WARNING! This will remove all custom networks not used by at least one container.", force):
        report_deleted("Networks", prune_unused(config, filters))
    return 0


def prune_unused(config: Config, filters: tuple[str, ...] = ()) -> list[str]:
    """Remove the custom networks no container uses (leftovers reconciled first); their names."""
    from pallet.engine import networks
    from pallet.errors import Conflict

    networks.reconcile(config)
    used = networks.referenced(config)
    removed = []
    for n in _filtered(config, filters):
        if n.builtin or n.user_conflist or n.name in used:
            continue
        try:
            networks.remove_network(config, n.name)
            removed.append(n.name)
        except Conflict:
            continue
    return removed


@click.command(short_help="Connect a container to a network")
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container")
@click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
@click.argument("network")
@click.argument("container")
@click.pass_obj
def connect(config: Config, alias: tuple[str, ...], ip: str, network: str, container: str) -> int:
    """Connect a container to a network."""
    from pallet.engine import networks
    from pallet.engine.containers import ContainerService

    c = ContainerService(config).get(container)
    networks.connect(config, c, network, alias, ip)
    return 0


@click.command(short_help="Disconnect a container from a network")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@click.argument("network")
@click.argument("container")
@click.pass_obj
def disconnect(config: Config, force: bool, network: str, container: str) -> int:
    """Disconnect a container from a network."""
    from pallet.engine import networks
    from pallet.engine.containers import ContainerService

    c = ContainerService(config).get(container)
    networks.disconnect(config, c, network, force)
    return 0
