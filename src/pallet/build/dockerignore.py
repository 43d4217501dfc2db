""".dockerignore patterns with Docker's rules (pure).

One pattern a line, ``#`` starts a comment line, blank lines are skipped.
Patterns are cleaned like paths (a leading ``/`` or ``./`` does not matter),
``*`` and ``?`` match within one path element, ``**`` any number of elements,
``[...]`` a character class, and ``!`` makes an exception.  Order matters: the
last pattern that matches a path (or one of its parent directories) decides.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path


class Pattern:
    __slots__ = ("dirs", "exclusion", "regex", "text")

    def __init__(self, text: str, exclusion: bool, regex: re.Pattern[str], dirs: tuple[str, ...]) -> None:
        self.text = text  # cleaned, without the "!"
        self.exclusion = exclusion  # a "!" exception
        self.regex = regex
        self.dirs = dirs  # its path elements (for "could an exception match below this dir")

    def __repr__(self) -> str:
        return f"Pattern({'!' if self.exclusion else ''}{self.text})"


def read_patterns(text: str) -> list[str]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def _clean(p: str) -> str:
    c = posixpath.normpath(p)
    if c.startswith("/"):
        c = c.lstrip("/") or "."
    return c


def _to_regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                # "**/" at the start or after "/" also matches no directory at all
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                    out.append("(.*/)?")
                elif i + 1 == n:
                    out.append(".*")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


def compile_patterns(lines: list[str]) -> list[Pattern]:
    pats = []
    for line in lines:
        excl = line.startswith("!")
        text = line[1:].strip() if excl else line
        if not text:
            from pallet.errors import InvalidArgument

            raise InvalidArgument("illegal exclusion pattern: \"!\"")
        text = _clean(text)
        pats.append(Pattern(text, excl, _to_regex(text), tuple(text.split("/"))))
    return pats


class Matcher:
    """Decides whether a context path (relative, ``/``-separated) is excluded."""

    def __init__(self, lines: list[str]) -> None:
        self.patterns = compile_patterns(lines)
        self.has_exceptions = any(p.exclusion for p in self.patterns)

    def excluded(self, rel: str) -> bool:
        if not self.patterns:
            return False
        rel = _clean(rel)
        if rel == ".":
            return False
        parents = []
        parts = rel.split("/")
        for k in range(1, len(parts)):
            parents.append("/".join(parts[:k]))
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # cannot change the outcome
            hit = bool(p.regex.match(rel)) or any(p.regex.match(q) for q in parents)
            if hit:
                matched = not p.exclusion
        return matched

    def may_include_below(self, rel_dir: str) -> bool:
        """An excluded directory must still be walked when an exception could match inside it."""
        if not self.has_exceptions:
            return False
        rel_dir = _clean(rel_dir)
        for p in self.patterns:
            if not p.exclusion:
                continue
            if "**" in p.text or p.text.startswith(rel_dir + "/") or not p.text:
                return True
            # a wildcard in a leading element could match this directory
            elems = rel_dir.split("/")
            if len(p.dirs) > len(elems) and all(
                _to_regex(pe).match(e) for pe, e in zip(p.dirs, elems, strict=False)
            ):
                return True
        return False


def load_ignore(context_dir: Path, dockerfile: Path | None) -> list[str]:
    """Patterns from ``<Dockerfile>.dockerignore`` next to the Dockerfile, else ``.dockerignore``."""
    if dockerfile is not None:
        specific = dockerfile.parent / (dockerfile.name + ".dockerignore")
        if specific.is_file():
            return read_patterns(specific.read_text(errors="replace"))
    generic = context_dir / ".dockerignore"
    if generic.is_file():
        return read_patterns(generic.read_text(errors="replace"))
    return []
