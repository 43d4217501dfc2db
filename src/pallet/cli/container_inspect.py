"""``pallet container inspect``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from pallet.config import Config


def inspect_containers(config: Config, refs: tuple[str, ...], size: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    from pallet.engine.containers import ContainerService
    from pallet.engine.inspect import container_inspect
    from pallet.errors import NotFound

    svc = ContainerService(config)
    out, missing = [], []
    for ref in refs:
        try:
            c = svc.get(ref)
        except NotFound:
            missing.append(ref)
            continue
        doc = container_inspect(c, str(config.root / "volumes"), svc.network_settings(c))
        if size:
            from pallet.engine.volumes import du

            doc["SizeRw"] = du(c.dir / "upper")
        out.append(doc)
    return out, missing


def emit(docs: list[Any], fmt: str) -> None:
    if not fmt:
        click.echo(json.dumps(docs, indent=4))
        return
    from pallet.cli.ps import execute

    for d in docs:
        click.echo(execute(fmt, d), nl=False)


@click.command(short_help="Display detailed information on one or more containers")
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def container_inspect(config: Config, fmt: str, size: bool, containers: tuple[str, ...]) -> int:
    """Display detailed information on one or more containers."""
    docs, missing = inspect_containers(config, containers, size)
    emit(docs, fmt)
    for m in missing:
        sys.stderr.write(f"Error: No such container: {m}\n")
    return 1 if missing else 0
