"""``pallet volume create|ls|inspect|rm|prune``."""

from __future__ import annotations

import json
import sys

import click

from pallet.config import Config


@click.command(short_help="Create a volume")
@click.option("-d", "--driver", default="local", help="Specify volume driver name")
@click.option("--label", multiple=True, help="Set metadata for a volume")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@click.argument("name", required=False, default="")
@click.pass_obj
def create(config: Config, driver: str, label: tuple[str, ...], opt: tuple[str, ...], name: str) -> int:
    """Create a volume."""
    from pallet.engine.volumes import VolumeService
    from pallet.errors import InvalidArgument

    if driver != "local":
        raise InvalidArgument(f"error looking up volume plugin {driver}: plugin \"{driver}\" not found")
    labels = dict(lb.partition("=")[::2] for lb in label)
    opts = dict(o.partition("=")[::2] for o in opt)
    v = VolumeService(config).create(name, labels, opts)
    click.echo(v.name)
    return 0


@click.command(short_help="List volumes")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true')")
@click.option("--format", "fmt", default="", help="Format output using a custom template")
@click.pass_obj
def ls(config: Config, quiet: bool, filters: tuple[str, ...], fmt: str) -> int:
    """List volumes."""
    from pallet.cli.ps import render
    from pallet.engine.volumes import VolumeService
    from pallet.errors import InvalidArgument

    vs = VolumeService(config)
    vols = vs.all()
    used = vs.users() if any(f.startswith("dangling=") for f in filters) else {}
    for f in filters:
        k, _, v = f.partition("=")
        if k == "dangling":
            want = v.lower() in ("1", "true")
            vols = [x for x in vols if (x.name not in used) == want]
        elif k == "name":
            vols = [x for x in vols if v in x.name]
        elif k == "label":
            lk, eq, lv = v.partition("=")
            vols = [x for x in vols if lk in x.labels and (not eq or x.labels[lk] == lv)]
        elif k == "driver":
            vols = [x for x in vols if v == "local"]
        else:
            raise InvalidArgument(f"invalid filter '{k}'")
    if quiet:
        for x in vols:
            click.echo(x.name)
        return 0
    rows = [{"Driver": "local", "Name": x.name, "Mountpoint": str(x.mountpoint), "Scope": "local",
             "Labels": ",".join(f"{a}={b}" for a, b in x.labels.items())} for x in vols]
    if fmt:
        click.echo(render(fmt, rows), nl=False)
    else:
        click.echo(render("table {{.Driver}}\t{{.Name}}", rows).replace("NAME", "VOLUME NAME", 1), nl=False)
    return 0


@click.command(short_help="Display detailed information on one or more volumes")
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(config: Config, fmt: str, names: tuple[str, ...]) -> int:
    """Display detailed information on one or more volumes."""
    from pallet.cli.ps import execute
    from pallet.engine.volumes import VolumeService
    from pallet.errors import NotFound

    vs = VolumeService(config)
    docs, missing = [], []
    for n in names:
        try:
            docs.append(vs.get(n).inspect())
        except NotFound:
            missing.append(n)
    if fmt:
        for d in docs:
            click.echo(execute(fmt, d), nl=False)
    else:
        click.echo(json.dumps(docs, indent=4))
    for m in missing:
        sys.stderr.write(f"Error: No such volume: {m}\n")
    return 1 if missing else 0


@click.command(short_help="Remove one or more volumes")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(config: Config, force: bool, names: tuple[str, ...]) -> int:
    """Remove one or more volumes."""
    from pallet.cli.each import exit_status, for_each
    from pallet.engine.volumes import VolumeService
    from pallet.errors import NotFound

    vs = VolumeService(config)

    def remove_one(name: str) -> None:
        vs.remove(name)

    return exit_status(for_each(names, remove_one, tolerate=lambda e: force and isinstance(e, NotFound)))


@click.command(short_help="Remove unused local volumes")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>')")
@click.pass_obj
def prune(config: Config, all_: bool, force: bool, filters: tuple[str, ...]) -> int:
    """Remove unused local volumes."""
    from pallet.cli.pruning import confirmed, report_deleted, report_reclaimed
    from pallet.engine.volumes import VolumeService

    labels = tuple(f.partition("=")[2] for f in filters if f.startswith("label="))
    which = "all" if all_ else "anonymous"
    if not confirmed(f"WARNING! This will remove {which} local volumes not used by at least one container.", force):
        return 0
    removed, size = VolumeService(config).prune(all_, labels)
    report_deleted("Volumes", removed)
    report_reclaimed(size)
    return 0
