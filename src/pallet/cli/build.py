"""``pallet build [OPTIONS] PATH | URL | -``: Docker's classic builder output and flags.

The options come from the one table in ``pallet.cli.build_options`` (which the
click-free fast path of ``pallet.cli.main`` parses too); the work is done by
``pallet.cli.build_impl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pallet.cli.app import click_option
from pallet.cli.build_impl import build_image
from pallet.cli.build_options import BUILD_OPTIONS, PROGRESS_CHOICES
from pallet.config import Config


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    for o in reversed(BUILD_OPTIONS):
        if o.dest == "progress":
            f = click.option(*o.names, o.dest, default=o.default, type=click.Choice(list(PROGRESS_CHOICES)),
                             help=o.help)(f)
        else:
            f = click_option(o)(f)
    return f


@click.command(help="Build an image from a Dockerfile.")
@click.argument("context", required=True)
@_options
@click.pass_obj
def build(config: Config, **kw: Any) -> int:
    return build_image(config, **kw)
