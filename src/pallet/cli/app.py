"""The click side of the ``pallet`` command: the lazy command groups and the global options.

Imported only when a command line needs click (every command but the common
``run``/``create``, which ``pallet.cli.main`` parses itself from the same option
tables, see ``pallet.cli.run_options``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pallet import __version__
from pallet.cli.main import GROUP_HELP, GROUPS, TOP_LEVEL
from pallet.cli.run_options import FLAG, GLOBAL_OPTIONS, MULTIPLE, SWITCH, Opt


def click_option(o: Opt) -> Callable[..., Any]:
    """The click decorator of one option table entry."""
    kw: dict[str, Any] = {"help": o.help}
    if o.envvar:
        kw["envvar"] = o.envvar
    if o.kind == FLAG:
        return click.option(*o.names, o.dest, is_flag=True, **kw)
    if o.kind == SWITCH:
        (on,), (off,) = o.names, o.off
        return click.option(f"{on}/{off}", o.dest, default=o.default, **kw)
    if o.kind == MULTIPLE:
        return click.option(*o.names, o.dest, multiple=True, **kw)
    if o.type is not None:
        kw["type"] = o.type
    return click.option(*o.names, o.dest, default=o.default, **kw)


def options(table: tuple[Opt, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a click command with every option of ``table``, in the table's order."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        for o in reversed(table):
            f = click_option(o)(f)
        return f

    return deco


def _load(spec: str) -> click.Command:
    import importlib

    mod, _, attr = spec.partition(":")
    module = importlib.import_module(f"pallet.cli.{mod}")
    cmd = getattr(module, attr)
    assert isinstance(cmd, click.Command)
    return cmd


def _available(table: dict[str, str]) -> list[str]:
    """Names whose module exists (commands of issues not yet built stay hidden)."""
    import importlib.util

    out = []
    for name, spec in table.items():
        mod = spec.partition(":")[0]
        if importlib.util.find_spec(f"pallet.cli.{mod}") is not None:
            out.append(name)
    return sorted(out)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, table: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = table

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_available(self.table)) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        spec = self.table.get(cmd_name)
        if spec is None:
            return None
        try:
            return _load(spec)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("pallet.cli."):
                return None
            raise


class TopGroup(LazyGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(GROUPS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in GROUPS:
            return LazyGroup(
                name=cmd_name,
                table=GROUPS[cmd_name],
                help=GROUP_HELP.get(cmd_name),
                context_settings=CONTEXT,
            )
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        cmd = self.get_command(ctx, name)
        if cmd is None and not name.startswith("-"):
            raise click.UsageError(f"unknown command: {name!r}. See 'pallet --help'.")
        return super().resolve_command(ctx, args)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    cls=TopGroup,
    table=TOP_LEVEL,
    context_settings=CONTEXT,
    help="A daemonless container engine: OCI images, containers and lightweight VMs.",
)
@options(GLOBAL_OPTIONS)
@click.version_option(__version__, "--version", "-v", prog_name="pallet", message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, runtime: str | None, debug: bool) -> None:
    from pallet.config import Config

    ctx.obj = Config.from_env(root=root, runtime=runtime, debug=debug)
