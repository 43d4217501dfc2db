"""``pallet build [OPTIONS] PATH | URL | -``: Docker's classic builder output and flags."""

from __future__ import annotations

import os
import sys

import click

from pallet.config import Config


def _kv_list(values: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for v in values:
        k, eq, val = v.partition("=")
        out[k] = val if eq else os.environ.get(k)
    return out


def _secrets(values: tuple[str, ...]) -> dict[str, str]:
    from pallet.errors import InvalidArgument

    out: dict[str, str] = {}
    for v in values:
        fields = dict(p.partition("=")[::2] for p in v.split(","))
        sid = fields.get("id", "")
        src = fields.get("src") or fields.get("source") or ""
        env = fields.get("env", "")
        if not sid:
            raise InvalidArgument(f"invalid secret {v!r}: id is required")
        if not src and env:
            import tempfile

            fd, src = tempfile.mkstemp(prefix="pallet-secret-")
            os.write(fd, os.environ.get(env, "").encode())
            os.close(fd)
        if not src:
            src = os.environ.get(sid.upper(), "") and ""
        if not src or not os.path.isfile(src):
            raise InvalidArgument(f"failed to stat {src or sid}: no such file or directory")
        out[sid] = src
    return out


@click.command(help="Build an image from a Dockerfile.")
@click.argument("context", required=True)
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag).")
@click.option("-f", "--file", "file", default=None, help="Name of the Dockerfile (default: PATH/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables.")
@click.option("--target", default="", help="Set the target build stage to build.")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image.")
@click.option("--network", default="default", help="Networking mode for the RUN instructions.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--iidfile", default=None, help="Write the image ID to the file.")
@click.option("--progress", default="auto", type=click.Choice(["auto", "plain", "tty", "quiet", "rawjson"]),
              help="Type of progress output.")
@click.option("--secret", "secrets", multiple=True, help="Secret to expose to the build (id=mysecret,src=/path).")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("--cache-from", "cache_from", multiple=True, help="Images to consider as cache sources.")
@click.option("--platform", default="", help="Set platform if server is multi-platform capable.")
@click.option("--rm/--no-rm", default=True, help="Remove intermediate containers after a successful build.")
@click.option("--force-rm", is_flag=True, help="Always remove intermediate containers.")
@click.pass_obj
def build(config: Config, context: str, tags: tuple[str, ...], file: str | None, build_args: tuple[str, ...],
          target: str, labels: tuple[str, ...], network: str, quiet: bool, iidfile: str | None, progress: str,
          secrets: tuple[str, ...], no_cache: bool, pull: bool, cache_from: tuple[str, ...], platform: str,
          rm: bool, force_rm: bool) -> None:
    import io

    from pallet.build.builder import BuildOptions
    from pallet.engine import build as engine_build
    from pallet.errors import InvalidArgument
    from pallet.oci.reference import parse as parse_ref

    for t in tags:
        try:
            parse_ref(t)
        except Exception:  # noqa: BLE001 - any reference error reads the same
            raise InvalidArgument(f'invalid argument "{t}" for "-t, --tag" flag: invalid reference format') from None
    if network not in ("default", "host", "none", "bridge"):
        raise InvalidArgument(f"network mode {network!r} is not supported by the builder (default, host, none)")
    lab: dict[str, str] = {k: v or "" for k, v in _kv_list(labels).items()}
    opts = BuildOptions(
        tags=tags,
        build_args=_kv_list(build_args),
        target=target,
        labels=lab,
        network="default" if network == "bridge" else network,
        no_cache=no_cache,
        pull=pull,
        cache_from=cache_from,
        secrets=_secrets(secrets),
        platform=platform,
        quiet=quiet or progress == "quiet",
        host_proxy_env=engine_build.host_proxy_env(),
    )
    out = io.StringIO() if opts.quiet else sys.stdout
    stdin = sys.stdin.buffer if context == "-" or file == "-" else None
    try:
        img = engine_build.build(config, context, opts, dockerfile=file, out=out, stdin=stdin)
    except Exception as e:
        tail = getattr(e, "tail", None)
        if opts.quiet and tail:
            sys.stderr.write("\n".join(tail) + "\n")
        raise
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(img.id)
    if opts.quiet:
        click.echo(img.id)
        return
    click.echo(f"Successfully built {img.short_id}")
    for t in tags:
        click.echo(f"Successfully tagged {_familiar(t)}")


def _familiar(tag: str) -> str:
    from pallet.oci.reference import parse as parse_ref

    r = parse_ref(tag)
    if not r.tag and not r.digest:
        r = r.with_tag("latest")
    return r.familiar()
