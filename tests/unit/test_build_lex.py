"""Variable substitution against the cases of Docker's own shell-lexer test table."""

from __future__ import annotations

import pytest

from pallet.build.lex import LexError, expand_word, expand_words

ENV = {"PWD": "/home", "SHELL": "bash", "NULL": ""}

# (word, expected result or None for an error) -- Docker's envVarTest table
CASES = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", None),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", None),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hello', None),
    ('"hello\\"', None),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", None),
    ("'hello\\'", "hello\\"),
    ("'hello\\there'", "hello\\there"),
    ("'hello\\\\there'", "hello\\\\there"),
    ('"\'\'"', "''"),
    ("$.", "$."),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ('"he\\\\$PWD"', "he\\/home"),
    ("\\${}", "${}"),
    ("\\${}aaa", "${}aaa"),
    ("he\\${}", "he${}"),
    ("${}", None),
    ("${}aaa", None),
    ("he${}", None),
    ("he${hi}", "he"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("he${.}", None),
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:YYY}", None),
    ("he${XXX?}", None),
    ("he${XXX:?}", None),
    ("he${PWD?}", "he/home"),
    ("he${PWD:?}", "he/home"),
    ("he${NULL:?}", None),
    ("he${NULL?}", "he"),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ('"he\'$PWD\'"', "he'/home'"),
    ('"$PWD"', "/home"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ("'\"hello\"'", '"hello"'),
    ("'he\\$PWD'", "he\\$PWD"),
    ("he${PWD", None),
    ("he${PWD:=000}xx", None),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    ("안녕하세요", "안녕하세요"),
    ("안'녕'하세요", "안녕하세요"),
    ("안'녕하세요", None),
    ("안녕\\'하세요", "안녕'하세요"),
    ('"안\'녕\'하세요"', "안'녕'하세요"),
    # without a colon only "unset" counts (not "empty")
    ("${NULL-d}", ""),
    ("${XXX-d}", "d"),
    ("${NULL:-d}", "d"),
    ("${NULL+a}", "a"),
    ("${NULL:+a}", ""),
    ("${XXX+a}", ""),
]


@pytest.mark.parametrize("word,want", CASES)
def test_docker_table(word: str, want: str | None) -> None:
    if want is None:
        with pytest.raises(LexError):
            expand_word(word, ENV)
    else:
        assert expand_word(word, ENV) == want


def test_pattern_trimming() -> None:
    env = {"F": "archive.tar.gz"}
    assert expand_word("${F%.*}", env) == "archive.tar"
    assert expand_word("${F%%.*}", env) == "archive"
    assert expand_word("${F#*.}", env) == "tar.gz"
    assert expand_word("${F##*.}", env) == "gz"


def test_words_split_only_unquoted_substitutions() -> None:
    env = {"PORTS": "80 443/udp"}
    assert expand_words("$PORTS", env) == ["80", "443/udp"]
    assert expand_words('"$PORTS"', env) == ["80 443/udp"]
    assert expand_words("a\\ b c", env) == ["a b", "c"]


def test_backtick_escape() -> None:
    assert expand_word("C:\\path`$X", {"X": "x"}, escape="`") == "C:\\path$X"
    assert expand_word("`\\", {}, escape="`") == "\\"


def test_missing_brace_message() -> None:
    with pytest.raises(LexError, match="missing '}'"):
        expand_word("${A:-x", {})
