"""The options of ``run`` and ``create`` as one table, and a click-free parser for them.

The table is the single source: ``pallet.cli.run`` turns it into click
decorators (help, ``--help`` and every error message stay click's), and
:func:`parse_command_line` reads the common case of ``pallet [GLOBAL] run|create
[OPTIONS] IMAGE [COMMAND...]`` straight from argv without importing click, which
costs a fifth of a short ``run``.  The parser follows click's rules (``--opt=v``,
``--opt v``, clustered short flags, attached short values, ``--``, no options after
IMAGE, last value wins); on anything it is not sure of it returns ``None`` and the
caller lets click parse the same argv, so help, errors and exit codes are click's.
"""

from __future__ import annotations

# No typing or dataclasses at run time: this module is on the path of every ``run``.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FLAG = "flag"  # on when given, False otherwise
VALUE = "value"  # one value, the last one given wins
MULTIPLE = "multiple"  # every value given, in order (a tuple)
SWITCH = "switch"  # --x / --no-x pair, default given


class Opt:
    """One command-line option: ``names`` in click's declaration order, ``off`` the --no- names.

    ``type`` is ``int`` for integer values (click's INTEGER); ``resource`` marks the
    options handed to the engine's resource flag parser.
    """

    __slots__ = ("default", "dest", "envvar", "help", "kind", "names", "off", "resource", "type")

    def __init__(self, names: tuple[str, ...], dest: str, kind: str, help: str, default: Any = None,
                 type: type | None = None, off: tuple[str, ...] = (), envvar: str | None = None,
                 resource: bool = False) -> None:
        self.names = names
        self.dest = dest
        self.kind = kind
        self.help = help
        self.default = default
        self.type = type
        self.off = off
        self.envvar = envvar
        self.resource = resource

    def __repr__(self) -> str:
        return f"Opt({'/'.join(self.names + self.off)} -> {self.dest}, {self.kind})"

    @property
    def takes_value(self) -> bool:
        return self.kind in (VALUE, MULTIPLE)

    def initial(self) -> Any:
        if self.kind == MULTIPLE:
            return ()
        if self.kind == FLAG:
            return False
        return self.default


def _o(*names: str, dest: str, kind: str = VALUE, help: str, default: Any = None, **kw: Any) -> Opt:
    return Opt(names=names, dest=dest, kind=kind, help=help, default=default, **kw)


def _res(*names: str, dest: str, kind: str = VALUE, help: str) -> Opt:
    return Opt(names=names, dest=dest, kind=kind, help=help, resource=True)


# The global options of ``pallet`` itself (``--version``/``-v`` and ``-h``/``--help`` stay click's).
GLOBAL_OPTIONS: tuple[Opt, ...] = (
    _o("--root", dest="root", envvar="PALLET_ROOT", help="Root of pallet's state [default: /var/lib/pallet]."),
    _o("--runtime", dest="runtime", envvar="PALLET_RUNTIME", help="Low-level OCI runtime: pallet, runc or crun."),
    _o("--debug", "-D", dest="debug", kind=FLAG, help="Show tracebacks of internal errors."),
)

RM = _o("--rm", dest="auto_remove", kind=FLAG, help="Automatically remove the container when it exits")

# Options only ``run`` has, shown before the shared ones.
RUN_ONLY: tuple[Opt, ...] = (
    _o("-d", "--detach", dest="detach", kind=FLAG, help="Run container in background and print container ID"),
    RM,
    _o("-a", "--attach", dest="attach", kind=MULTIPLE, help="Attach to STDIN, STDOUT or STDERR"),
    _o("--sig-proxy", dest="sig_proxy", kind=SWITCH, off=("--no-sig-proxy",), default=True,
       help="Proxy received signals to the process"),
)

CREATE_ONLY: tuple[Opt, ...] = (RM,)

# The options ``run`` and ``create`` share (Docker's names).
CONTAINER_OPTIONS: tuple[Opt, ...] = (
    _o("--name", dest="name", default="", help="Assign a name to the container"),
    _o("-e", "--env", dest="env", kind=MULTIPLE, help="Set environment variables"),
    _o("--env-file", dest="env_file", kind=MULTIPLE, help="Read in a file of environment variables"),
    _o("-w", "--workdir", dest="workdir", default="", help="Working directory inside the container"),
    _o("-u", "--user", dest="user", help="Username or UID (format: <name|uid>[:<group|gid>])"),
    _o("--entrypoint", dest="entrypoint", help="Overwrite the default ENTRYPOINT of the image"),
    _o("-h", "--hostname", dest="hostname", default="", help="Container host name"),
    _o("-v", "--volume", dest="volume", kind=MULTIPLE, help="Bind mount a volume"),
    _o("--mount", dest="mount", kind=MULTIPLE, help="Attach a filesystem mount to the container"),
    _o("--tmpfs", dest="tmpfs", kind=MULTIPLE, help="Mount a tmpfs directory"),
    _o("--read-only", dest="read_only", kind=FLAG, help="Mount the container's root filesystem as read only"),
    _o("-i", "--interactive", dest="interactive", kind=FLAG, help="Keep STDIN open even if not attached"),
    _o("-t", "--tty", dest="tty", kind=FLAG, help="Allocate a pseudo-TTY"),
    _o("--init", dest="init", kind=FLAG,
       help="Run an init inside the container that forwards signals and reaps processes"),
    _o("--stop-signal", dest="stop_signal", default="", help="Signal to stop the container"),
    _o("--stop-timeout", dest="stop_timeout", type=int, help="Timeout (in seconds) to stop a container"),
    _o("-l", "--label", dest="label", kind=MULTIPLE, help="Set meta data on a container"),
    _o("--label-file", dest="label_file", kind=MULTIPLE, help="Read in a line delimited file of labels"),
    _o("--network", "--net", dest="network", default="", help="Connect a container to a network"),
    _o("--restart", dest="restart", default="no", help="Restart policy to apply when a container exits"),
    _o("--runtime", dest="runtime_", help="Runtime to use for this container"),
    _o("--isolation", dest="isolation", default="", help="Container isolation technology (default, vm)"),
    _o("-p", "--publish", dest="publish", kind=MULTIPLE, help="Publish a container's port(s) to the host"),
    _o("--expose", dest="expose", kind=MULTIPLE, help="Expose a port or a range of ports"),
    _o("--add-host", dest="add_host", kind=MULTIPLE, help="Add a custom host-to-IP mapping (host:ip)"),
    _o("--dns", dest="dns", kind=MULTIPLE, help="Set custom DNS servers"),
    _o("--dns-search", dest="dns_search", kind=MULTIPLE, help="Set custom DNS search domains"),
    _o("--dns-option", dest="dns_option", kind=MULTIPLE, help="Set DNS options"),
    _o("--network-alias", dest="network_alias", kind=MULTIPLE, help="Add network-scoped alias for the container"),
    _o("--ip", dest="ip", default="", help="IPv4 address (e.g., 172.30.100.104)"),
    _o("-P", "--publish-all", dest="publish_all", kind=FLAG, help="Publish all exposed ports to random ports"),
    _o("--annotation", dest="annotation", kind=MULTIPLE,
       help="Add an annotation to the container (passed through to the OCI runtime)"),
    _o("--pull", dest="pull", default="missing", help='Pull image before running ("missing", "never")'),
    _o("--platform", dest="platform", default="", help="Set platform if server is multi-platform capable"),
    # resources (pallet.engine.resources.parse_flags)
    _res("--memory", "-m", dest="memory", help="Memory limit"),
    _res("--memory-swap", dest="memory_swap",
         help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    _res("--memory-reservation", dest="memory_reservation", help="Memory soft limit"),
    _res("--cpus", dest="cpus", help="Number of CPUs"),
    _res("--cpu-shares", "-c", dest="cpu_shares", help="CPU shares (relative weight)"),
    _res("--cpu-period", dest="cpu_period", help="Limit CPU CFS (Completely Fair Scheduler) period"),
    _res("--cpu-quota", dest="cpu_quota", help="Limit CPU CFS (Completely Fair Scheduler) quota"),
    _res("--cpuset-cpus", dest="cpuset_cpus", help="CPUs in which to allow execution (0-3, 0,1)"),
    _res("--cpuset-mems", dest="cpuset_mems", help="MEMs in which to allow execution (0-3, 0,1)"),
    _res("--pids-limit", dest="pids_limit", help="Tune container pids limit (set -1 for unlimited)"),
    _res("--blkio-weight", dest="blkio_weight",
         help="Block IO (relative weight), between 10 and 1000, or 0 to disable"),
    _res("--userns", dest="userns", help="User namespace to use"),
    _res("--memory-swappiness", dest="memory_swappiness", help="Tune container memory swappiness (0 to 100)"),
    _res("--shm-size", dest="shm_size", help="Size of /dev/shm"),
    _res("--oom-score-adj", dest="oom_score_adj", help="Tune host's OOM preferences (-1000 to 1000)"),
    _res("--device-read-bps", dest="device_read_bps", kind=MULTIPLE,
         help="Limit read rate (bytes per second) from a device"),
    _res("--device-write-bps", dest="device_write_bps", kind=MULTIPLE,
         help="Limit write rate (bytes per second) to a device"),
    _res("--device-read-iops", dest="device_read_iops", kind=MULTIPLE,
         help="Limit read rate (IO per second) from a device"),
    _res("--device-write-iops", dest="device_write_iops", kind=MULTIPLE,
         help="Limit write rate (IO per second) to a device"),
    _res("--cap-add", dest="cap_add", kind=MULTIPLE, help="Add Linux capabilities"),
    _res("--cap-drop", dest="cap_drop", kind=MULTIPLE, help="Drop Linux capabilities"),
    _res("--security-opt", dest="security_opt", kind=MULTIPLE, help="Security Options"),
    _res("--sysctl", dest="sysctl", kind=MULTIPLE, help="Sysctl options"),
    _res("--device", dest="device", kind=MULTIPLE, help="Add a host device to the container"),
    _res("--device-cgroup-rule", dest="device_cgroup_rule", kind=MULTIPLE,
         help="Add a rule to the cgroup allowed devices list"),
    _res("--ulimit", dest="ulimit", kind=MULTIPLE, help="Ulimit options"),
    _res("--oom-kill-disable", dest="oom_kill_disable", kind=FLAG, help="Disable OOM Killer"),
    _res("--privileged", dest="privileged", kind=FLAG, help="Give extended privileges to this container"),
)

RUN_OPTIONS: tuple[Opt, ...] = RUN_ONLY + CONTAINER_OPTIONS
CREATE_OPTIONS: tuple[Opt, ...] = CREATE_ONLY + CONTAINER_OPTIONS

# ``pallet run`` / ``pallet container run`` -> the table of that command
COMMANDS: dict[str, tuple[Opt, ...]] = {"run": RUN_OPTIONS, "create": CREATE_OPTIONS}


def resource_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    """The resource flags the user gave, as the engine's ``parse_flags`` takes them."""
    out: dict[str, Any] = {}
    for o in CONTAINER_OPTIONS:
        if not o.resource:
            continue
        v = kw.get(o.dest)
        if o.kind == VALUE:
            if v is not None:
                out[o.dest] = v
        elif v:
            out[o.dest] = True if o.kind == FLAG else v
    return out


class _Unsure(Exception):
    """The argv is not one the fast parser reads exactly as click would."""


def parse_options(args: list[str], table: tuple[Opt, ...],
                  interspersed: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Parse the options of ``table`` in ``args`` as click does.

    Returns the options' values (defaults filled in) and the positional arguments.
    Without ``interspersed`` (a group's line, or ``run``'s IMAGE COMMAND...) the first
    argument that is not an option ends the options: it and all after it are returned;
    with it (``build PATH``) options may follow positional arguments.  ``--`` ends the
    options either way.  Raises ``_Unsure`` on an unknown option, a missing value, a
    value given to a flag or a bad integer.
    """
    names: dict[str, tuple[Opt, bool]] = {}
    for o in table:
        for n in o.names:
            names[n] = (o, True)
        for n in o.off:
            names[n] = (o, False)
    values: dict[str, Any] = {o.dest: o.initial() for o in table}
    positional: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            break
        if arg[:1] != "-" or len(arg) == 1:
            if not interspersed:
                rest.insert(0, arg)
                break
            positional.append(arg)
            continue
        name, eq, explicit = arg.partition("=")
        hit = names.get(name) if (len(name) > 2 and name[:2] == "--") else None
        if hit is not None:
            o, on = hit
            if o.takes_value:
                if eq:
                    value = explicit
                elif rest:
                    value = rest.pop(0)
                else:
                    raise _Unsure(arg)
                _store(values, o, value)
            elif eq:
                raise _Unsure(arg)
            else:
                values[o.dest] = on
            continue
        if arg[:2] == "--":
            raise _Unsure(arg)
        for i in range(1, len(arg)):  # clustered short options: -it, -dp80:80, -tname
            hit = names.get("-" + arg[i])
            if hit is None:
                raise _Unsure(arg)
            o, on = hit
            if not o.takes_value:
                values[o.dest] = on
                continue
            if i + 1 < len(arg):
                value = arg[i + 1:]
            elif rest:
                value = rest.pop(0)
            else:
                raise _Unsure(arg)
            _store(values, o, value)
            break
    for o in table:  # like click, convert only the value that won
        if o.type is int and isinstance(values[o.dest], str):
            try:
                values[o.dest] = int(values[o.dest])
            except ValueError:
                raise _Unsure(values[o.dest]) from None
    return values, positional + rest


def _store(values: dict[str, Any], o: Opt, value: str) -> None:
    if o.kind == MULTIPLE:
        values[o.dest] = (*values[o.dest], value)
    else:
        values[o.dest] = value


class FastCall:
    """``pallet [--root R] [--runtime X] [-D] run|create|build ...`` read without click.

    ``command`` is the command's name; ``params`` its keyword arguments (IMAGE and
    COMMAND of run and create, build's PATH included).
    """

    __slots__ = ("command", "debug", "params", "root", "runtime")

    def __init__(self, command: str, root: str | None, runtime: str | None, debug: bool,
                 params: dict[str, Any]) -> None:
        self.command = command
        self.root = root
        self.runtime = runtime
        self.debug = debug
        self.params = params

    def __repr__(self) -> str:
        return f"FastCall({self.command}, root={self.root!r}, runtime={self.runtime!r}, params={self.params!r})"


def read_command_line(args: list[str], environ: Mapping[str, str] | None, group: str,
                      tables: dict[str, tuple[tuple[Opt, ...], bool]]) -> tuple[FastCall, list[str]] | None:
    """``pallet [GLOBAL] [GROUP] COMMAND [OPTIONS] ...`` for a COMMAND of ``tables`` (its
    options and whether they may follow positional arguments): the call, its params
    without the positional arguments, and those; None to let click parse it."""
    import os

    env = os.environ if environ is None else environ
    if env.get("_PALLET_COMPLETE"):  # click's shell completion
        return None
    try:
        glob, rest = parse_options(args, GLOBAL_OPTIONS)
        if rest[:1] == [group]:
            rest = rest[1:]
        if not rest or rest[0] not in tables:
            return None
        table, interspersed = tables[rest[0]]
        params, positional = parse_options(rest[1:], table, interspersed)
    except _Unsure:
        return None
    call = FastCall(
        command=rest[0],
        root=glob["root"] or env.get("PALLET_ROOT") or None,
        runtime=glob["runtime"] or env.get("PALLET_RUNTIME") or None,
        debug=glob["debug"],
        params=params,
    )
    return call, positional


def parse_command_line(args: list[str], environ: Mapping[str, str] | None = None) -> FastCall | None:
    """``args`` (argv without the program name) as a :class:`FastCall`, or None to let click parse it."""
    read = read_command_line(args, environ, "container", {name: (t, False) for name, t in COMMANDS.items()})
    if read is None or not read[1]:
        return None  # no IMAGE: click says so
    call, positional = read
    call.params["image"] = positional[0]
    call.params["command"] = tuple(positional[1:])
    return call
