"""``pallet pull``: download an image from a registry."""

from __future__ import annotations

import sys

import click

from pallet.config import Config


@click.command(help="Download an image from a registry")
@click.argument("name")
@click.option("--platform", default="", envvar="DOCKER_DEFAULT_PLATFORM",
              help="Pull this platform (os/arch[/variant]) from a multi-platform image.")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--tls-verify", type=click.BOOL, default=True, show_default=True,
              help="Require HTTPS and verify certificates (false allows plain HTTP).")
@click.option("--disable-content-trust", is_flag=True, hidden=True)
@click.pass_obj
def pull(config: Config, name: str, platform: str, all_tags: bool, quiet: bool, tls_verify: bool,
         disable_content_trust: bool) -> None:
    from pallet.engine.distribution import pull as do_pull
    from pallet.engine.distribution import remote_tags
    from pallet.registry.progress import for_terminal

    names = remote_tags(config, name, tls_verify) if all_tags else [name]
    for n in names:
        progress = for_terminal(quiet)
        try:
            res = do_pull(config, n, platform=platform, tls_verify=tls_verify,
                          progress=progress, out=None if quiet else sys.stdout)
        finally:
            progress.close()
        click.echo(str(res.reference))
