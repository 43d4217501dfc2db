"""The image-config side of Dockerfile instructions (pure): each metadata instruction gives a new
container config and the history comment Docker's classic builder records for it."""

from __future__ import annotations

import re

from pallet.build.lex import expand_word, expand_words
from pallet.build.parser import BuildError, Instruction
from pallet.oci.image import ContainerConfig, Healthcheck
from pallet.oci.record import replace

DEFAULT_SHELL = ("/bin/sh", "-c")

_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """Go's ``%q`` of a string (strconv.Quote)."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _ESC:
            out.append(_ESC[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def go_quote_rune(n: int) -> str:
    ch = chr(n)
    if ch in ("'", "\\"):
        return "'\\" + ch + "'"
    if ch in _ESC:
        return "'" + _ESC[ch] + "'"
    if ch.isprintable():
        return "'" + ch + "'"
    if n < 0x80:
        return f"'\\x{n:02x}'"
    return f"'\\u{n:04x}'"


def go_quote_list(items: tuple[str, ...] | list[str] | None) -> str:
    return "[" + " ".join(go_quote(x) for x in items or ()) + "]"


def go_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + " ".join(items) + "]"


# patterns compiled on first use (re keeps them): most builds need neither
_DUR = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)"
_UNIT = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    s = text
    neg = s.startswith("-")
    s = s.lstrip("+-")
    if s == "0":
        return 0
    pos, total = 0, 0.0
    if not s:
        raise ValueError(text)
    while pos < len(s):
        m = re.compile(_DUR).match(s, pos)
        if not m:
            raise ValueError(text)
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return -int(total) if neg else int(total)


def format_duration(ns: int) -> str:
    """Go's Duration.String()."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return sign + _frac(ns, size) + unit
    h, rem = divmod(ns, 3600 * 10**9)
    m, rem = divmod(rem, 60 * 10**9)
    sec = _frac(rem, 10**9) + "s"
    if h:
        return f"{sign}{h}h{m}m{sec}"
    if m:
        return f"{sign}{m}m{sec}"
    return sign + sec


def _frac(n: int, unit: int) -> str:
    whole, rem = divmod(n, unit)
    if not rem:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{rem:0{digits}d}".rstrip("0")


def healthcheck_comment(hc: Healthcheck) -> str:
    parts = [
        go_quote_list(hc.test),
        go_quote(format_duration(hc.interval)),
        go_quote(format_duration(hc.timeout)),
        go_quote(format_duration(hc.start_period)),
        go_quote_rune(hc.retries),
    ]
    if hc.start_interval:
        # Docker 25 and later record StartInterval (always); 20.10 has no such field
        parts.insert(4, go_quote(format_duration(hc.start_interval)))
    return "HEALTHCHECK &{" + " ".join(parts) + "}"


def shell_of(cfg: ContainerConfig) -> tuple[str, ...]:
    return tuple(cfg.shell) or DEFAULT_SHELL


def command_line(ins: Instruction, cfg: ContainerConfig) -> list[str]:
    """CMD/ENTRYPOINT/RUN arguments: exec form as is, shell form through the stage's shell."""
    if ins.json:
        return list(ins.args)
    if not ins.args:
        return []
    return [*shell_of(cfg), ins.args[0]]


def _pairs(ins: Instruction, env: dict[str, str], escape: str) -> list[tuple[str, str]]:
    a = list(ins.args)
    if len(a) % 2:
        raise BuildError(f"{ins.cmd} requires a value")
    out = []
    for k, v in zip(a[0::2], a[1::2], strict=True):
        key = expand_word(k, env, escape)
        if not key:
            raise BuildError(f"{ins.cmd} names can not be blank")
        out.append((key, expand_word(v, env, escape)))
    return out


def _ports(words: list[str]) -> list[str]:
    out = set()
    for w in words:
        port, _, proto = w.partition("/")
        proto = (proto or "tcp").lower()
        if ":" in port:
            port = port.rsplit(":", 1)[1]
        lo, dash, hi = port.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise BuildError(f"Invalid containerPort: {w}")
        if proto not in ("tcp", "udp", "sctp"):
            raise BuildError(f"Invalid proto: {proto}")
        for p in range(int(lo), int(hi if dash else lo) + 1):
            out.add(f"{p}/{proto}")
    return sorted(out)


_SIG = r"^(SIG)?[A-Z0-9+-]+$|^\d+$"


def apply(ins: Instruction, cfg: ContainerConfig, env: dict[str, str], escape: str,
          cmd_set: bool) -> tuple[ContainerConfig, str, bool]:
    """(new config, history comment, cmd_set) for a metadata-only instruction."""
    c = ins.cmd
    if c == "ENV":
        pairs = _pairs(ins, env, escape)
        new = cfg
        for k, v in pairs:
            new = new.with_env(k, v)
        return new, "ENV " + " ".join(f"{k}={v}" for k, v in pairs), cmd_set
    if c == "LABEL":
        pairs = _pairs(ins, env, escape)
        labels = dict(cfg.labels)
        for k, v in pairs:
            labels[k] = v
        return replace(cfg, labels=labels), "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), cmd_set
    if c == "MAINTAINER":
        return cfg, "MAINTAINER " + " ".join(ins.args), cmd_set
    if c == "EXPOSE":
        words: list[str] = []
        for a in ins.args:
            words += expand_words(a, env, escape)
        ports = _ports(words)
        merged = tuple(sorted(set(cfg.exposed_ports) | set(ports)))
        return replace(cfg, exposed_ports=merged), "EXPOSE " + " ".join(sorted(words)), cmd_set
    if c == "USER":
        user = expand_word(ins.args[0], env, escape)
        return replace(cfg, user=user), f"USER {user}", cmd_set
    if c == "VOLUME":
        vols = [expand_word(a, env, escape) for a in ins.args]
        if any(not v.strip() for v in vols):
            raise BuildError("VOLUME specified can not be an empty string")
        merged = tuple(sorted(set(cfg.volumes) | set(vols)))
        return replace(cfg, volumes=merged), "VOLUME " + go_list(vols), cmd_set
    if c == "STOPSIGNAL":
        sig = expand_word(ins.args[0], env, escape)
        if not re.match(_SIG, sig.upper()):
            raise BuildError(f"Invalid signal: {sig}")
        return replace(cfg, stop_signal=sig), f"STOPSIGNAL {sig}", cmd_set
    if c == "SHELL":
        return replace(cfg, shell=tuple(ins.args)), "SHELL " + go_list(list(ins.args)), cmd_set
    if c == "CMD":
        cmd = command_line(ins, cfg)
        return replace(cfg, cmd=tuple(cmd), args_escaped=False), "CMD " + go_quote_list(cmd), (
            cmd_set or bool(ins.args)
        )
    if c == "ENTRYPOINT":
        ep = command_line(ins, cfg)
        new = replace(cfg, entrypoint=tuple(ep), args_escaped=False)
        if not cmd_set:
            new = replace(new, cmd=None)
        return new, "ENTRYPOINT " + go_quote_list(ep), cmd_set
    if c == "HEALTHCHECK":
        hc = healthcheck(ins, cfg)
        return replace(cfg, healthcheck=hc), healthcheck_comment(hc), cmd_set
    if c == "ONBUILD":
        expr = re.sub(r"(?i)^\s*ONBUILD\s*", "", ins.original, count=1).strip()
        return replace(cfg, on_build=(*cfg.on_build, expr)), "ONBUILD " + expr, cmd_set
    raise BuildError(f"not a metadata instruction: {c}")


def healthcheck(ins: Instruction, cfg: ContainerConfig) -> Healthcheck:
    args = list(ins.args)
    kind = args[0].upper() if args else ""
    if kind == "NONE":
        if len(args) > 1 or ins.flags:
            raise BuildError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(test=("NONE",))
    if kind != "CMD":
        raise BuildError(f"Unknown type {args[0] if args else ''!r} in HEALTHCHECK (try CMD)")
    rest = args[1:]
    if not rest:
        raise BuildError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *rest) if ins.json else ("CMD-SHELL", rest[0])

    def dur(name: str) -> int:
        raw = ins.flag(name)
        if not raw:
            return 0
        try:
            v = parse_duration(raw)
        except ValueError:
            raise BuildError(f'time: invalid duration "{raw}"') from None
        if v < 0 or (0 < v < 1_000_000):
            raise BuildError(f"Interval {name!r} cannot be less than 1ms")
        return v

    retries_raw = ins.flag("retries")
    try:
        retries = int(retries_raw) if retries_raw else 0
    except ValueError:
        raise BuildError(f"invalid value for --retries: {retries_raw}") from None
    if retries < 0:
        raise BuildError("--retries cannot be negative")
    return Healthcheck(test=test, interval=dur("interval"), timeout=dur("timeout"),
                       start_period=dur("start-period"), start_interval=dur("start-interval"),
                       retries=retries)


def normalize_workdir(current: str, requested: str) -> str:
    if not requested:
        raise BuildError("cannot normalize nothing")
    if not requested.startswith("/"):
        import posixpath

        out = posixpath.normpath(posixpath.join("/", current or "/", requested))
        return "/" + out.lstrip("/")
    return requested
