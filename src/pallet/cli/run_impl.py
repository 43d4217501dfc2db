"""What ``run`` and ``create`` do once their options are parsed (no click here).

Both the click commands (``pallet.cli.run``, ``pallet.cli.create``) and the
click-free fast path of ``pallet.cli.main`` call these functions with the same
keyword arguments, the ``dest`` names of ``pallet.cli.run_options``.
"""

from __future__ import annotations

import os
import sys

from pallet.cli.run_options import resource_kwargs

TYPE_CHECKING = False  # no typing at run time (``pallet run`` path)
if TYPE_CHECKING:
    from typing import Any

    from pallet.config import Config


def _kv_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        from pallet.errors import InvalidArgument

        raise InvalidArgument(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _env(values: tuple[str, ...], files: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for raw in [*(ln for f in files for ln in _kv_file(f)), *values]:
        k, eq, v = raw.partition("=")
        if not k:
            from pallet.errors import InvalidArgument

            raise InvalidArgument(f"invalid environment variable: {raw}")
        if eq:
            out.append(f"{k}={v}")
        elif k in os.environ:
            out.append(f"{k}={os.environ[k]}")
    return tuple(out)


def _labels(values: tuple[str, ...], files: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in [*(ln for f in files for ln in _kv_file(f)), *values]:
        k, _, v = raw.partition("=")
        out[k] = v
    return out


def build_options(config: Config, image: str, command: tuple[str, ...], kw: dict[str, Any],
                  auto_remove: bool = False) -> Any:
    from pallet.engine.containers import CreateOptions
    from pallet.engine.mounts import parse_mount, parse_tmpfs, parse_volume

    mounts = [parse_volume(v) for v in kw["volume"]]
    mounts += [parse_mount(m) for m in kw["mount"]]
    mounts += [parse_tmpfs(t) for t in kw["tmpfs"]]
    resources: dict[str, Any] = {}
    res_kw = resource_kwargs(kw)
    if res_kw:
        from pallet.engine.resources import parse_flags

        resources = parse_flags(read_only=kw["read_only"], network_mode=kw["network"] or "", **res_kw)
    annotations = {}
    for a in kw.get("annotation") or ():
        k, _, v = a.partition("=")
        annotations[k] = v
    if kw.get("pull") not in ("missing", "never", "always"):
        from pallet.errors import InvalidArgument

        raise InvalidArgument(f'invalid pull option: \'{kw.get("pull")}\': must be one of "always", "missing" or "never"')
    return CreateOptions(
        image=image,
        command=tuple(command),
        entrypoint=kw["entrypoint"],
        name=kw["name"],
        env=_env(kw["env"], kw["env_file"]),
        working_dir=kw["workdir"],
        user=kw["user"],
        hostname=kw["hostname"],
        mounts=tuple(mounts),
        read_only=kw["read_only"],
        interactive=kw["interactive"],
        tty=kw["tty"],
        init=kw["init"],
        stop_signal=kw["stop_signal"],
        stop_timeout=kw["stop_timeout"],
        labels=_labels(kw["label"], kw["label_file"]),
        network=kw["network"],
        restart=kw["restart"],
        auto_remove=auto_remove,
        runtime=kw["runtime_"],
        isolation=kw["isolation"],
        publish=tuple(kw["publish"]),
        expose=tuple(e if "/" in e else f"{e}/tcp" for e in kw["expose"]),
        add_host=tuple(kw["add_host"]),
        dns=tuple(kw["dns"]),
        dns_search=tuple(kw["dns_search"]),
        dns_options=tuple(kw["dns_option"]),
        network_aliases=tuple(kw["network_alias"]),
        ip=kw["ip"],
        publish_all=kw["publish_all"],
        resources=resources,
        annotations=annotations,
    )


def _print_id(cid: str) -> None:
    sys.stdout.write(cid + "\n")
    sys.stdout.flush()


def run_container(config: Config, *, detach: bool, auto_remove: bool, attach: tuple[str, ...],
                  sig_proxy: bool, image: str, command: tuple[str, ...], **kw: Any) -> int:
    """``pallet run``: create a container, start it, and follow it unless detached."""
    from pallet.engine.containers import ContainerService

    opts = build_options(config, image, command, kw, auto_remove=auto_remove)
    if detach and attach:
        from pallet.errors import InvalidArgument

        raise InvalidArgument("Conflicting options: -a and -d")
    from pallet.engine.lifecycle import warm_cgroup_migrations

    warm_cgroup_migrations(config, opts.runtime, opts.isolation)
    svc = ContainerService(config)
    c = svc.create(opts)
    try:
        if detach:
            c = svc.start(c)
            _print_id(c.id)
            return 0
        if c.spec.restart_policy != "no":
            from pallet.engine.attach import follow_until_exit

            c = svc.start(c)
            return follow_until_exit(svc, c)
        from pallet.engine.foreground import run_foreground

        return run_foreground(svc, c)
    except BaseException:
        if auto_remove:
            import contextlib

            with contextlib.suppress(Exception):
                svc.remove(svc.store.load(c.id), force=True)
        raise


def create_container(config: Config, *, auto_remove: bool, image: str, command: tuple[str, ...],
                     **kw: Any) -> int:
    """``pallet create``: create a container without starting it; print its ID."""
    from pallet.engine.containers import ContainerService

    opts = build_options(config, image, command, kw, auto_remove=auto_remove)
    c = ContainerService(config).create(opts)
    _print_id(c.id)
    return 0
