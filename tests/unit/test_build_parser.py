"""Dockerfile parsing: grammar, stages, directives, flags and file:line errors."""

from __future__ import annotations

import pytest

from pallet.build.parser import ParseError, directives, parse


def test_stages_meta_args_and_names() -> None:
    df = parse("ARG V=1\nARG B\nFROM busybox:$V AS Build\nRUN x\nFROM build\nCOPY --from=build /a /b\n")
    assert [a.args for a in df.meta_args] == [("V=1",), ("B",)]
    assert [(s.base, s.name) for s in df.stages] == [("busybox:$V", "build"), ("build", "")]
    assert df.stage_index("BUILD") == 0
    copy = df.stages[1].instructions[0]
    assert copy.cmd == "COPY" and copy.flag("from") == "build" and copy.args == ("/a", "/b")
    assert copy.line == 6


def test_continuations_comments_and_json_forms() -> None:
    df = parse('FROM x\n# comment\nRUN echo a \\\n  # inner comment\n  b\nCMD ["a", "b c"]\nENTRYPOINT run it\n')
    run, cmd, ep = df.stages[0].instructions
    assert run.args == ("echo a   b",) and run.line == 3
    assert cmd.json and cmd.args == ("a", "b c")
    assert not ep.json and ep.args == ("run it",)


def test_escape_directive() -> None:
    df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == ("dir c:\\   && echo",)
    assert directives("# syntax=docker/dockerfile:1\n# escape=\\\nFROM x\n") == {
        "syntax": "docker/dockerfile:1", "escape": "\\"}
    # a directive after a comment line is only a comment
    assert directives("# hello\n# escape=`\n") == {}


def test_heredoc() -> None:
    df = parse("FROM x\nRUN <<EOF\necho hi\necho there\nEOF\nCOPY <<conf /etc/app.conf\nk=v\nconf\n")
    run, copy = df.stages[0].instructions
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo hi\necho there\n"
    assert copy.heredocs[0].content == "k=v\n" and copy.line == 6


def test_key_value_instructions() -> None:
    df = parse('FROM x\nENV A=1 B="2 3"\nENV C 4 5\nLABEL "a b"=c\nARG X=1 Y\n')
    env1, env2, label, arg = df.stages[0].instructions
    assert env1.args == ("A", "1", "B", '"2 3"')
    assert env2.args == ("C", "4 5")
    assert label.args == ('"a b"', "c")
    assert arg.args == ("X=1", "Y")


@pytest.mark.parametrize("text,line,msg", [
    ("FROM x\nRUN a\nFOO bar\n", 3, "unknown instruction: FOO"),
    ("FROM x\nENV A\n", 2, "ENV must have two arguments"),
    ("RUN x\n", 1, "no build stage in current context"),
    ("FROM x\nCOPY --frm=a b c\n", 2, "unknown flag: frm"),
    ("FROM x\nCOPY a\n", 2, "COPY requires at least two arguments"),
    ("FROM x\nONBUILD FROM y\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM x AS 1st\n", 1, "invalid name for build stage"),
    ("FROM x y\n", 1, "FROM requires either one or three arguments"),
    ("FROM x\nSHELL /bin/bash\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM x\nRUN <<EOF\nno end\n", 2, "heredoc"),
    ("# escape=x\nFROM x\n", 1, "invalid ESCAPE"),
])
def test_errors_name_file_and_line(text: str, line: int, msg: str) -> None:
    with pytest.raises(ParseError) as ei:
        parse(text, "Dockerfile.dev")
    assert ei.value.line == line
    assert str(ei.value).startswith(f"Dockerfile.dev:{line}: ")
    assert msg in str(ei.value)
    assert ei.value.exit_code == 1


def test_empty_file() -> None:
    with pytest.raises(ParseError, match="file with no instructions"):
        parse("# only a comment\n")


def test_instructions_are_case_insensitive_and_flags_repeat() -> None:
    df = parse("from x\nrun --mount=type=cache,target=/a --mount=type=secret,id=s echo\n")
    run = df.stages[0].instructions[0]
    assert run.cmd == "RUN" and run.flags["mount"] == ("type=cache,target=/a", "type=secret,id=s")
