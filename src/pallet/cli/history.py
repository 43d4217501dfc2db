"""``pallet history`` / ``pallet image history``."""

from __future__ import annotations

import click

from pallet.config import Config

HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
           "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
DEFAULT_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def history_table(rows: list[dict], human: bool, no_trunc: bool) -> list[dict]:
    from pallet.cli.format import human_size, since

    out = []
    for r in rows:
        iid = r["Id"]
        if iid != "<missing>" and not no_trunc:
            iid = iid.split(":", 1)[1][:12]
        created_by = r["CreatedBy"]
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        out.append(
            {
                "ID": iid,
                "CreatedSince": since(r["Created"]) if human else r["Created"],
                "CreatedAt": r["Created"],
                "CreatedBy": created_by,
                "Size": human_size(r["Size"]) if human else str(r["Size"]),
                "Comment": r["Comment"],
            }
        )
    return out


def _bool(ctx: click.Context, param: click.Parameter, value: str) -> bool:
    v = value.lstrip("=").lower()
    if v in ("", "1", "t", "true", "yes", "y", "on"):
        return True
    if v in ("0", "f", "false", "no", "n", "off"):
        return False
    raise click.BadParameter(f"invalid boolean value {value!r}")


@click.command(help="Show the history of an image.")
@click.argument("image")
@click.option("-H", "--human", default="true", callback=_bool, show_default=True,
              help="Print sizes and dates in human readable format.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "fmt", help="Format output using a custom template.")
@click.pass_obj
def history(config: Config, image: str, human: bool, no_trunc: bool, quiet: bool, fmt: str | None) -> None:
    from pallet.cli.format import render
    from pallet.engine.images import ImageService

    rows = history_table(ImageService(config).history(image), human, no_trunc)
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    click.echo(render(fmt or DEFAULT_FORMAT, rows, HEADERS), nl=False)
