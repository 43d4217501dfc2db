"""``pallet ps``: list containers, with Docker's columns, filters and --format."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from pallet.config import Config

DEFAULT_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def _row(c: Any, trunc: bool, size: bool, image_sizes: dict[str, int] | None = None,
         ports: list[str] | None = None) -> dict[str, Any]:
    from pallet.engine.humanize import command_string, human_duration, human_size, status_string

    created = human_duration(time.time() - c.created / 1e9) + " ago"
    created_at = time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(c.created / 1e9))
    row = {
        "ID": c.short_id if trunc else c.id,
        "Image": c.spec.image,
        "Command": command_string(c, trunc),
        "CreatedAt": created_at,
        "RunningFor": created,
        "Status": status_string(c),
        "State": c.state.status,
        "Ports": ", ".join(ports or ()),
        "Names": c.name,
        "Labels": ",".join(f"{k}={v}" for k, v in c.spec.labels.items()),
        "Mounts": ",".join(m.source or m.destination for m in c.spec.mounts),
        "Networks": c.spec.network_mode,
        "Size": "",
    }
    if size:
        from pallet.engine.volumes import du

        rw = du(c.dir / "upper")
        virtual = rw + (image_sizes or {}).get(c.spec.image_id, 0)
        row["Size"] = f"{human_size(rw)} (virtual {human_size(virtual)})"
    return row


def _match(c: Any, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        ok = False
        for v in values:
            if key == "status":
                ok = c.state.status == v
            elif key == "name":
                ok = v.lstrip("/") in c.name
            elif key == "id":
                ok = c.id.startswith(v)
            elif key == "label":
                k, eq, val = v.partition("=")
                ok = k in c.spec.labels and (not eq or c.spec.labels[k] == val)
            elif key == "ancestor":
                ok = v in (c.spec.image, c.spec.image_id) or c.spec.image_id.removeprefix("sha256:").startswith(v) \
                    or c.spec.image.partition(":")[0] == v
            elif key == "exited":
                ok = c.state.status == "exited" and str(c.state.exit_code) == v
            elif key in ("volume",):
                ok = any(m.source == v or m.destination == v for m in c.spec.mounts)
            elif key == "network":
                ok = c.spec.network_mode == v
            elif key == "isolation":
                ok = (c.spec.isolation or "default") == v
            if ok:
                break
        if not ok:
            return False
    return True


def parse_filters(values: tuple[str, ...]) -> dict[str, list[str]]:
    from pallet.errors import InvalidArgument

    out: dict[str, list[str]] = {}
    valid = {"status", "name", "id", "label", "ancestor", "exited", "volume", "network", "isolation"}
    statuses = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
    for f in values:
        k, eq, v = f.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if k not in valid:
            raise InvalidArgument(f"invalid filter '{k}'")
        if k == "status" and v not in statuses:
            raise InvalidArgument(f"invalid filter 'status={v}'")
        out.setdefault(k, []).append(v)
    return out


def render(template: str, rows: list[dict[str, Any]]) -> str:
    """Render Docker's --format: ``table``, ``json``, or a Go template over each row."""
    from pallet.cli.format import render as go_render

    if template == "json":
        return "".join(json.dumps(r) + "\n" for r in rows)
    return go_render(template, rows, _HEADERS)


def execute(template: str, obj: Any) -> str:
    """One object through a template (``inspect -f``), newline-terminated."""
    from pallet.cli.format import execute as go_execute

    return go_execute(template, obj) + "\n"


_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "State": "STATE",
    "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
}


@click.command(short_help="List containers")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "fmt", default="", help="Format output using a custom template")
@click.pass_obj
def ps(config: Config, all_: bool, quiet: bool, last: int, latest: bool, no_trunc: bool, size: bool,
       filters: tuple[str, ...], fmt: str) -> int:
    """List containers."""
    from pallet.engine.containers import ContainerService

    flt = parse_filters(filters)
    svc = ContainerService(config)
    show_all = all_ or latest or last >= 0 or "status" in flt or "exited" in flt
    cs = [c for c in svc.list_containers(all=show_all) if _match(c, flt)]
    if latest:
        last = 1
    if last >= 0:
        cs = cs[:last]
    if quiet and not fmt:
        for c in cs:
            click.echo(c.short_id if not no_trunc else c.id)
        return 0
    image_sizes: dict[str, int] = {}
    if size:
        from pallet.engine.rootfs import Images

        images = Images(config)
        for img_id in {c.spec.image_id for c in cs}:
            try:
                image_sizes[img_id] = int(getattr(images.get(img_id).handle, "size", 0) or 0)
            except Exception:
                image_sizes[img_id] = 0
    rows = [_row(c, not no_trunc, size, image_sizes, svc.published_ports(c)) for c in cs]
    template = fmt or DEFAULT_TABLE + ("\t{{.Size}}" if size else "")
    click.echo(render(template, rows), nl=False)
    return 0
