"""The ``pallet`` command: entry point, error mapping and the tables of commands.

Each command lives in its own module under ``pallet.cli`` and is imported only
when that command runs, so ``pallet run`` pays for nothing else.  The tables
below map Docker's command names (top-level shortcuts and management groups)
to ``module:function`` of a click command; the click groups that use them are in
``pallet.cli.app``.  This module does not import click: the common ``run`` and
``create`` command lines are parsed without it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time: ``pallet run`` starts here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pallet.cli.run_options import FastCall

# name -> "module:attribute" (module relative to pallet.cli)
TOP_LEVEL: dict[str, str] = {
    # images (Foundation I)
    "images": "images:images",
    "import": "image_import:import_",
    "export": "export:export",
    "tag": "tag:tag",
    "rmi": "rmi:rmi",
    "history": "history:history",
    "inspect": "inspect:inspect",
    # containers (Foundation II)
    "run": "run:run",
    "create": "create:create",
    "start": "start:start",
    "ps": "ps:ps",
    "logs": "logs:logs",
    "stop": "stop:stop",
    "kill": "kill:kill",
    "restart": "restart:restart",
    "rm": "rm:rm",
    "exec": "exec_:exec_",
    "wait": "wait:wait",
    "rename": "rename:rename",
    "pause": "pause:pause",
    "unpause": "pause:unpause",
    "top": "top:top",
    "cp": "cp:cp",
    "attach": "attach:attach",
    "update": "update:update",
    "stats": "stats:stats",
    "port": "port:port",
    # build (issue: build)
    "build": "build:build",
    # shipping
    "pull": "pull:pull",
    "push": "push:push",
    "login": "login:login",
    "logout": "login:logout",
    "save": "save:save",
    "load": "load:load",
    "version": "version:version",
    "info": "system:info",
}

GROUPS: dict[str, dict[str, str]] = {
    "image": {
        "ls": "images:images",
        "list": "images:images",
        "inspect": "image_inspect:image_inspect",
        "import": "image_import:import_",
        "tag": "tag:tag",
        "rm": "rmi:rmi",
        "prune": "image_prune:image_prune",
        "history": "history:history",
        "bootstrap": "bootstrap:bootstrap",
        "build": "build:build",
        "pull": "pull:pull",
        "push": "push:push",
        "save": "save:save",
        "load": "load:load",
    },
    "container": {
        "ls": "ps:ps",
        "list": "ps:ps",
        "run": "run:run",
        "create": "create:create",
        "start": "start:start",
        "stop": "stop:stop",
        "kill": "kill:kill",
        "restart": "restart:restart",
        "rm": "rm:rm",
        "logs": "logs:logs",
        "exec": "exec_:exec_",
        "inspect": "container_inspect:container_inspect",
        "wait": "wait:wait",
        "rename": "rename:rename",
        "pause": "pause:pause",
        "unpause": "pause:unpause",
        "top": "top:top",
        "cp": "cp:cp",
        "attach": "attach:attach",
        "prune": "container_prune:container_prune",
        "export": "export:export",
        "update": "update:update",
        "stats": "stats:stats",
        "port": "port:port",
    },
    "volume": {
        "create": "volume:create",
        "ls": "volume:ls",
        "list": "volume:ls",
        "inspect": "volume:inspect",
        "rm": "volume:rm",
        "prune": "volume:prune",
    },
    "network": {
        "create": "network:create",
        "ls": "network:ls",
        "list": "network:ls",
        "inspect": "network:inspect",
        "rm": "network:rm",
        "prune": "network:prune",
        "connect": "network:connect",
        "disconnect": "network:disconnect",
    },
    "system": {
        "df": "system:df",
        "prune": "system:prune",
        "info": "system:info",
    },
    "builder": {
        "prune": "builder:prune",
    },
}

GROUP_HELP = {
    "image": "Manage images",
    "container": "Manage containers",
    "volume": "Manage volumes",
    "network": "Manage networks",
    "system": "Manage pallet",
    "builder": "Manage builds",
}


# click's objects, for code that still reaches them here (they live in pallet.cli.app)
_APP_NAMES = frozenset({"cli", "LazyGroup", "TopGroup", "CONTEXT"})


def __getattr__(name: str) -> Any:
    if name in _APP_NAMES:
        from pallet.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, map errors to one stderr line and Docker's exit codes.

    ``run`` and ``create`` with options pallet is sure to read exactly as click
    would are parsed here without importing click (see ``pallet.cli.run_options``),
    and so is ``build`` (``pallet.cli.build_options``); every other command line,
    and every doubtful one, goes to click.
    """
    from pallet.cli.run_options import parse_command_line

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or "-D" in args or bool(os.environ.get("PALLET_DEBUG"))
    fast = parse_command_line(args)
    if fast is None and "build" in args:
        from pallet.cli.build_options import parse_build_line

        fast = parse_build_line(args)
    if fast is not None and TOP_LEVEL.get(fast.command) == f"{fast.command}:{fast.command}":
        rc = _guarded(lambda: _call_fast(fast), debug)
    else:
        rc = _guarded(lambda: _call_click(args), debug)
    code = rc if isinstance(rc, int) else 0
    if argv is None:
        from pallet.linux.fastexit import exit_now

        exit_now(code)
    sys.exit(code)


def _call_click(args: list[str]) -> Any:
    from pallet.cli.app import cli

    return cli.main(args=args, prog_name="pallet", standalone_mode=False)


def _call_fast(fast: FastCall) -> int:
    """The command of ``fast``, with what click's ``main`` would add around it."""
    import errno

    from pallet.config import Config

    try:
        config = Config.from_env(root=fast.root, runtime=fast.runtime, debug=fast.debug)
        if fast.command == "build":
            from pallet.cli.build_impl import build_image

            return build_image(config, **fast.params)
        if fast.command == "run":
            from pallet.cli.run_impl import run_container

            return run_container(config, **fast.params)
        from pallet.cli.run_impl import create_container

        return create_container(config, **fast.params)
    except (EOFError, KeyboardInterrupt):
        # click: a blank line closes the terminal's ^C echo, then Abort
        sys.stderr.write("\n")
        sys.stderr.flush()
        sys.exit(130)
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        # click: the reader went away; exit 1 without a second error at teardown
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        sys.exit(1)


def _guarded(call: Callable[[], Any], debug: bool) -> Any:
    """``call()``, with errors mapped to one stderr line and Docker's exit codes."""
    from pallet.errors import PalletError

    try:
        return call()
    except PalletError as e:
        if debug:
            import traceback

            traceback.print_exc()
        _err(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:
        if debug:
            raise
        _err(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
        sys.exit(125)
    except Exception as e:
        if "click" in sys.modules:  # without click, none of click's exceptions can come
            _click_error(e)
        raise


def _click_error(e: Exception) -> None:
    """Exit as main() always did for one of click's exceptions; return for any other."""
    import click

    if isinstance(e, click.exceptions.NoArgsIsHelpError):
        click.echo(e.ctx.get_help() if e.ctx else "", err=False)
        sys.exit(0)
    if isinstance(e, click.UsageError):
        _err(e.format_message() if hasattr(e, "format_message") else str(e))
        sys.exit(125)
    if isinstance(e, click.exceptions.Abort):
        sys.exit(130)
    if isinstance(e, click.exceptions.Exit):
        sys.exit(e.exit_code)
    if isinstance(e, click.ClickException):
        _err(e.format_message())
        sys.exit(125)


def _err(msg: str) -> None:
    msg = msg.strip().replace("\n", " ")
    sys.stderr.write(f"Error: {msg}\n" if not msg.startswith("Error") else msg + "\n")
    sys.stderr.flush()
