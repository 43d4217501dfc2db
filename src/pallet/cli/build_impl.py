"""The work of ``pallet build`` once its command line is parsed (by click or by the fast
parser of ``pallet.cli.build_options``): options checked, the engine's build, Docker's
closing lines.  No click here."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
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


def build_image(config: Config, context: str, tags: tuple[str, ...], file: str | None,
                build_args: tuple[str, ...], target: str, labels: tuple[str, ...], network: str, quiet: bool,
                iidfile: str | None, progress: str, secrets: tuple[str, ...], no_cache: bool, pull: bool,
                cache_from: tuple[str, ...], platform: str, rm: bool, force_rm: bool) -> int:
    """``pallet build``: build, then print (or write) what Docker's classic builder does."""
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
        _echo(img.id)
        return 0
    _echo(f"Successfully built {img.short_id}")
    for t in tags:
        _echo(f"Successfully tagged {_familiar(t)}")
    return 0


def _echo(line: str) -> None:
    """click.echo of one line: written and flushed at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _familiar(tag: str) -> str:
    from pallet.oci.reference import parse as parse_ref

    r = parse_ref(tag)
    if not r.tag and not r.digest:
        r = r.with_tag("latest")
    return r.familiar()
