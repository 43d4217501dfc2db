"""``pallet images`` / ``pallet image ls``."""

from __future__ import annotations

from typing import Any

import click

from pallet.config import Config

DEFAULT_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DIGEST_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "ID": "IMAGE ID",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "VIRTUAL SIZE",
    "Containers": "CONTAINERS",
}


def image_rows(images: list[Any], no_trunc: bool, digests: bool, repo_filter: str | None = None) -> list[dict[str, Any]]:
    """One row per (repository, tag) as Docker lists them; ``<none>`` for dangling images."""
    from pallet.cli.format import human_size, parse_time, since

    rows = []
    for img in images:
        iid = img.id if no_trunc else img.short_id
        created_at = ""
        t = parse_time(img.created)
        if t is not None:
            import time

            created_at = time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(t))
        digest_of: dict[str, str] = {}
        for rd in img.repo_digests:
            repo, _, dg = rd.partition("@")
            digest_of.setdefault(repo, dg)
        pairs: list[tuple[str, str]] = []
        for tag in img.repo_tags:
            repo, _, t_ = tag.rpartition(":")
            pairs.append((repo, t_))
        if not pairs:
            if img.repo_digests:
                pairs = [(rd.partition("@")[0], "<none>") for rd in img.repo_digests]
            else:
                pairs = [("<none>", "<none>")]
        for repo, tag in pairs:
            if repo_filter is not None and repo != repo_filter:
                continue
            rows.append(
                {
                    "Containers": "N/A",
                    "CreatedAt": created_at,
                    "CreatedSince": since(img.created),
                    "Digest": digest_of.get(repo, "<none>"),
                    "ID": iid,
                    "Repository": repo,
                    "SharedSize": "N/A",
                    "Size": human_size(img.size),
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": human_size(img.size),
                }
            )
    return rows


@click.command(help="List images.")
@click.argument("repository", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images).")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", help="Format output using a custom template.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.pass_obj
def images(
    config: Config,
    repository: str | None,
    all_: bool,
    digests: bool,
    filters: tuple[str, ...],
    fmt: str | None,
    no_trunc: bool,
    quiet: bool,
) -> None:
    from pallet.cli.format import render
    from pallet.engine.images import ImageService

    flt = list(filters)
    repo_filter = None
    if repository:
        from pallet.oci.reference import parse

        ref = parse(repository, default_tag=False)
        repo_filter = ref.familiar_repository
        if ref.tag:
            flt.append(f"reference={repo_filter}:{ref.tag}")
    imgs = ImageService(config).list(all_=all_, filters=flt)
    rows = image_rows(imgs, no_trunc, digests, repo_filter)
    if quiet:
        seen: list[str] = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        for i in seen:
            click.echo(i if no_trunc else i)
        return
    if fmt == "json":
        fmt = "{{json .}}"
    tpl = fmt or (DIGEST_FORMAT if digests else DEFAULT_FORMAT)
    click.echo(render(tpl, rows, HEADERS), nl=False)
