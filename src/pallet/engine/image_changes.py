"""``--change`` instructions (``docker import -c`` / ``commit -c``) applied to an image config.

Supported as Docker does: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER,
VOLUME, WORKDIR, STOPSIGNAL.  Pure functions, no I/O.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace

from pallet.errors import InvalidArgument
from pallet.oci.image import ContainerConfig

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL")


def _json_or_none(rest: str) -> list[str] | None:
    s = rest.strip()
    if not s.startswith("["):
        return None
    try:
        v = json.loads(s)
    except ValueError:
        return None
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def _exec_or_shell(rest: str) -> tuple[str, ...]:
    j = _json_or_none(rest)
    if j is not None:
        return tuple(j)
    return ("/bin/sh", "-c", rest.strip())


def _pairs(instr: str, rest: str) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``k=v k2="v 2"`` or the legacy ``k v with spaces``."""
    rest = rest.strip()
    if not rest:
        raise InvalidArgument(f"{instr} requires at least one argument")
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as e:
        raise InvalidArgument(f"{instr}: {e}") from None
    if "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip() and instr == "ENV":
            raise InvalidArgument(f"{instr} names can not be blank" if not key else f"{instr} {key} needs a value")
        return [(key, value.strip())]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq or not k:
            raise InvalidArgument(f"{instr}: syntax error - can't find = in {w!r}. Must be of the form: name=value")
        out.append((k, v))
    return out


def apply_change(cfg: ContainerConfig, line: str) -> ContainerConfig:
    """One Dockerfile-style instruction applied to ``cfg``."""
    line = line.strip()
    if not line:
        return cfg
    instr, _, rest = line.partition(" ")
    instr_u = instr.upper()
    if instr_u not in ALLOWED:
        raise InvalidArgument(f"{instr.lower()} is not a valid change command")
    rest = rest.strip()
    if instr_u == "CMD":
        return replace(cfg, cmd=_exec_or_shell(rest))
    if instr_u == "ENTRYPOINT":
        return replace(cfg, entrypoint=_exec_or_shell(rest))
    if instr_u == "ENV":
        for k, v in _pairs("ENV", rest):
            cfg = cfg.with_env(k, v)
        return cfg
    if instr_u == "LABEL":
        labels = dict(cfg.labels)
        labels.update(_pairs("LABEL", rest))
        return replace(cfg, labels=labels)
    if instr_u == "EXPOSE":
        ports = set(cfg.exposed_ports)
        for p in rest.split():
            port, _, proto = p.partition("/")
            proto = (proto or "tcp").lower()
            if proto not in ("tcp", "udp", "sctp"):
                raise InvalidArgument(f"invalid proto: {proto}")
            lo, _, hi = port.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise InvalidArgument(f"invalid containerPort: {port}")
            for n in range(int(lo), int(hi or lo) + 1):
                ports.add(f"{n}/{proto}")
        return replace(cfg, exposed_ports=tuple(sorted(ports)))
    if instr_u == "VOLUME":
        vols = _json_or_none(rest)
        if vols is None:
            vols = rest.split()
        if not vols:
            raise InvalidArgument("VOLUME requires at least one argument")
        return replace(cfg, volumes=tuple(sorted(set(cfg.volumes) | set(vols))))
    if instr_u == "USER":
        if not rest:
            raise InvalidArgument("USER requires exactly one argument")
        return replace(cfg, user=rest)
    if instr_u == "WORKDIR":
        if not rest:
            raise InvalidArgument("WORKDIR requires exactly one argument")
        wd = rest if rest.startswith("/") else "/" + (cfg.working_dir.strip("/") + "/" if cfg.working_dir.strip("/") else "") + rest
        return replace(cfg, working_dir=wd)
    if instr_u == "STOPSIGNAL":
        if not rest:
            raise InvalidArgument("STOPSIGNAL requires exactly one argument")
        return replace(cfg, stop_signal=rest)
    # ONBUILD
    return replace(cfg, on_build=(*cfg.on_build, rest))


def apply_changes(cfg: ContainerConfig, lines: list[str]) -> ContainerConfig:
    for line in lines:
        cfg = apply_change(cfg, line)
    return cfg
