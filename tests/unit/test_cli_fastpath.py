"""The click-free parser of ``run``/``create`` reads every command line exactly as click does.

Generated command lines (seeded, reproducible) are parsed by the fast parser and
by the click commands built from the same option table; both must give the same
keyword arguments, or the fast parser must give up (and then click must fail too,
so the user sees click's message).  End to end, ``main()`` must hand the same
Config and arguments to the command either way, and the common case must not
import click at all.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from pallet.cli import main as cli_main
from pallet.cli import run_impl
from pallet.cli.create import create as create_cmd
from pallet.cli.run import run as run_cmd
from pallet.cli.run_options import (
    COMMANDS,
    FLAG,
    MULTIPLE,
    SWITCH,
    VALUE,
    Opt,
    _Unsure,
    parse_command_line,
    parse_options,
)
from tests.support.cli import MAIN_PROBE, run_python

CLICK_COMMANDS = {"run": run_cmd, "create": create_cmd}

# values chosen to look like options, separators and Docker syntax
VALUES = ["x", "", "-x", "--rm", "a=b=c", "80:80", "=", "--", "-", "K=V", "/a:/b:ro", "1"]
INTS = ["0", "10", "-1", " 7 ", "1_0", "x", "", "1.5"]
WORDS = ["true", "-c", "--rm", "--", "-e", "A=1", "sh", "-it", "--name=x", "-"]


def click_params(command: str, argv: list[str]) -> dict[str, Any] | None:
    """click's keyword arguments for ``command argv``, or None when click rejects it."""
    try:
        ctx = CLICK_COMMANDS[command].make_context(command, list(argv))
    except click.ClickException:
        return None
    return dict(ctx.params)


def fast_params(command: str, argv: list[str]) -> dict[str, Any] | None:
    try:
        params, rest = parse_options(argv, COMMANDS[command])
    except _Unsure:
        return None
    if not rest:
        return None
    return {**params, "image": rest[0], "command": tuple(rest[1:])}


def _value(o: Opt, rng: random.Random) -> str:
    return rng.choice(INTS if o.type is int else VALUES)


def _option_tokens(o: Opt, rng: random.Random) -> list[str]:
    """One use of ``o`` in one of the spellings click accepts."""
    if o.kind == SWITCH:
        return [rng.choice(o.names + o.off)]
    name = rng.choice(o.names)
    if o.kind == FLAG:
        return [name]
    v = _value(o, rng)
    if name.startswith("--"):
        return [f"{name}={v}"] if rng.random() < 0.4 else [name, v]
    return [name + v] if (v and rng.random() < 0.4) else [name, v]


def _short_cluster(table: tuple[Opt, ...], rng: random.Random) -> list[str]:
    """``-dit``, ``-itp80:80``, ``-ite A=1``: flags clustered, maybe ending with a value option."""
    flags = [n for o in table if o.kind == FLAG for n in o.names if len(n) == 2]
    valued = [n for o in table if o.kind in (VALUE, MULTIPLE) and o.type is None for n in o.names if len(n) == 2]
    tok = "-" + "".join(n[1] for n in rng.sample(flags, rng.randint(1, min(3, len(flags)))))
    if rng.random() < 0.5:
        tok += rng.choice(valued)[1]
        v = rng.choice(VALUES)
        return [tok + v] if (v and rng.random() < 0.5) else [tok, v]
    return [tok]


def generate(command: str, rng: random.Random, broken: bool) -> list[str]:
    table = COMMANDS[command]
    argv: list[str] = []
    for _ in range(rng.randint(0, 6)):
        if rng.random() < 0.2:
            argv += _short_cluster(table, rng)
        else:
            argv += _option_tokens(rng.choice(table), rng)
    if rng.random() < 0.15:
        argv.append("--")
    if broken:
        spot = rng.randint(0, len(argv))
        bad = rng.choice([["--bogus"], ["-Z"], ["-dZ"], ["--rm=1"], ["--no-rm"], ["--name"], ["-e"],
                          ["--sig-proxy=0"], ["--stop-timeout", "x"], ["---rm"], ["--=x"], ["-i=1"]])
        if bad[-1] in ("--name", "-e"):
            return argv + bad  # a value option at the very end: its value is missing
        argv[spot:spot] = bad
    if rng.random() < 0.9:
        argv.append(rng.choice(["img", "busybox:latest", "-", "", "reg:5000/a/b@sha256:" + "0" * 64]))
        argv += rng.sample(WORDS, rng.randint(0, 4))
    return argv


@pytest.mark.parametrize("command", ["run", "create"])
@pytest.mark.parametrize("seed", range(8))
def test_fast_parser_agrees_with_click(command: str, seed: int) -> None:
    rng = random.Random(f"{command}-{seed}")
    agreed = fell_back = 0
    for i in range(150):
        argv = generate(command, rng, broken=i % 5 == 4)
        want = click_params(command, argv)
        got = fast_params(command, argv)
        assert got == want, argv
        if got is None:
            fell_back += 1
        else:
            agreed += 1
    assert agreed > 50 and fell_back > 10  # the generator exercises both sides


@pytest.mark.parametrize(("argv", "expected"), [
    (["-it", "img"], {"interactive": True, "tty": True}),
    (["-dit", "--rm", "img", "sh"], {"detach": True, "interactive": True, "tty": True, "auto_remove": True,
                                     "command": ("sh",)}),
    (["-p8000:80", "-p", "1:2", "--publish=3:4", "img"], {"publish": ("8000:80", "1:2", "3:4")}),
    (["-dp80:80", "img"], {"detach": True, "publish": ("80:80",)}),
    (["-e", "K=V", "--env=A=B=C", "-eX", "img"], {"env": ("K=V", "A=B=C", "X")}),
    (["-e=X", "img"], {"env": ("=X",)}),  # click keeps the '=' of a short option
    (["--name", "a", "--name=b", "img"], {"name": "b"}),
    (["--name", "--rm", "img"], {"name": "--rm", "auto_remove": False}),
    (["--no-sig-proxy", "img"], {"sig_proxy": False}),
    (["--no-sig-proxy", "--sig-proxy", "img"], {"sig_proxy": True}),
    (["-a", "stdout", "-a", "stderr", "img"], {"attach": ("stdout", "stderr")}),
    (["--stop-timeout", "-1", "img"], {"stop_timeout": -1}),
    (["--net", "none", "img"], {"network": "none"}),
    (["--", "img", "--rm"], {"image": "img", "command": ("--rm",), "auto_remove": False}),
    (["img", "--", "-d"], {"command": ("--", "-d"), "detach": False}),
    (["img", "-d", "--rm"], {"command": ("-d", "--rm"), "detach": False, "auto_remove": False}),
    (["-h", "box", "-m", "64m", "-c", "512", "img"], {"hostname": "box", "memory": "64m", "cpu_shares": "512"}),
])
def test_docker_syntax_examples(argv: list[str], expected: dict[str, Any]) -> None:
    got = fast_params("run", argv)
    assert got is not None
    assert got == click_params("run", argv)
    for k, v in expected.items():
        assert got[k] == v, k


@pytest.mark.parametrize("args", [
    ["run", "--help"],
    ["run", "--bogus", "img"],
    ["run", "--name"],
    ["run", "-e"],
    ["run", "--rm=1", "img"],
    ["run", "--stop-timeout", "x", "img"],
    ["run", "-itZ", "img"],
    ["run"],
    ["run", "--rm"],
    ["create", "-d", "img"],  # -d is run's only
    ["create", "--sig-proxy", "img"],
    ["ps"],
    ["container", "ls"],
    ["container", "--help"],
    ["container"],
    [],
    ["--help"],
    ["-h"],
    ["-v", "run", "img"],
    ["--version"],
    ["--root"],
    ["--bogus", "run", "img"],
    ["run-x", "img"],
    ["image", "run", "img"],
])
def test_falls_back_to_click(args: list[str]) -> None:
    assert parse_command_line(args, environ={}) is None


def test_shell_completion_goes_to_click() -> None:
    assert parse_command_line(["run", "img"], environ={}) is not None
    assert parse_command_line(["run", "img"], environ={"_PALLET_COMPLETE": "bash_complete"}) is None


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, dict[str, Any]]]:
    """Replace the bodies of run and create (both paths) by a recorder."""
    calls: list[tuple[str, Any, dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def fn(config: Any, **kw: Any) -> int:
            calls.append((name, config, kw))
            return 7

        return fn

    for mod in (run_impl, sys.modules["pallet.cli.run"]):
        monkeypatch.setattr(mod, "run_container", recorder("run"), raising=False)
    for mod in (run_impl, sys.modules["pallet.cli.create"]):
        monkeypatch.setattr(mod, "create_container", recorder("create"), raising=False)
    return calls


def _main(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        cli_main.main(args)
    return int(e.value.code or 0)


@pytest.mark.parametrize("args", [
    ["run", "img"],
    ["--root", "/tmp/r1", "run", "--rm", "--network", "none", "img", "true"],
    ["--root=/tmp/r2", "--runtime", "runc", "-D", "container", "run", "-dit", "img", "sh"],
    ["--debug", "--runtime=crun", "create", "--name", "c1", "-e", "A=1", "img"],
    ["container", "create", "--rm", "-v", "/a:/b", "img", "echo", "--rm"],
    ["-D", "run", "--stop-timeout=5", "-p8000:80", "--", "img"],
])
@pytest.mark.parametrize("env", [{}, {"PALLET_ROOT": "/tmp/envroot", "PALLET_RUNTIME": "runc"}])
def test_main_gives_the_same_call_either_way(args: list[str], env: dict[str, str],
                                             recorded: list[tuple[str, Any, dict[str, Any]]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("PALLET_ROOT", "PALLET_RUNTIME", "PALLET_RUN_ROOT", "_PALLET_COMPLETE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert parse_command_line(args) is not None
    assert _main(args) == 7
    monkeypatch.setattr("pallet.cli.run_options.parse_command_line", lambda a, environ=None: None)
    assert _main(args) == 7
    (n1, cfg1, kw1), (n2, cfg2, kw2) = recorded
    assert (n1, cfg1, kw1) == (n2, cfg2, kw2)


def test_error_mapping_is_shared(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pallet.errors import ImageNotFound

    def boom(config: Any, **kw: Any) -> int:
        raise ImageNotFound("nosuch:img")

    monkeypatch.setattr(run_impl, "run_container", boom)
    monkeypatch.setattr(sys.modules["pallet.cli.run"], "run_container", boom)
    fast = _main(["run", "nosuch:img"])
    fast_err = capsys.readouterr().err
    monkeypatch.setattr("pallet.cli.run_options.parse_command_line", lambda a, environ=None: None)
    slow = _main(["run", "nosuch:img"])
    assert (fast, fast_err) == (slow, capsys.readouterr().err) == (125, "Error: No such image: nosuch:img\n")


def test_options_help_and_order_come_from_the_table() -> None:
    for name, table in COMMANDS.items():
        params = [p for p in CLICK_COMMANDS[name].params if isinstance(p, click.Option)]
        assert [p.name for p in params] == [o.dest for o in table]
        for p, o in zip(params, table, strict=True):
            assert tuple(p.opts) == o.names and tuple(p.secondary_opts) == o.off and p.help == o.help


def test_unknown_image_exits_125_without_importing_click(tmp_path: Path) -> None:
    probe = MAIN_PROBE
    root = str(tmp_path / "root")
    r = run_python("-c", probe, "--root", root, "run", "--rm", "--network", "none", "nosuch:img", "true")
    assert r.stdout.split() == ["125", "False"], r
    assert r.stderr == "Error: No such image: nosuch:img\n"
    # and the same through click when the fast parser gives up (an option it does not know)
    r = run_python("-c", probe, "--root", root, "run", "--bogus", "nosuch:img")
    assert r.stdout.split() == ["125", "True"], r
    assert r.stderr.startswith("Error: No such option '--bogus'")


def test_python_m_pallet_run_imports_no_click(tmp_path: Path) -> None:
    r = run_python("-X", "importtime", "-m", "pallet", "--root", str(tmp_path / "root"), "run", "--rm", "-it",
                    "nosuch:img")
    assert r.returncode == 125
    lines = r.stderr.splitlines()
    assert lines[-1] == "Error: No such image: nosuch:img"
    imported = {ln.rsplit("|", 1)[1].strip() for ln in lines if ln.startswith("import time:")}
    assert "pallet.cli.run_impl" in imported
    assert not {m for m in imported if m == "click" or m.startswith("click.")}


def test_generated_command_lines_reach_the_same_call(recorded: list[tuple[str, Any, dict[str, Any]]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("PALLET_ROOT", "PALLET_RUNTIME", "PALLET_RUN_ROOT", "_PALLET_COMPLETE"):
        monkeypatch.delenv(k, raising=False)
    rng = random.Random("main")
    fast_parse = parse_command_line
    compared = 0
    for i in range(60):
        glob: list[str] = []
        for _ in range(rng.randint(0, 3)):
            glob += rng.choice([["--root", f"/tmp/r{i}"], [f"--root=/tmp/q{i}"], ["--runtime", "runc"],
                                ["--runtime=crun"], ["-D"], ["--debug"]])
        command = rng.choice(["run", "create"])
        args = [*glob, *rng.choice([[command], ["container", command]]), *generate(command, rng, broken=False)]
        monkeypatch.setattr("pallet.cli.run_options.parse_command_line", fast_parse)
        if fast_parse(args) is None:
            continue
        recorded.clear()
        assert _main(args) == 7
        monkeypatch.setattr("pallet.cli.run_options.parse_command_line", lambda a, environ=None: None)
        assert _main(args) == 7, args
        assert recorded[0] == recorded[1], args
        compared += 1
    assert compared > 30


@pytest.mark.parametrize(("thread", "torn_down"), [(False, False), (True, True)])
def test_fast_path_skips_the_interpreter_teardown(thread: bool, torn_down: bool) -> None:
    """As before: os._exit after a command unless a thread or an exit handler is left."""
    probe = (
        "import sys, threading\n"
        "class Witness:\n"
        "    def __del__(self):\n"
        "        sys.stdout.write('teardown\\n')\n"
        "witness = Witness()\n"
        "import pallet.cli.run_impl as impl\n"
        "def fake(config, **kw):\n"
        f"    if {thread}:\n"
        "        threading.Thread(target=lambda: None).start()\n"
        "        threading.Thread(target=__import__('time').sleep, args=(0.2,)).start()\n"
        "    sys.stdout.write('ran\\n')\n"
        "    return 3\n"
        "impl.run_container = fake\n"
        "sys.argv = ['pallet', 'run', '--rm', 'img']\n"
        "from pallet.cli.main import main\n"
        "main()\n"
    )
    r = run_python("-c", probe)
    assert r.returncode == 3, r
    assert r.stdout.split() == (["ran", "teardown"] if torn_down else ["ran"]), r


def test_the_fast_path_modules_stay_lean() -> None:
    """The modules run's command line goes through import no click, typing or dataclasses."""
    r = run_python("-c", "import sys, pallet.cli.main, pallet.cli.run_options, pallet.cli.run_impl; "
                          "print(sorted(m for m in ('click', 'typing', 'dataclasses', 'threading') "
                          "if m in sys.modules))")
    assert r.stdout.strip() == "[]", r


def test_no_layer_below_the_cli_imports_click() -> None:
    """The engine and everything under it never bring click onto the run path."""
    import re

    src = Path(cli_main.__file__).resolve().parents[1]
    uses = re.compile(r"^\s*(import click|from click\b)", re.M)
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if p.parts[len(src.parts)] not in ("cli", "api") and uses.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


@pytest.mark.parametrize("raised", [
    "pallet.errors.ImageNotFound('nosuch:img')",
    "pallet.errors.CommandNotFound('nope')",
    "OSError(2, 'No such file or directory', '/x')",
    "BrokenPipeError(32, 'Broken pipe')",
    "KeyboardInterrupt()",
    "EOFError()",
])
def test_exceptions_end_the_same_way_on_both_paths(raised: str) -> None:
    """Exit code and stderr of each exception the command may raise, with and without click."""
    def probe(force_click: bool) -> str:
        return (
            "import sys, pallet.errors\n"
            "import pallet.cli.run_impl as impl, pallet.cli.run_options as opts\n"
            f"def boom(config, **kw): raise {raised}\n"
            "impl.run_container = boom\n"
            + ("opts.parse_command_line = lambda a, environ=None: None\n" if force_click else "")
            + "sys.argv = ['pallet', 'run', 'img']\n"
            "from pallet.cli.main import main\n"
            "main()\n"
        )

    fast, slow = run_python("-c", probe(False)), run_python("-c", probe(True))
    assert (fast.returncode, fast.stderr) == (slow.returncode, slow.stderr), (fast, slow)
    assert "Traceback" not in fast.stderr
