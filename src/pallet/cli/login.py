"""``pallet login`` and ``pallet logout``: registry credentials in Docker's config.json format."""

from __future__ import annotations

import sys

import click

from pallet.config import Config


def _server(server: str | None) -> str:
    from pallet.registry.auth import normalize_server

    return normalize_server(server or "docker.io")


@click.command(help="Log in to a registry")
@click.argument("server", required=False)
@click.option("-u", "--username", default="", help="Username")
@click.option("-p", "--password", default="", help="Password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
@click.option("--tls-verify", type=click.BOOL, default=True, show_default=True,
              help="Require HTTPS and verify certificates (false allows plain HTTP).")
@click.pass_obj
def login(config: Config, server: str | None, username: str, password: str,
          password_stdin: bool, tls_verify: bool) -> None:
    from pallet.engine.distribution import options
    from pallet.errors import InvalidArgument
    from pallet.registry.auth import AuthStore, Credentials
    from pallet.registry.transport import Registry

    domain = _server(server)
    if password and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                   err=True)
    store = AuthStore()
    if not username and not password:
        saved = store.get(domain)
        if not saved.empty:
            username, password = saved.username, saved.password
    if not username:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        username = click.prompt("Username").strip()
    if not password:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        password = click.prompt("Password", hide_input=True)
    if not username or not password:
        raise InvalidArgument("Error: Username and password are required")
    creds = Credentials(username, password)
    with Registry(domain, creds, options(config, tls_verify)) as reg:
        reg.login()
    store.store(domain, creds)
    click.echo("Login Succeeded")


@click.command(help="Log out from a registry")
@click.argument("server", required=False)
@click.pass_obj
def logout(config: Config, server: str | None) -> None:
    from pallet.registry.auth import AuthStore

    domain = _server(server)
    shown = server or domain
    if AuthStore().remove(domain):
        click.echo(f"Removing login credentials for {shown}")
    else:
        click.echo(f"Not logged in to {shown}")
