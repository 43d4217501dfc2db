"""Variable substitution in Dockerfile words, with the rules of Docker's shell lexer.

``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``,
``${VAR+word}``, ``${VAR:?msg}``, ``${VAR?msg}``, ``${VAR#pat}``, ``${VAR%pat}``;
single quotes are literal, double quotes expand, the escape character (``\\``
or the one the ``escape`` directive chose) escapes the next character.  Quotes
are removed from the result, as Docker does for ENV, LABEL, COPY... values.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from pallet.errors import InvalidArgument


class LexError(InvalidArgument):
    pass


_SPECIAL = set("@*#?-$!0")


class _Words:
    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, skip_unset: bool = False) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.escape = escape
        self.skip_unset = skip_unset

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        if self.i >= len(self.s):
            return ""
        ch = self.s[self.i]
        self.i += 1
        return ch

    def process(self, stop: str = "", raw_escapes: bool = False) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.peek() != "":
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.get()
            if ch in ("'", '"', "$"):
                if ch == "'":
                    tmp = self.single_quote()
                elif ch == '"':
                    tmp = self.double_quote()
                else:
                    tmp = self.dollar()
                result.append(tmp)
                if ch == "$":
                    words.add_string(tmp)
                else:
                    words.add_raw_string(tmp)
                continue
            ch = self.next()
            if ch == self.escape:
                if raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = self.next()
                if ch == "":
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def single_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if ch == "":
                raise LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            p = self.peek()
            if p == "":
                raise LexError("unexpected end of statement while looking for matching double-quote")
            if p == '"':
                self.next()
                return "".join(out)
            if p == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                nxt = self.peek()
                if nxt == "":
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        while self.peek() != "":
            ch = self.peek()
            if not out and ch.isdigit():
                while self.peek() != "" and self.peek().isdigit():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            if name not in self.env and self.skip_unset:
                return "$" + name
            return self.env.get(name, "")
        self.next()
        p = self.peek()
        if p == "":
            raise LexError("syntax error: missing '}'")
        if p in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            if name not in self.env and self.skip_unset:
                return "${" + name + "}"
            return self.env.get(name, "")
        mod = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            mod += ch
        if ch in ("+", "-", "?", "#", "%"):
            raw = ch in ("#", "%")
            if null_is_unset and raw:
                raise LexError(f"unsupported modifier ({mod}) in substitution")
            try:
                word, _ = self.process("}", raw_escapes=raw)
            except LexError:
                if self.peek() == "":
                    raise LexError("syntax error: missing '}'") from None
                raise
            is_set = name in self.env
            value = self.env.get(name, "")
            if not is_set and self.skip_unset:
                return "${" + name + mod + word + "}"
            if ch == "-":
                return word if (not is_set or (null_is_unset and value == "")) else value
            if ch == "+":
                return "" if (not is_set or (null_is_unset and value == "")) else word
            if ch == "?":
                if not is_set:
                    raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise LexError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            return _trim(value, word, prefix=ch == "#")
        if ch == "":
            raise LexError("syntax error: missing '}'")
        raise LexError(f"unsupported modifier ({mod}) in substitution")


def _trim(value: str, pattern: str, prefix: bool) -> str:
    longest = pattern.startswith("#" if prefix else "%")
    if longest:
        pattern = pattern[1:]
    rng = range(len(value), -1, -1) if longest else range(0, len(value) + 1)
    for n in rng:
        if prefix and fnmatch.fnmatchcase(value[:n], pattern):
            return value[n:]
        if not prefix and fnmatch.fnmatchcase(value[len(value) - n :], pattern):
            return value[: len(value) - n]
    return value


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word with its variables substituted and its quotes removed (Docker's ProcessWord)."""
    return _Lexer(word, env, escape).process()[0]


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """The words of ``word`` after substitution, split on unquoted blanks (ProcessWords)."""
    return _Lexer(word, env, escape).process()[1]
