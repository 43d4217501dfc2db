"""The --format renderer and Docker's human-readable figures."""

from __future__ import annotations

import pytest

from pallet.cli.format import execute, human_duration, human_size, render, since, tabwrite
from pallet.errors import InvalidArgument

ROWS = [
    {"Repository": "busybox", "Tag": "latest", "ID": "0123456789ab", "Size": "4.26MB", "Labels": {"a": "1"}},
    {"Repository": "<none>", "Tag": "<none>", "ID": "ba9876543210", "Size": "1kB", "Labels": None},
]


def test_fields_and_escapes() -> None:
    assert render("{{.Repository}}:{{.Tag}}", ROWS) == "busybox:latest\n<none>:<none>\n"
    assert render("{{.ID}}\\t{{.Size}}", ROWS[:1]) == "0123456789ab\t4.26MB\n"


def test_table_header_and_alignment() -> None:
    out = render("table {{.Repository}}\t{{.Tag}}\t{{.ID}}", ROWS, {"ID": "IMAGE ID"})
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID"]
    assert lines[0].index("TAG") == lines[1].index("latest") == lines[2].index("<none>", 3)
    assert lines[0].index("IMAGE ID") == lines[1].index("0123456789ab")


def test_json() -> None:
    assert render("{{json .Labels}}", ROWS) == '{"a":"1"}\nnull\n'
    out = render("{{json .}}", ROWS[:1])
    assert out.startswith('{"Repository":"busybox"')
    # Go's encoding/json escapes HTML characters and keeps UTF-8
    assert render("{{json .Repository}}", ROWS[1:]) == '"\\u003cnone\\u003e"\n'
    assert execute("{{json .}}", {"a": "é&"}) == '{"a":"é\\u0026"}'


def test_go_printing_and_functions() -> None:
    obj = {"Config": {"Cmd": ["sh", "-c", "x"], "Env": None, "On": True}, "Tags": ["a:1", "b:2"]}
    assert execute("{{.Config.Cmd}}", obj) == "[sh -c x]"
    assert execute("{{.Config.Env}}", obj) == "<nil>"
    assert execute("{{.Config.On}}", obj) == "true"
    assert execute('{{join .Tags ","}}', obj) == "a:1,b:2"
    assert execute("{{range .Tags}}<{{.}}>{{end}}", obj) == "<a:1><b:2>"
    assert execute("{{if .Config.Env}}yes{{else}}no{{end}}", obj) == "no"
    assert execute('{{index .Config "Cmd"}}', obj) == "[sh -c x]"
    assert execute("{{.Tags | len}}", obj) == "2"
    assert execute("{{upper (index .Tags 0)}}", obj) == "A:1"


def test_errors_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        execute("{{.Nope}}", {"A": 1})
    with pytest.raises(InvalidArgument):
        execute("{{range .A}}", {"A": []})
    with pytest.raises(InvalidArgument):
        execute("{{frob .A}}", {"A": 1})
    with pytest.raises(InvalidArgument, match="unclosed action"):
        execute("{{.A", {"A": 1})


@pytest.mark.parametrize(
    ("n", "want"),
    [(0, "0B"), (999, "999B"), (1000, "1kB"), (4_261_318, "4.26MB"), (74_800_000, "74.8MB"), (1_234_567_890, "1.23GB")],
)
def test_human_size(n: int, want: str) -> None:
    assert human_size(n) == want


@pytest.mark.parametrize(
    ("s", "want"),
    [(0.2, "Less than a second"), (1, "1 second"), (45, "45 seconds"), (61, "About a minute"),
     (600, "10 minutes"), (3600, "About an hour"), (5 * 3600, "5 hours"), (3 * 86400, "3 days"),
     (21 * 86400, "3 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years")],
)
def test_human_duration(s: float, want: str) -> None:
    assert human_duration(s) == want


def test_since() -> None:
    assert since("2024-01-01T00:00:00.5Z", now=1704067200.5 + 120) == "2 minutes ago"
    assert since("") == "N/A"


def test_tabwrite_min_width() -> None:
    assert tabwrite("a\tb\nccc\td") == "a         b\nccc       d"
