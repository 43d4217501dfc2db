"""Dockerfile parsing: Docker's own grammar (through the ``dockerfile`` package, which wraps
buildkit's Go parser) into typed instructions grouped by stage, with file:line errors."""

from __future__ import annotations

import re

from pallet.errors import PalletError
from pallet.oci.record import field, record

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from typing import Any

INSTRUCTIONS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)

# flags each instruction accepts (buildkit's list; unknown ones are an error as in Docker)
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"from", "chown", "chmod", "link", "parents", "exclude"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"}),
    "RUN": frozenset({"mount", "network", "security"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
}
REPEATABLE = frozenset({"mount", "exclude"})

# instructions whose arguments are subject to variable substitution (Docker's list)
EXPANDS = frozenset({
    "ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})


class BuildError(PalletError):
    """A build failed; Docker's builder exits 1."""

    exit_code = 1


class ParseError(BuildError):
    def __init__(self, filename: str, line: int, message: str) -> None:
        where = f"{filename}:{line}: " if line else f"{filename}: "
        super().__init__(where + message)
        self.filename = filename
        self.line = line
        self.detail = message


@record(frozen=True)
class Heredoc:
    name: str
    content: str
    fd: int = 0


@record(frozen=True)
class Instruction:
    cmd: str  # upper case
    args: tuple[str, ...]
    flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    json: bool = False
    original: str = ""
    line: int = 0
    heredocs: tuple[Heredoc, ...] = ()
    sub_cmd: str = ""  # ONBUILD's instruction

    def flag(self, name: str, default: str = "") -> str:
        v = self.flags.get(name)
        return v[-1] if v else default


@record(frozen=True)
class Stage:
    index: int
    base: str  # unexpanded image name
    name: str  # lower-cased "AS" name, "" when none
    platform: str
    line: int
    instructions: tuple[Instruction, ...]


@record(frozen=True)
class Dockerfile:
    filename: str
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    escape: str = "\\"
    syntax: str = ""

    def stage_index(self, name: str) -> int | None:
        low = name.lower()
        for s in self.stages:
            if s.name and s.name == low:
                return s.index
        return None


_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


def directives(text: str) -> dict[str, str]:
    """Parser directives at the top of a Dockerfile (``# escape=`` and ``# syntax=``)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _DIRECTIVE.match(line)
        if not m:
            break
        key = m.group(1).lower()
        if key in out:
            break
        out[key] = m.group(2)
    return out


def go_parse(text: str, filename: str = "Dockerfile") -> list[dict[str, Any]]:
    """buildkit's parse of a Dockerfile as plain records (JSON-able, so a build can keep them)."""
    import dockerfile

    try:
        cmds = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        line = _error_line(text)
        raise ParseError(filename, line, str(e)) from None
    return [
        {
            "cmd": str(c.cmd),
            "sub_cmd": str(c.sub_cmd or ""),
            "json": bool(c.json),
            "original": str(c.original),
            "line": int(c.start_line),
            "flags": [str(f) for f in c.flags],
            "value": [str(v) for v in c.value],
            "heredocs": [[str(h.name), str(h.content), int(h.file_descriptor)] for h in c.heredocs],
        }
        for c in cmds
    ]


def _error_line(text: str) -> int:
    import dockerfile

    lines = text.splitlines(keepends=True)
    for n in range(1, len(lines) + 1):
        try:
            dockerfile.parse_string("".join(lines[:n]))
        except dockerfile.GoParseError as e:
            if "heredoc" in str(e):
                if n < len(lines):
                    continue
                # an unterminated here-document: the line that opened it
                for k in range(n - 1, -1, -1):
                    if "<<" in lines[k]:
                        return k + 1
            return n
    return len(lines)


def parse_flags(raw: tuple[str, ...], cmd: str, filename: str, line: int) -> dict[str, tuple[str, ...]]:
    allowed = FLAGS.get(cmd, frozenset())
    out: dict[str, list[str]] = {}
    for f in raw:
        if not f.startswith("--"):
            raise ParseError(filename, line, f"invalid flag {f!r}")
        name, eq, value = f[2:].partition("=")
        if name not in allowed:
            raise ParseError(filename, line, f"unknown flag: {name}")
        if name in out and name not in REPEATABLE:
            raise ParseError(filename, line, f"Duplicate flag specified: {name}")
        out.setdefault(name, []).append(value if eq else "true")
    return {k: tuple(v) for k, v in out.items()}


def parse(text: str, filename: str = "Dockerfile", records: list[dict[str, Any]] | None = None) -> Dockerfile:
    """Parse a Dockerfile; raises :class:`ParseError` naming ``filename`` and the line.

    ``records``: :func:`go_parse`'s result for this text, when the caller kept it.
    """
    d = directives(text)
    escape = d.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise ParseError(filename, 1, f"invalid ESCAPE '{escape}'. Must be ` or \\")
    cmds = go_parse(text, filename) if records is None else records
    meta: list[Instruction] = []
    stages: list[Stage] = []
    cur: list[Instruction] | None = None
    head: tuple[str, str, str, int] | None = None

    def close() -> None:
        if head is not None and cur is not None:
            stages.append(Stage(len(stages), head[0], head[1], head[2], head[3], tuple(cur)))

    for c in cmds:
        cmd = c["cmd"].upper()
        line = c["line"]
        if cmd not in INSTRUCTIONS:
            raise ParseError(filename, line, f"unknown instruction: {cmd}")
        flags = parse_flags(tuple(c["flags"]), cmd, filename, line)
        sub = c["sub_cmd"].upper()
        if cmd == "ONBUILD":
            if sub in ("ONBUILD", "FROM", "MAINTAINER"):
                raise ParseError(filename, line, f"{sub} isn't allowed as an ONBUILD trigger")
            if sub and sub not in INSTRUCTIONS:
                raise ParseError(filename, line, f"unknown instruction: {sub}")
        ins = Instruction(
            cmd=cmd,
            args=tuple(c["value"]),
            flags=flags,
            json=c["json"],
            original=c["original"],
            line=line,
            heredocs=tuple(Heredoc(name, content, fd) for name, content, fd in c["heredocs"]),
            sub_cmd=sub,
        )
        _check_args(ins, filename)
        if cmd == "FROM":
            close()
            args = ins.args
            name = ""
            if len(args) == 3 and args[1].upper() == "AS":
                name = args[2].lower()
                if not re.fullmatch(r"[a-z][a-z0-9_.-]*", name):
                    raise ParseError(filename, line, f"invalid name for build stage: {args[2]!r}, "
                                     "name can't start with a number or contain symbols")
            elif len(args) != 1:
                raise ParseError(filename, line, "FROM requires either one or three arguments")
            head = (args[0], name, ins.flag("platform"), line)
            cur = []
            continue
        if cur is None:
            if cmd != "ARG":
                raise ParseError(filename, line, "no build stage in current context")
            meta.append(ins)
            continue
        cur.append(ins)
    close()
    if not stages:
        raise ParseError(filename, 0, "file with no instructions")
    return Dockerfile(filename, tuple(meta), tuple(stages), escape, d.get("syntax", ""))


def _check_args(ins: Instruction, filename: str) -> None:
    n = len(ins.args)
    need_one = ("ARG", "ENV", "EXPOSE", "LABEL", "MAINTAINER", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
                "ONBUILD", "HEALTHCHECK", "RUN")
    if ins.cmd in need_one and (n == 0 or (n == 1 and ins.args[0] == "" and not ins.json)):
        raise ParseError(filename, ins.line, f"{ins.cmd} requires at least one argument")
    if ins.cmd in ("COPY", "ADD") and n < 2:
        raise ParseError(filename, ins.line, f"{ins.cmd} requires at least two arguments, "
                         "but only one was provided. Destination could not be determined.")
    if ins.cmd == "SHELL" and not ins.json:
        raise ParseError(filename, ins.line, "SHELL requires the arguments to be in JSON form")
    if ins.cmd in ("STOPSIGNAL", "USER", "WORKDIR", "MAINTAINER") and n > 1:
        raise ParseError(filename, ins.line, f"{ins.cmd} requires exactly one argument")
