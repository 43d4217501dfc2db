"""``pallet push``: upload an image to a registry."""

from __future__ import annotations

import sys

import click

from pallet.config import Config


@click.command(help="Upload an image to a registry")
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--tls-verify", type=click.BOOL, default=True, show_default=True,
              help="Require HTTPS and verify certificates (false allows plain HTTP).")
@click.option("--chunk-size", type=int, default=0, hidden=True,
              help="Upload blobs in chunks of this many bytes (PATCH) instead of one PUT.")
@click.option("--disable-content-trust", is_flag=True, hidden=True)
@click.pass_obj
def push(config: Config, name: str, all_tags: bool, quiet: bool, tls_verify: bool, chunk_size: int,
         disable_content_trust: bool) -> None:
    from pallet.engine.distribution import push as do_push
    from pallet.engine.distribution import tags_of_repository
    from pallet.registry.progress import for_terminal

    names = tags_of_repository(config, name) if all_tags else [name]
    for n in names:
        progress = for_terminal(quiet)
        try:
            digest = do_push(config, n, tls_verify=tls_verify, chunk_size=chunk_size,
                             progress=progress, out=None if quiet else sys.stdout)
        finally:
            progress.close()
        if quiet:
            click.echo(digest)
