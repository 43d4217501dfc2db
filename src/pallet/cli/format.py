"""Docker's ``--format``: a subset of Go templates, table layout and human-readable figures.

``render(template, rows)`` formats a list of dicts: ``table`` prefix (header
row from the field names, columns aligned like Docker's tabwriter),
``{{.Field}}``, ``{{.A.B}}``, ``{{json .}}``, ``{{json .Field}}``, the
functions ``join``, ``lower``, ``upper``, ``title``, ``len``, ``index``,
``println``, ``{{range .X}}...{{end}}``, ``{{if .X}}...{{else}}...{{end}}``,
and the escapes ``\\t`` and ``\\n``.  Values print as Go prints them
(``[a b]`` for lists, ``map[k:v]`` for maps, ``<nil>`` for None).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pallet.engine.units import human_duration, human_size
from pallet.errors import InvalidArgument

__all__ = ["execute", "human_duration", "human_size", "parse_time", "render", "since"]

# -- figures --------------------------------------------------------------------


def parse_time(ts: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (nanoseconds allowed)."""
    if not ts:
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", ts)
    if not m:
        return None
    import calendar

    base = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = float("0" + m.group(2)) if m.group(2) else 0.0
    tz = m.group(3)
    off = 0
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        off = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return base + frac - off


def since(ts: str, now: float | None = None) -> str:
    t = parse_time(ts)
    if t is None:
        return "N/A"
    return human_duration((now if now is not None else time.time()) - t) + " ago"


# -- Go values --------------------------------------------------------------------


def go_str(v: Any) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_str(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# -- template ---------------------------------------------------------------------

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


@dataclass
class _Node:
    kind: str  # text | expr | range | if
    text: str = ""
    body: list[_Node] = field(default_factory=list)
    other: list[_Node] = field(default_factory=list)


def _parse(tpl: str) -> list[_Node]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(tpl):
        if m.start() > pos:
            tokens.append(("text", tpl[pos : m.start()]))
        tokens.append(("action", m.group(1)))
        pos = m.end()
    if pos < len(tpl):
        tokens.append(("text", tpl[pos:]))
    for kind, text in tokens:
        if kind == "text" and "{{" in text:
            raise InvalidArgument("template: unclosed action")
    root: list[_Node] = []
    stack: list[tuple[_Node | None, list[_Node]]] = [(None, root)]
    for kind, text in tokens:
        cur = stack[-1][1]
        if kind == "text":
            cur.append(_Node("text", text))
            continue
        word = text.split(None, 1)[0] if text else ""
        if word in ("range", "if"):
            node = _Node(word, text[len(word) :].strip())
            cur.append(node)
            stack.append((node, node.body))
        elif word == "else":
            owner = stack[-1][0]
            if owner is None or owner.kind != "if":
                raise InvalidArgument("template: unexpected {{else}}")
            stack[-1] = (owner, owner.other)
        elif word == "end":
            if len(stack) == 1:
                raise InvalidArgument("template: unexpected {{end}}")
            stack.pop()
        elif text.startswith("/*"):
            continue
        else:
            cur.append(_Node("expr", text))
    if len(stack) != 1:
        raise InvalidArgument("template: unexpected EOF (missing {{end}})")
    return root


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\(|\)|\||[^\s()|]+')


def _field(obj: Any, path: str) -> Any:
    if path == ".":
        return obj
    cur = obj
    for part in path.lstrip(".").split("."):
        if not part:
            continue
        if isinstance(cur, dict):
            if part not in cur:
                raise InvalidArgument(f"template: can't evaluate field {part}")
            cur = cur[part]
        elif cur is None:
            return None
        else:
            if not hasattr(cur, part):
                raise InvalidArgument(f"template: can't evaluate field {part}")
            cur = getattr(cur, part)
    return cur


def _to_json(v: Any) -> str:
    """As Go's encoding/json writes it: compact, UTF-8, with <, > and & escaped."""
    s = json.dumps(v, separators=(",", ":"), default=str, ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_FUNCS: dict[str, Any] = {
    "json": _to_json,
    "join": lambda v, sep: sep.join(go_str(x) for x in (v or [])),
    "lower": lambda v: go_str(v).lower(),
    "upper": lambda v: go_str(v).upper(),
    "title": lambda v: go_str(v).title(),
    "len": lambda v: len(v or ()),
    "index": lambda v, *keys: _index(v, keys),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "printf": lambda f, *a: _printf(f, a),
    "split": lambda s, sep: go_str(s).split(sep),
    "truncate": lambda s, n: go_str(s)[: int(n)],
    "pad": lambda s, a, b: " " * int(a) + go_str(s) + " " * int(b),
}


def _index(v: Any, keys: tuple[Any, ...]) -> Any:
    for k in keys:
        if v is None:
            return None
        v = v.get(k) if isinstance(v, dict) else v[int(k)]
    return v


def _printf(fmt: str, args: tuple[Any, ...]) -> str:
    py = re.sub(r"%v", "%s", fmt)
    return py % tuple(go_str(a) if isinstance(a, (list, dict, bool)) or a is None else a for a in args)


def _eval_tokens(tokens: list[str], dot: Any) -> Any:
    # pipelines: a | b c  ->  b(c..., a)
    stages: list[list[str]] = [[]]
    depth = 0
    for t in tokens:
        if t == "|" and depth == 0:
            stages.append([])
            continue
        depth += t == "("
        depth -= t == ")"
        stages[-1].append(t)
    value: Any = _NOVALUE
    for st in stages:
        value = _eval_cmd(st, dot, value)
    return value


class _NoValue:
    pass


_NOVALUE = _NoValue()


def _eval_arg(tokens: list[str], i: int, dot: Any) -> tuple[Any, int]:
    t = tokens[i]
    if t == "(":
        depth, j = 1, i + 1
        while j < len(tokens) and depth:
            depth += tokens[j] == "("
            depth -= tokens[j] == ")"
            j += 1
        return _eval_tokens(tokens[i + 1 : j - 1], dot), j
    if t.startswith('"'):
        return json.loads(t), i + 1
    if t.startswith("`"):
        return t[1:-1], i + 1
    if t.startswith("."):
        return _field(dot, t), i + 1
    if re.fullmatch(r"-?\d+", t):
        return int(t), i + 1
    if t in ("true", "false"):
        return t == "true", i + 1
    if t in _FUNCS:
        return _FUNCS[t](), i + 1
    raise InvalidArgument(f'template: function "{t}" not defined')


def _eval_cmd(tokens: list[str], dot: Any, piped: Any) -> Any:
    if not tokens:
        raise InvalidArgument("template: missing value for command")
    head = tokens[0]
    if head in _FUNCS:
        args = []
        i = 1
        while i < len(tokens):
            v, i = _eval_arg(tokens, i, dot)
            args.append(v)
        if piped is not _NOVALUE:
            args.append(piped)
        try:
            return _FUNCS[head](*args)
        except (TypeError, IndexError, KeyError, ValueError) as e:
            raise InvalidArgument(f"template: error calling {head}: {e}") from None
    v, i = _eval_arg(tokens, 0, dot)
    if i != len(tokens):
        raise InvalidArgument(f"template: can't give argument to non-function {head}")
    return v


def _exec(nodes: list[_Node], dot: Any, out: list[str]) -> None:
    for n in nodes:
        if n.kind == "text":
            out.append(n.text)
        elif n.kind == "expr":
            v = _eval_tokens(_TOKEN.findall(n.text), dot)
            out.append(v if isinstance(v, str) else go_str(v))
        elif n.kind == "if":
            v = _eval_tokens(_TOKEN.findall(n.text), dot)
            _exec(n.body if _truthy(v) else n.other, dot, out)
        elif n.kind == "range":
            v = _eval_tokens(_TOKEN.findall(n.text), dot)
            items = list(v.keys()) if isinstance(v, dict) else list(v or [])
            for item in items:
                _exec(n.body, v[item] if isinstance(v, dict) else item, out)


def _truthy(v: Any) -> bool:
    return bool(v) and v is not _NOVALUE


def _unescape(tpl: str) -> str:
    return tpl.replace("\\t", "\t").replace("\\n", "\n")


def execute(template: str, obj: Any) -> str:
    """One object through a template (``inspect -f``)."""
    return "".join(_run(_parse(_unescape(template)), obj))


def _run(nodes: list[_Node], obj: Any) -> list[str]:
    out: list[str] = []
    _exec(nodes, obj, out)
    return out


def _header_of(name: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).upper()
    return {"ID": "ID", "CREATED SINCE": "CREATED", "CREATED AT": "CREATED AT"}.get(words, words)


def is_table(template: str) -> bool:
    return template.lstrip().startswith("table")


def render(template: str, rows: list[dict[str, Any]], headers: dict[str, str] | None = None) -> str:
    """Format rows with a Docker ``--format`` template; ``table`` adds a header and aligns."""
    headers = headers or {}
    table = is_table(template)
    tpl = _unescape(template.lstrip()[5:].lstrip(" ") if table else template)
    nodes = _parse(tpl)
    lines: list[str] = []
    if table:
        hdr = _ACTION.sub(lambda m: _header_for(m.group(1), headers), tpl)
        lines.append(hdr)
    for row in rows:
        lines.append("".join(_run(nodes, row)))
    text = "\n".join(lines)
    if table:
        text = tabwrite(text)
    return text + "\n" if text else ""


def _header_for(action: str, headers: dict[str, str]) -> str:
    m = re.fullmatch(r"(?:json\s+)?\.(\w+)", action.strip())
    if not m:
        return ""
    name = m.group(1)
    return headers.get(name, _header_of(name))


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Docker's tabwriter (minwidth 10, padding 3): pad every tab-separated cell but the last."""
    rows = [line.split("\t") for line in text.split("\n")]
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell))
    out = []
    for r in rows:
        cells = []
        for i, cell in enumerate(r):
            if i < len(r) - 1:
                cells.append(cell.ljust(max(widths[i] + padding, minwidth)))
            else:
                cells.append(cell)
        out.append("".join(cells).rstrip() if len(r) > 1 else r[0])
    return "\n".join(out)
