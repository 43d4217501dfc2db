"""What every ``prune`` command shows: Docker's warning and question, the lists of what
went, the space reclaimed.

``container``, ``image``, ``network``, ``volume`` and ``system prune`` print through
these, so their prompts and reports read alike (and like Docker's):

    WARNING! This will remove all stopped containers.
    Are you sure you want to continue? [y/N] y
    Deleted Containers:
    4a7f...

    Total reclaimed space: 12kB
"""

from __future__ import annotations

from collections.abc import Iterable

import click


def confirmed(warning: str, force: bool) -> bool:
    """Go on? Yes with ``-f``; otherwise print ``warning`` and ask, "no" unless answered y."""
    if force:
        return True
    click.echo(warning)
    return click.confirm("Are you sure you want to continue?", default=False, prompt_suffix=" ")


def report_deleted(title: str, names: Iterable[str]) -> None:
    """``Deleted <title>:``, one name a line, then a blank line; nothing when none went."""
    lines = list(names)
    if lines:
        click.echo(f"Deleted {title}:\n" + "".join(f"{n}\n" for n in lines))


def report_reclaimed(size: int) -> None:
    from pallet.engine.units import human_size

    click.echo(f"Total reclaimed space: {human_size(size)}")
