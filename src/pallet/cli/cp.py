"""``pallet cp``: copy files between a container and the host (``-`` for a tar stream)."""

from __future__ import annotations

import sys

import click

from pallet.config import Config


@click.command(short_help="Copy files/folders between a container and the local filesystem")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy")
@click.argument("src")
@click.argument("dest")
@click.pass_obj
def cp(config: Config, archive: bool, follow_link: bool, quiet: bool, src: str, dest: str) -> int:
    """Copy files/folders between a container and the local filesystem."""
    from pallet.engine.containers import ContainerService
    from pallet.engine.copy import copy_from, copy_to, split_arg
    from pallet.errors import InvalidArgument

    s_name, s_path = split_arg(src)
    d_name, d_path = split_arg(dest)
    if s_name and d_name:
        raise InvalidArgument("copying between containers is not supported")
    if not s_name and not d_name:
        raise InvalidArgument("must specify at least one container source")
    svc = ContainerService(config)
    if s_name:
        c = svc.get(s_name)
        copy_from(svc, c, s_path or "/", d_path, sys.stdout.buffer)
    else:
        c = svc.get(d_name)
        copy_to(svc, c, s_path, d_path or "/", sys.stdin.buffer)
    return 0
