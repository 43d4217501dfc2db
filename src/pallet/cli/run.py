"""``pallet run`` (and the flags ``create`` shares): create a container from an image and start it.

The options come from the one table in ``pallet.cli.run_options`` (which the
click-free fast path of ``pallet.cli.main`` parses too); the work is done by
``pallet.cli.run_impl``.
"""

from __future__ import annotations

from typing import Any

import click

from pallet.cli.app import options
from pallet.cli.run_impl import _env, build_options, run_container
from pallet.cli.run_options import CONTAINER_OPTIONS, RUN_ONLY
from pallet.config import Config

__all__ = ["CONTEXT", "_env", "build_options", "container_options", "run"]

CONTEXT = {"help_option_names": ["--help"], "ignore_unknown_options": False, "allow_interspersed_args": False}


container_options = options(CONTAINER_OPTIONS)


@click.command(context_settings=CONTEXT, short_help="Create and run a new container from an image")
@options(RUN_ONLY)
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(config: Config, **kw: Any) -> int:
    """Create and run a new container from an image."""
    return run_container(config, **kw)
