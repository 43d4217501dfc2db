"""``pallet stats``: a live stream (or one reading) of containers' resource usage."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from pallet.config import Config

if TYPE_CHECKING:
    from pallet.engine.limits import Sample
    from pallet.engine.state import Container

DEFAULT_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
NO_STREAM_INTERVAL = 0.5
STREAM_INTERVAL = 1.0


def _size(n: float, base: int, units: tuple[str, ...], fmt: str) -> str:
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return (fmt % n) + units[i]


def binary_size(n: float) -> str:
    """Docker's memory figures: "1.953MiB"."""
    return _size(n, 1024, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), "%.4g")


def decimal_size(n: float) -> str:
    """Docker's network and block I/O figures: "1.2kB"."""
    return _size(n, 1000, ("B", "kB", "MB", "GB", "TB", "PB"), "%.3g")


def row(c: Container, ref: str, prev: Sample | None, cur: Sample | None, no_trunc: bool = False) -> dict[str, str]:
    from pallet.engine.limits import cpu_percent

    cid = c.id if no_trunc else c.short_id
    if cur is None:
        return {
            "Container": ref or cid, "ID": cid, "Name": c.name, "CPUPerc": "0.00%",
            "MemUsage": "0B / 0B", "MemPerc": "0.00%", "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0",
        }  # fmt: skip
    mem_pct = cur.mem_usage / cur.mem_limit * 100 if cur.mem_limit else 0.0
    return {
        "Container": ref or cid,
        "ID": cid,
        "Name": c.name,
        "CPUPerc": f"{cpu_percent(prev, cur):.2f}%",
        "MemUsage": f"{binary_size(cur.mem_usage)} / {binary_size(cur.mem_limit)}",
        "MemPerc": f"{mem_pct:.2f}%",
        "NetIO": f"{decimal_size(cur.net_rx)} / {decimal_size(cur.net_tx)}",
        "BlockIO": f"{decimal_size(cur.blk_read)} / {decimal_size(cur.blk_write)}",
        "PIDs": str(cur.pids),
    }


def render(fmt: str, rows: list[dict[str, str]]) -> str:
    """Docker's ``--format``: "table ..." (aligned, with a header), "json", or a template."""
    from pallet.cli import format as gofmt

    if fmt == "json":
        fmt = "{{json .}}"
    elif fmt.strip() == "table":
        fmt = DEFAULT_FORMAT
    return gofmt.render(fmt, list(rows), headers=HEADERS)


@click.command(help="Display a live stream of container(s) resource usage statistics")
@click.argument("containers", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--format", "fmt", default="", help="Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.pass_obj
def stats(config: Config, containers: tuple[str, ...], all_: bool, fmt: str, no_stream: bool, no_trunc: bool) -> None:
    from pallet.engine import limits
    from pallet.engine.state import ContainerStore

    store = ContainerStore(config.root)
    fmt = fmt or DEFAULT_FORMAT
    if fmt == "table":
        fmt = DEFAULT_FORMAT

    def targets() -> list[tuple[str, Container]]:
        if containers:
            return [(ref, store.load(store.resolve(ref))) for ref in containers]
        return [("", c) for c in sorted(store.all(), key=lambda c: -c.created) if all_ or c.state.running]

    mem_total = limits.host_memory()

    def take(cs: list[tuple[str, Container]]) -> dict[str, Sample | None]:
        return {c.id: limits.sample(c, mem_total=mem_total) for _, c in cs}

    cs = targets()
    prev = take(cs)
    time.sleep(NO_STREAM_INTERVAL if no_stream else STREAM_INTERVAL / 2)
    while True:
        cur = take(cs)
        text = render(fmt, [row(c, ref, prev.get(c.id), cur.get(c.id), no_trunc) for ref, c in cs])
        if no_stream:
            click.echo(text, nl=False)
            return
        if sys.stdout.isatty():
            click.echo("\033[2J\033[H", nl=False)
        click.echo(text, nl=False)
        sys.stdout.flush()
        prev = cur
        time.sleep(STREAM_INTERVAL)
        if not containers:
            known = {c.id for _, c in cs}
            cs = targets()
            prev = {**{c.id: None for _, c in cs if c.id not in known}, **prev}
        else:
            cs = [(ref, store.load(c.id)) for ref, c in cs]
