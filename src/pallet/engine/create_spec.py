"""Turn ``create``/``run`` options and the image's config into a container's record (ContainerSpec)."""

from __future__ import annotations

import os

from pallet.config import Config
from pallet.engine.mounts import check_duplicates
from pallet.engine.state import ContainerSpec, MountSpec
from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable

    from pallet.engine.containers import CreateOptions
    from pallet.engine.rootfs import ImageInfo, Images


def resolve_command(
    image_entrypoint: tuple[str, ...] | None,
    image_cmd: tuple[str, ...] | None,
    entrypoint_flag: str | None,
    command: tuple[str, ...],
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None, list[str]]:
    """(Entrypoint, Cmd, argv) with Docker's rules: --entrypoint resets the image's CMD."""
    if entrypoint_flag is not None:
        entrypoint: tuple[str, ...] | None = (entrypoint_flag,) if entrypoint_flag else None
        cmd: tuple[str, ...] | None = command or None
    else:
        entrypoint = image_entrypoint
        cmd = command or image_cmd
    argv = [*(entrypoint or ()), *(cmd or ())]
    if not argv:
        raise InvalidArgument("no command specified")
    return entrypoint, cmd, argv


def merge_env(image_env: tuple[str, ...], env: tuple[str, ...]) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for e in (*image_env, *env):
        k, eq, v = e.partition("=")
        if not k:
            raise InvalidArgument(f"invalid environment variable: {e}")
        out[k] = v
    return tuple(f"{k}={v}" for k, v in out.items())


def network_mode(value: str) -> str:
    """``none``, ``host``, a network's name or ``container:NAME`` (validated by the network layer)."""
    v = value or ""
    if v in ("none", "host"):
        return v  # the network layer is not even imported: the run path stays lean
    try:
        from pallet.engine import networks  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        networks = None  # type: ignore[assignment]
    if v in ("", "default"):
        v = default_network()
    if v in ("none", "host"):
        return v
    if networks is None:
        if v.startswith("container:"):
            raise InvalidArgument("--network container:<name> needs the network layer")
        raise InvalidArgument(f"network {v} not found")
    parse = getattr(networks, "parse_network_mode", None)
    if parse is not None:
        parse(v)
    return v


def default_network() -> str:
    try:
        from pallet.engine import networks  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return "none"
    return str(getattr(networks, "DEFAULT_NETWORK", "bridge"))


def container_spec(config: Config, opts: CreateOptions,
                   image: Callable[[str], ImageInfo] | None = None) -> tuple[ContainerSpec, list[str]]:
    """The record for a new container, and the image VOLUMEs that need anonymous volumes.

    ``image`` looks the image up (by default a direct lookup in the store of ``config``).
    """
    from pallet.engine.containers import parse_restart, parse_signal
    from pallet.engine.runtimes import runtime_name

    restart, restart_max = parse_restart(opts.restart)
    if opts.auto_remove and restart != "no":
        raise InvalidArgument("Conflicting options: --restart and --rm")
    if opts.stop_signal:
        parse_signal(opts.stop_signal)
    runtime = runtime_name(config, opts.runtime, opts.isolation)
    net = network_mode(opts.network)
    if net not in ("none", "host") and opts.runtime != "vm" and opts.isolation != "vm":
        from pallet.engine.networks import validate

        validate(config, net, opts.publish, opts.network_aliases, opts.ip)
    if net == "host" and opts.hostname:
        raise InvalidArgument("Conflicting options: hostname and the network mode")
    mounts = list(opts.mounts)
    check_duplicates(mounts)
    if opts.init and not init_binary():
        raise InvalidArgument("--init: no init binary found (install Debian's tini package)")

    info = image(opts.image) if image is not None else lookup_image(config, opts.image)
    icfg = info.config.config
    entrypoint, cmd, argv = resolve_command(icfg.entrypoint, icfg.cmd, opts.entrypoint, opts.command)
    taken = {m.destination for m in mounts}
    image_volumes = [v for v in icfg.volumes if os.path.normpath(v) not in taken]
    labels = dict(icfg.labels)
    labels.update(opts.labels)
    spec = ContainerSpec(
        image=opts.image,
        image_id=info.id,
        path=argv[0],
        args=tuple(argv[1:]),
        entrypoint=entrypoint,
        cmd=cmd,
        env=merge_env(icfg.env, opts.env),
        working_dir=opts.working_dir or icfg.working_dir,
        user=icfg.user if opts.user is None else opts.user,
        hostname=opts.hostname,
        labels=labels,
        tty=opts.tty,
        open_stdin=opts.interactive,
        stop_signal=opts.stop_signal or icfg.stop_signal,
        stop_timeout=opts.stop_timeout,
        mounts=tuple(mounts),
        read_only=opts.read_only,
        init=opts.init,
        network_mode=net,
        restart_policy=restart,
        restart_max=restart_max,
        auto_remove=opts.auto_remove,
        runtime=runtime,
        isolation=opts.isolation or "default",
        exposed_ports=tuple(sorted(set(icfg.exposed_ports) | set(opts.expose))),
        port_bindings=opts.publish,
        extra_hosts=opts.add_host,
        dns=opts.dns,
        dns_search=opts.dns_search,
        dns_options=opts.dns_options,
        aliases=opts.network_aliases,
        ip=opts.ip,
        publish_all=opts.publish_all,
        resources=dict(opts.resources),
        annotations=dict(opts.annotations),
    )
    if opts.working_dir and not opts.working_dir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{opts.working_dir}' is invalid, it needs to be an absolute path"
        )
    return spec, image_volumes


def lookup_image(config: Config, ref: str, images: Images | None = None) -> ImageInfo:
    """The image ``ref`` names (name, ID or ID prefix), found directly: one manifest and one
    config are read, not every image of the store."""
    from pallet.engine.rootfs import ImageInfo, Images

    img = (images or Images(config)).images.lookup(ref)
    return ImageInfo(str(img.id), img.config, img)


def init_binary() -> str:
    for p in ("/usr/bin/tini-static", "/usr/bin/tini", "/usr/libexec/podman/catatonit", "/usr/bin/catatonit"):
        if os.path.exists(p):
            return p
    return ""


def image_volume_mount(dest: str, name: str) -> MountSpec:
    return MountSpec("volume", dest, name, anonymous=True)
