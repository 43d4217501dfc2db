"""``pallet system df`` and ``pallet info`` (``system prune`` lives below, separately)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from pallet.config import Config

# -- system df ---------------------------------------------------------------------

DF_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def _containers(config: Config) -> list[dict[str, Any]]:
    """Count, running flag and writable-layer size of each container (if the engine exists)."""
    try:
        from pallet.engine.containers import ContainerService
    except ImportError:
        return []
    from pallet.engine.volumes import du

    out = []
    try:
        for c in ContainerService(config).list_containers(all=True):
            out.append({"name": c.name, "running": bool(c.state.running), "size": du(c.dir / "upper")})
    except Exception:  # noqa: BLE001 - df reports what it can read
        return out
    return out


def _volumes(config: Config) -> tuple[int, int]:
    from pallet.engine.volumes import du

    vdir = config.root / "volumes"
    if not vdir.is_dir():
        return 0, 0
    names = [n for n in os.listdir(vdir) if (vdir / n).is_dir()]
    return len(names), sum(du(vdir / n) for n in names)


def _pct(part: int, whole: int) -> str:
    return f" ({int(part * 100 / whole)}%)" if whole else ""


@click.command(help="Show pallet disk usage.")
@click.option("--format", "fmt", help="Format output using a custom template.")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.pass_obj
def df(config: Config, fmt: str | None, verbose: bool) -> None:
    from pallet.cli.format import human_size, render
    from pallet.engine.images import ImageService

    d = ImageService(config).df()
    im = d["Images"]
    cs = _containers(config)
    csize = sum(c["size"] for c in cs)
    cidle = sum(c["size"] for c in cs if not c["running"])
    nv, vsize = _volumes(config)
    rows = [
        {"Type": "Images", "TotalCount": str(im["TotalCount"]), "Active": str(im["Active"]),
         "Size": human_size(im["Size"], 4),
         "Reclaimable": human_size(im["Reclaimable"], 4) + _pct(im["Reclaimable"], im["Size"])},
        {"Type": "Containers", "TotalCount": str(len(cs)), "Active": str(sum(c["running"] for c in cs)),
         "Size": human_size(csize, 4), "Reclaimable": human_size(cidle, 4) + _pct(cidle, csize)},
        {"Type": "Local Volumes", "TotalCount": str(nv), "Active": "0", "Size": human_size(vsize, 4),
         "Reclaimable": human_size(vsize, 4) + _pct(vsize, vsize)},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
    ]
    if fmt == "json":
        fmt = "{{json .}}"
    if not verbose:
        click.echo(render(fmt or DF_FORMAT, rows, DF_HEADERS), nl=False)
        return
    from pallet.cli.images import HEADERS, image_rows

    used = d["ContainersUsing"]
    click.echo("Images space usage:\n")
    irows = image_rows(d["ImageList"], False, False)
    counts = {img.short_id: len(used.get(img.id, [])) for img in d["ImageList"]}
    for r in irows:
        r["Containers"] = str(counts.get(r["ID"], 0))
    click.echo(render("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.Containers}}",
                      irows, HEADERS))
    click.echo("Containers space usage:\n")
    crow = [{"Names": c["name"], "Size": human_size(c["size"], 4)} for c in cs]
    click.echo(render("table {{.Names}}\t{{.Size}}", crow, {"Names": "NAMES", "Size": "SIZE"}) or "NAMES     SIZE\n")


# -- info ------------------------------------------------------------------------------


def _cgroup_version() -> str:
    try:
        with open("/proc/self/mountinfo") as f:
            fs = {line.split(" - ")[1].split()[0] for line in f if " - " in line}
    except OSError:
        return "unknown"
    return "1" if "cgroup" in fs else "2"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


@click.command(help="Display system-wide information.")
@click.option("-f", "--format", "fmt", help="Format output using a custom template.")
@click.pass_obj
def info(config: Config, fmt: str | None) -> None:
    import platform

    from pallet import __version__
    from pallet.cli.format import human_size
    from pallet.engine.images import ImageService
    from pallet.engine.limits import host_memory

    images = ImageService(config).store.images.list()
    cs = _containers(config)
    d = {
        "Containers": len(cs),
        "ContainersRunning": sum(c["running"] for c in cs),
        "ContainersStopped": sum(not c["running"] for c in cs),
        "Images": len(images),
        "Driver": "overlayfs",
        "DockerRootDir": str(config.root),
        "CgroupVersion": _cgroup_version(),
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count() or 0,
        "MemTotal": host_memory(),
        "DefaultRuntime": config.runtime,
        "ServerVersion": __version__,
        "KVM": os.path.exists("/dev/kvm"),
    }
    if fmt:
        from pallet.cli.format import execute

        click.echo(json.dumps(d) if fmt == "json" else execute(fmt, d))
        return
    click.echo(f"""Client: pallet
 Version:    {__version__}

Server:
 Containers: {d["Containers"]}
  Running: {d["ContainersRunning"]}
  Stopped: {d["ContainersStopped"]}
 Images: {d["Images"]}
 Server Version: {__version__}
 Storage Driver: overlayfs
 Cgroup Version: {d["CgroupVersion"]}
 Default Runtime: {config.runtime}
 Kernel Version: {d["KernelVersion"]}
 Operating System: {d["OperatingSystem"]}
 OSType: linux
 Architecture: {d["Architecture"]}
 CPUs: {d["NCPU"]}
 Total Memory: {human_size(d["MemTotal"], 4)}
 Pallet Root Dir: {config.root}
 Run Root Dir: {config.run_root}
 KVM: {"available" if d["KVM"] else "not available"}""")


# -- system prune (added by the container engine) ------------------------------------


@click.command(short_help="Remove unused data")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes")
@click.pass_obj
def prune(config: Config, all_: bool, force: bool, volumes: bool) -> None:
    """Remove stopped containers, unused networks, dangling (or, with -a, unused) images and
    build cache; with --volumes, unused anonymous volumes too.  Leftovers of containers that
    died with pallet (network leases, namespaces) are reconciled on the way."""
    from pallet.cli.network import prune_unused
    from pallet.cli.pruning import confirmed, report_deleted, report_reclaimed
    from pallet.engine.build import prune as builder_prune
    from pallet.engine.containers import ContainerService
    from pallet.engine.images import ImageService

    what = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append("all images without at least one container associated to them" if all_ else "all dangling images")
    what.append("all build cache" if all_ else "all dangling build cache")
    if not confirmed("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what), force):
        return
    removed, reclaimed = ContainerService(config).prune()
    report_deleted("Containers", removed)
    report_deleted("Networks", prune_unused(config))
    if volumes:
        from pallet.engine.volumes import VolumeService

        vols, space = VolumeService(config).prune()
        reclaimed += space
        report_deleted("Volumes", vols)
    r = ImageService(config).prune(all_=all_)
    reclaimed += r.reclaimed
    report_deleted("Images", r.deleted)
    reclaimed += builder_prune(config, all_=all_)
    report_reclaimed(reclaimed)
