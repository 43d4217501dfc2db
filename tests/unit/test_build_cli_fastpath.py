"""``pallet build``'s click-free parser reads every command line exactly as click does.

Generated command lines (seeded) are parsed by the fast parser and by the click
command made from the same option table: both give the same keyword arguments, or
the fast parser gives up (and click must then fail too, so its message is shown).
End to end, ``main()`` hands the same Config and arguments to the build either way,
and a fast-path build does not import click.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from pallet.cli import build_impl
from pallet.cli import main as cli_main
from pallet.cli.build import build as build_cmd
from pallet.cli.build_options import BUILD_OPTIONS, PROGRESS_CHOICES, parse_build_line
from pallet.cli.run_options import FLAG, MULTIPLE, SWITCH, Opt, _Unsure, parse_options
from tests.support.cli import MAIN_PROBE, run_python

VALUES = ["x", "", "-x", "--no-cache", "a=b=c", "img:1", "=", "--", "-", "K=V", ".", "plain"]
POSITIONALS = [".", "-", "ctx", "/tmp/ctx.tar", "", "--x"]


def click_params(argv: list[str]) -> dict[str, Any] | None:
    try:
        ctx = build_cmd.make_context("build", list(argv))
    except (click.ClickException, click.exceptions.Exit):  # an error, or --help shown
        return None
    return dict(ctx.params)


def fast_params(argv: list[str]) -> dict[str, Any] | None:
    try:
        params, positional = parse_options(argv, BUILD_OPTIONS, interspersed=True)
    except _Unsure:
        return None
    if len(positional) != 1 or params["progress"] not in PROGRESS_CHOICES:
        return None
    return {**params, "context": positional[0]}


def _tokens(o: Opt, rng: random.Random) -> list[str]:
    if o.kind == SWITCH:
        return [rng.choice(o.names + o.off)]
    name = rng.choice(o.names)
    if o.kind == FLAG:
        return [name]
    v = rng.choice(VALUES + list(PROGRESS_CHOICES) if o.dest == "progress" else VALUES)
    if name.startswith("--"):
        return [f"{name}={v}"] if rng.random() < 0.4 else [name, v]
    return [name + v] if (v and rng.random() < 0.4) else [name, v]


def generate(rng: random.Random, broken: bool) -> list[str]:
    argv: list[str] = []
    n_pos = 1 if rng.random() < 0.85 else rng.choice([0, 2])
    items: list[list[str]] = [_tokens(rng.choice(BUILD_OPTIONS), rng) for _ in range(rng.randint(0, 6))]
    if rng.random() < 0.2:
        items.append(["-q" + rng.choice(["", "t", "f"]) + rng.choice(["", "x"])])  # clustered: -q, -qtx, -qf
    for _ in range(n_pos):
        items.insert(rng.randint(0, len(items)), [rng.choice(POSITIONALS)])  # interspersed PATH
    for it in items:
        argv += it
    if rng.random() < 0.1:
        argv[len(argv) - 1:len(argv) - 1] = ["--"]
    if broken:
        bad = rng.choice([["--bogus"], ["-Z"], ["-qZ"], ["--no-cache=1"], ["--rm=x"], ["-h"], ["--help"],
                          ["--progress", "fancy"], ["---t"], ["--=x"]])
        spot = rng.randint(0, len(argv))
        argv[spot:spot] = bad
    if rng.random() < 0.05:
        argv.append(rng.choice(["-t", "--file", "--build-arg"]))  # a value option without its value
    return argv


@pytest.mark.parametrize("seed", range(6))
def test_fast_parser_agrees_with_click(seed: int) -> None:
    rng = random.Random(f"build-{seed}")
    agreed = fell_back = 0
    for i in range(200):
        argv = generate(rng, broken=i % 5 == 4)
        want = click_params(argv)
        got = fast_params(argv)
        assert got == want, argv
        if got is None:
            fell_back += 1
        else:
            agreed += 1
    assert agreed > 60 and fell_back > 20  # the generator exercises both sides


@pytest.mark.parametrize(("argv", "expected"), [
    ([".", "-t", "a:1", "-t", "b"], {"context": ".", "tags": ("a:1", "b")}),
    (["-qt", "x", "."], {"quiet": True, "tags": ("x",)}),
    (["-tx", "-fDockerfile.dev", "ctx"], {"tags": ("x",), "file": "Dockerfile.dev", "context": "ctx"}),
    (["-f", "-", "."], {"file": "-"}),
    (["-"], {"context": "-"}),
    (["--", "-t"], {"context": "-t", "tags": ()}),
    (["--build-arg", "A=1", "--build-arg=B", ".", "--no-cache"], {"build_args": ("A=1", "B"), "no_cache": True}),
    (["--no-rm", ".", "--rm"], {"rm": True}),
    (["--no-rm", "."], {"rm": False}),
    (["--progress=plain", "--target", "t", "."], {"progress": "plain", "target": "t"}),
    (["--tag", "--no-cache", "."], {"tags": ("--no-cache",), "no_cache": False}),
])
def test_docker_syntax_examples(argv: list[str], expected: dict[str, Any]) -> None:
    got = fast_params(argv)
    assert got is not None and got == click_params(argv)
    for k, v in expected.items():
        assert got[k] == v, k


@pytest.mark.parametrize("args", [
    ["build"],
    ["build", "a", "b"],
    ["build", "--help", "."],
    ["build", "-h", "."],
    ["build", ".", "--progress", "fancy"],
    ["build", ".", "-t"],
    ["build", "--no-cache=1", "."],
    ["image", "build"],
    ["image", "ls"],
    ["builder", "prune"],
    ["--help", "build", "."],
    ["--bogus", "build", "."],
    ["ps", "build"],
    ["run", "build"],
])
def test_falls_back_to_click(args: list[str]) -> None:
    assert parse_build_line(args, environ={}) is None


def test_global_options_and_group_form() -> None:
    fast = parse_build_line(["--root", "/r", "-D", "image", "build", "-t", "x", "."], environ={})
    assert fast is not None and (fast.command, fast.root, fast.debug) == ("build", "/r", True)
    assert fast.params["context"] == "." and fast.params["tags"] == ("x",)
    fast = parse_build_line(["build", "."], environ={"PALLET_ROOT": "/e", "PALLET_RUNTIME": "runc"})
    assert fast is not None and (fast.root, fast.runtime) == ("/e", "runc")
    assert parse_build_line(["build", "."], environ={"_PALLET_COMPLETE": "bash_complete"}) is None


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """The build's body (both paths) replaced by a recorder."""
    calls: list[tuple[Any, dict[str, Any]]] = []

    def fn(config: Any, **kw: Any) -> int:
        calls.append((config, kw))
        return 5

    for mod in (build_impl, sys.modules["pallet.cli.build"]):
        monkeypatch.setattr(mod, "build_image", fn)
    for k in ("PALLET_ROOT", "PALLET_RUNTIME", "PALLET_RUN_ROOT", "_PALLET_COMPLETE"):
        monkeypatch.delenv(k, raising=False)
    return calls


def _main(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        cli_main.main(args)
    return int(e.value.code or 0)


def test_main_gives_the_same_call_either_way(recorded: list[tuple[Any, dict[str, Any]]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random("main")
    compared = 0
    for i in range(50):
        glob = rng.choice([[], ["--root", f"/tmp/r{i}"], ["-D", "--runtime=runc"]])
        args = [*glob, *rng.choice([["build"], ["image", "build"]]), *generate(rng, broken=False)]
        monkeypatch.setattr("pallet.cli.build_options.parse_build_line", parse_build_line)
        if parse_build_line(args) is None:
            continue
        recorded.clear()
        assert _main(args) == 5
        monkeypatch.setattr("pallet.cli.build_options.parse_build_line", lambda a, environ=None: None)
        assert _main(args) == 5, args
        assert recorded[0] == recorded[1], args
        compared += 1
    assert compared > 25


def test_options_help_and_order_come_from_the_table() -> None:
    params = [p for p in build_cmd.params if isinstance(p, click.Option)]
    assert [p.name for p in params] == [o.dest for o in BUILD_OPTIONS]
    for p, o in zip(params, BUILD_OPTIONS, strict=True):
        assert tuple(p.opts) == o.names and tuple(p.secondary_opts) == o.off and p.help == o.help
        assert p.multiple == (o.kind == MULTIPLE)


def test_a_build_error_exits_1_without_importing_click(tmp_path: Path) -> None:
    probe = MAIN_PROBE
    root, missing = str(tmp_path / "root"), str(tmp_path / "nope")
    want = f'Error: unable to prepare context: path "{missing}" not found\n'
    r = run_python("-c", probe, "--root", root, "build", "-t", "x:1", missing)
    assert (r.stdout.split(), r.stderr) == (["1", "False"], want), r
    # the same through click when the fast parser gives up (here: an option after --)
    r = run_python("-c", probe, "--root", root, "build", "-q", missing, "--", "-x")
    assert r.stdout.split() == ["125", "True"], r
    assert "unexpected extra argument" in r.stderr
    r = run_python("-c", probe, "--root", root, "build", "--force-rm", missing, "--progress", "plain")
    assert (r.stdout.split(), r.stderr) == (["1", "False"], want), r
