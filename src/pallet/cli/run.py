"""``pallet run`` (and the flags ``create`` shares): create a container from an image and start it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from pallet.config import Config

CONTEXT = {"help_option_names": ["--help"], "ignore_unknown_options": False, "allow_interspersed_args": False}

_RESOURCE_FLAGS = (
    ("--memory", "-m", "memory", "Memory limit"),
    ("--memory-swap", None, "memory_swap", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    ("--memory-reservation", None, "memory_reservation", "Memory soft limit"),
    ("--cpus", None, "cpus", "Number of CPUs"),
    ("--cpu-shares", "-c", "cpu_shares", "CPU shares (relative weight)"),
    ("--cpu-period", None, "cpu_period", "Limit CPU CFS (Completely Fair Scheduler) period"),
    ("--cpu-quota", None, "cpu_quota", "Limit CPU CFS (Completely Fair Scheduler) quota"),
    ("--cpuset-cpus", None, "cpuset_cpus", "CPUs in which to allow execution (0-3, 0,1)"),
    ("--cpuset-mems", None, "cpuset_mems", "MEMs in which to allow execution (0-3, 0,1)"),
    ("--pids-limit", None, "pids_limit", "Tune container pids limit (set -1 for unlimited)"),
    ("--blkio-weight", None, "blkio_weight", "Block IO (relative weight), between 10 and 1000, or 0 to disable"),
    ("--userns", None, "userns", "User namespace to use"),
    ("--memory-swappiness", None, "memory_swappiness", "Tune container memory swappiness (0 to 100)"),
    ("--shm-size", None, "shm_size", "Size of /dev/shm"),
    ("--oom-score-adj", None, "oom_score_adj", "Tune host's OOM preferences (-1000 to 1000)"),
)
_RESOURCE_MULTI = (
    ("--device-read-bps", "device_read_bps", "Limit read rate (bytes per second) from a device"),
    ("--device-write-bps", "device_write_bps", "Limit write rate (bytes per second) to a device"),
    ("--device-read-iops", "device_read_iops", "Limit read rate (IO per second) from a device"),
    ("--device-write-iops", "device_write_iops", "Limit write rate (IO per second) to a device"),
    ("--cap-add", "cap_add", "Add Linux capabilities"),
    ("--cap-drop", "cap_drop", "Drop Linux capabilities"),
    ("--security-opt", "security_opt", "Security Options"),
    ("--sysctl", "sysctl", "Sysctl options"),
    ("--device", "device", "Add a host device to the container"),
    ("--device-cgroup-rule", "device_cgroup_rule", "Add a rule to the cgroup allowed devices list"),
    ("--ulimit", "ulimit", "Ulimit options"),
)
_RESOURCE_BOOL = (
    ("--oom-kill-disable", "oom_kill_disable", "Disable OOM Killer"),
    ("--privileged", "privileged", "Give extended privileges to this container"),
)


def container_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The flags ``run`` and ``create`` share (Docker's names)."""
    opts: list[Callable[..., Any]] = [
        click.option("--name", default="", help="Assign a name to the container"),
        click.option("-e", "--env", multiple=True, help="Set environment variables"),
        click.option("--env-file", multiple=True, help="Read in a file of environment variables"),
        click.option("-w", "--workdir", default="", help="Working directory inside the container"),
        click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])"),
        click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image"),
        click.option("-h", "--hostname", default="", help="Container host name"),
        click.option("-v", "--volume", multiple=True, help="Bind mount a volume"),
        click.option("--mount", multiple=True, help="Attach a filesystem mount to the container"),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory"),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only"),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached"),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        click.option("--init", is_flag=True, help="Run an init inside the container that forwards signals and reaps processes"),
        click.option("--stop-signal", default="", help="Signal to stop the container"),
        click.option("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container"),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container"),
        click.option("--label-file", multiple=True, help="Read in a line delimited file of labels"),
        click.option("--network", "--net", default="", help="Connect a container to a network"),
        click.option("--restart", default="no", help="Restart policy to apply when a container exits"),
        click.option("--runtime", "runtime_", default=None, help="Runtime to use for this container"),
        click.option("--isolation", default="", help="Container isolation technology (default, vm)"),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host"),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports"),
        click.option("--add-host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)"),
        click.option("--dns", multiple=True, help="Set custom DNS servers"),
        click.option("--dns-search", multiple=True, help="Set custom DNS search domains"),
        click.option("--dns-option", multiple=True, help="Set DNS options"),
        click.option("--network-alias", multiple=True, help="Add network-scoped alias for the container"),
        click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)"),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports"),
        click.option("--annotation", multiple=True, help="Add an annotation to the container (passed through to the OCI runtime)"),
        click.option("--pull", default="missing", help='Pull image before running ("missing", "never")'),
        click.option("--platform", default="", help="Set platform if server is multi-platform capable"),
    ]
    for long, short, dest, help_ in _RESOURCE_FLAGS:
        names = [long] + ([short] if short else [])
        opts.append(click.option(*names, dest, default=None, help=help_))
    for long, dest, help_ in _RESOURCE_MULTI:
        opts.append(click.option(long, dest, multiple=True, help=help_))
    for long, dest, help_ in _RESOURCE_BOOL:
        opts.append(click.option(long, dest, is_flag=True, help=help_))
    for o in reversed(opts):
        f = o(f)
    return f


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
    res_kw: dict[str, Any] = {d: kw[d] for _l, _s, d, _h in _RESOURCE_FLAGS if kw.get(d) is not None}
    res_kw.update({d: kw[d] for _l, d, _h in _RESOURCE_MULTI if kw.get(d)})
    res_kw.update({d: True for _l, d, _h in _RESOURCE_BOOL if kw.get(d)})
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


@click.command(context_settings=CONTEXT, short_help="Create and run a new container from an image")
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@click.option("--rm", "auto_remove", is_flag=True, help="Automatically remove the container when it exits")
@click.option("-a", "--attach", multiple=True, help="Attach to STDIN, STDOUT or STDERR")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals to the process")
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(config: Config, detach: bool, auto_remove: bool, attach: tuple[str, ...], sig_proxy: bool,
        image: str, command: tuple[str, ...], **kw: Any) -> int:
    """Create and run a new container from an image."""
    from pallet.engine.containers import ContainerService

    opts = build_options(config, image, command, kw, auto_remove=auto_remove)
    if detach and attach:
        from pallet.errors import InvalidArgument

        raise InvalidArgument("Conflicting options: -a and -d")
    svc = ContainerService(config)
    c = svc.create(opts)
    try:
        if detach:
            c = svc.start(c)
            click.echo(c.id)
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
