"""``pallet image inspect``."""

from __future__ import annotations

import json
import sys

import click

from pallet.config import Config


@click.command(help="Display detailed information on one or more images.")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format output using a custom template.")
@click.pass_obj
def image_inspect(config: Config, images: tuple[str, ...], fmt: str | None) -> None:
    from pallet.engine.images import ImageService
    from pallet.errors import PalletError

    svc = ImageService(config)
    out = []
    errors = []
    for name in images:
        try:
            out.append(svc.inspect(name))
        except PalletError as e:
            errors.append(str(e))
    if fmt and fmt != "json":
        from pallet.cli.format import execute

        for d in out:
            click.echo(execute(fmt, d))
    else:
        click.echo(json.dumps(out, indent=4))
    if errors:
        for msg in errors:
            sys.stderr.write(f"Error: {msg}\n")
        sys.exit(1 if out else 125)
