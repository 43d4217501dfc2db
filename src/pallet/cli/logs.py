"""``pallet logs``: a container's output from its json-file log."""

from __future__ import annotations

import os

import click

from pallet.config import Config


@click.command(short_help="Fetch the logs of a container")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
@click.option("--since", default="", help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")')
@click.option("--until", default="", help="Show logs before a timestamp or relative")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.argument("container")
@click.pass_obj
def logs(config: Config, follow: bool, tail: str, since: str, until: str, timestamps: bool,
         details: bool, container: str) -> int:
    """Fetch the logs of a container."""
    from pallet.engine.containers import ContainerService
    from pallet.engine.logs import parse_time, read_logs
    from pallet.errors import InvalidArgument

    svc = ContainerService(config)
    c = svc.get(container)
    n: int | None = None
    if tail != "all":
        try:
            n = int(tail)
        except ValueError:
            raise InvalidArgument(f'invalid value for "tail": {tail!r}') from None
        if n < 0:
            n = None
    since_ns = parse_time(since) if since else 0
    until_ns = parse_time(until) if until else 0

    def alive() -> bool:
        try:
            cur = svc.refresh(svc.store.load(c.id))
        except Exception:
            return False
        return cur.state.running

    for rec in read_logs(c.log_path, tail=n, since=since_ns, until=until_ns, follow=follow, alive=alive):
        data = rec.data
        if timestamps:
            data = rec.time.encode() + b" " + data
        try:
            os.write(2 if rec.stream == "stderr" else 1, data)
        except BrokenPipeError:
            break
    return 0
