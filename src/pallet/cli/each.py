"""Docker's loop for a command that takes several names (``stop a b c``, ``volume rm x y``).

Every name is tried, in order.  A success prints its line(s) on stdout (the name,
unless the action says otherwise).  With one name, its error goes up unchanged
(one ``Error: ...`` line and the error's exit code, 125).  With several, each
failure is one ``Error response from daemon: <message>`` line on stderr, the
others go on, and the command exits 1 (``exit_status``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import click

from pallet.errors import PalletError


def for_each(
    names: Sequence[str],
    act: Callable[[str], str | None],
    *,
    tolerate: Callable[[PalletError], bool] | None = None,
    warn: Callable[[PalletError], bool] | None = None,
    raise_single: bool = True,
) -> list[str]:
    """Run ``act(name)`` for each name; return the names that failed.

    ``act`` returns what to print for its name (``None``: the name itself; ``""``: nothing).
    An error for which ``tolerate(err)`` is true is passed over in silence
    (``network rm -f`` and a name that does not exist); one for which
    ``warn(err)`` is true is printed but is no failure (``rm -f``, likewise).
    ``raise_single=False`` reports a lone name's error like the others' instead
    of raising it.
    """
    failed: list[str] = []
    for name in names:
        try:
            line = act(name)
        except PalletError as e:
            if tolerate is not None and tolerate(e):
                continue
            if warn is not None and warn(e):
                sys.stderr.write(f"Error response from daemon: {e}\n")
                continue
            if raise_single and len(names) == 1:
                raise
            sys.stderr.write(f"Error response from daemon: {e}\n")
            failed.append(name)
            continue
        if line is None:
            click.echo(name)
        elif line:
            click.echo(line)
    return failed


def exit_status(failed: Sequence[str]) -> int:
    """Docker's status for a loop over several names: 1 if any failed."""
    return 1 if failed else 0
