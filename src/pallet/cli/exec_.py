"""``pallet exec``: run a command in a running container."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(context_settings={"allow_interspersed_args": False},
               short_help="Execute a command in a running container")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-e", "--env", multiple=True, help="Set environment variables")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables")
@click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("-w", "--workdir", default="", help="Working directory inside the container")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(config: Config, interactive: bool, tty: bool, detach: bool, env: tuple[str, ...],
          env_file: tuple[str, ...], user: str, workdir: str, privileged: bool, container: str,
          command: tuple[str, ...]) -> int:
    """Execute a command in a running container."""
    from pallet.cli.run import _env
    from pallet.engine.containers import ContainerService
    from pallet.engine.execs import ExecOptions, run_exec

    svc = ContainerService(config)
    c = svc.get(container)
    opts = ExecOptions(tuple(command), interactive, tty, detach, _env(env, env_file), user, workdir, privileged)
    return run_exec(svc, c, opts)
