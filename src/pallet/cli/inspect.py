"""``pallet inspect``: containers first, then images."""

from __future__ import annotations

import sys
from typing import Any

import click

from pallet.config import Config


@click.command(short_help="Return low-level information on containers or images")
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@click.option("--type", "type_", type=click.Choice(["container", "image", "volume"]), default=None,
              help="Return JSON for specified type")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(config: Config, fmt: str, size: bool, type_: str | None, names: tuple[str, ...]) -> int:
    """Return low-level information on containers or images."""
    from pallet.cli.container_inspect import emit, inspect_containers

    docs: list[Any] = []
    missing: list[str] = []
    for name in names:
        found = False
        if type_ in (None, "container"):
            d, _m = inspect_containers(config, (name,), size)
            if d:
                docs += d
                found = True
        if not found and type_ in (None, "image"):
            try:
                from pallet.engine.images import ImageService  # type: ignore[import-not-found]
                from pallet.errors import NotFound

                try:
                    res = ImageService(config).inspect(name)
                    docs += res if isinstance(res, list) else [res]
                    found = True
                except NotFound:
                    pass
            except ImportError:
                pass
        if not found and type_ in (None, "volume"):
            from pallet.engine.volumes import VolumeService
            from pallet.errors import NotFound

            try:
                docs.append(VolumeService(config).get(name).inspect())
                found = True
            except NotFound:
                pass
        if not found:
            missing.append(name)
    emit(docs, fmt)
    for m in missing:
        sys.stderr.write(f"Error: No such object: {m}\n")
    return 1 if missing else 0
