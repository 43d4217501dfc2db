"""``pallet image bootstrap``: a Debian-based image built from Debian's packages."""

from __future__ import annotations

import click

from pallet.config import Config


@click.command(
    help="Build a Debian-based image from Debian's packages with mmdebstrap.\n\n"
    "TAG names the image, e.g. debian:bookworm-slim; the suite is read from it unless --suite "
    "is given.  Example: pallet image bootstrap --include python3,python3-pip python:3-slim"
)
@click.argument("names", nargs=-1, required=True, metavar="[BASE] TAG")
@click.option("--suite", default="", help="Debian suite (default: from the tag, else bookworm).")
@click.option("--variant", default="minbase", show_default=True, help="mmdebstrap variant.")
@click.option("--include", "include", multiple=True, help="Extra packages (comma-separated, repeatable).")
@click.option("--mirror", default="", help="Debian mirror URL (default: deb.debian.org).")
@click.option("--components", default="", help="Archive components, comma-separated (default: main).")
@click.option("--cmd", default="", help="Default command (JSON array or a program); default bash/python3.")
@click.pass_obj
def bootstrap(config: Config, names: tuple[str, ...], suite: str, variant: str, include: tuple[str, ...],
              mirror: str, components: str, cmd: str) -> None:
    import json
    import sys

    from pallet.engine.bootstrap import BootstrapOptions, mmdebstrap_argv, suite_for
    from pallet.engine.bootstrap import bootstrap as run
    from pallet.errors import InvalidArgument
    from pallet.oci.reference import parse

    if len(names) > 2:
        raise InvalidArgument('"pallet image bootstrap" requires 1 or 2 arguments: [BASE] TAG')
    base, tag = (names[0], names[1]) if len(names) == 2 else (names[0], names[0])
    pkgs = tuple(p.strip() for item in include for p in item.split(",") if p.strip())
    cmd_t: tuple[str, ...] = ()
    if cmd:
        cmd_t = tuple(json.loads(cmd)) if cmd.lstrip().startswith("[") else (cmd,)
    suite = suite_for(base, suite)
    opts = BootstrapOptions(tag=tag, suite=suite, variant=variant, include=pkgs, mirror=mirror,
                            components=tuple(c for c in components.split(",") if c), cmd=cmd_t)
    mmdebstrap_argv(opts, suite)  # validates the options before the long part starts
    parse(tag)
    if sys.stderr.isatty():
        sys.stderr.write(f"Bootstrapping Debian {suite} ({variant}"
                         + (f", with {', '.join(pkgs)}" if pkgs else "") + f") as {tag}...\n")
    img = run(config, opts)
    click.echo(img.id)
