"""The runtime's command line (runc's verbs and flags) and capability masks, parsed without root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet.oci.capabilities import CAPABILITIES, DOCKER_DEFAULT, mask
from pallet.runtime.cli import _exec_process, _parser


def test_global_flags_come_before_the_verb() -> None:
    a = _parser().parse_args(["--root", "/r", "--log", "/l", "--log-format", "json", "state", "c1"])
    assert (a.root, a.log, a.log_format, a.verb, a.id) == ("/r", "/l", "json", "state", "c1")
    with pytest.raises(SystemExit):
        _parser().parse_args(["--log-format", "yaml", "state", "c1"])


def test_create_and_run_flags() -> None:
    a = _parser().parse_args(["create", "-b", "/b", "--pid-file", "/p", "--console-socket", "/s", "c1"])
    assert (a.bundle, a.pid_file, a.console_socket, a.id) == ("/b", "/p", "/s", "c1")
    a = _parser().parse_args(["run", "-d", "--bundle", "/b", "c2"])
    assert a.detach and a.bundle == "/b" and a.id == "c2"
    assert _parser().parse_args(["run", "c3"]).bundle == "."
    with pytest.raises(SystemExit):
        _parser().parse_args(["create", "-d", "c1"])  # --detach is run's only


def test_kill_delete_list_flags() -> None:
    a = _parser().parse_args(["kill", "c1"])
    assert a.signal == "SIGTERM" and not a.all
    a = _parser().parse_args(["kill", "-a", "c1", "KILL"])
    assert a.signal == "KILL" and a.all
    assert _parser().parse_args(["delete", "-f", "c1"]).force
    a = _parser().parse_args(["list", "-f", "json"])
    assert a.format == "json"
    assert _parser().parse_args(["list", "-q"]).quiet
    with pytest.raises(SystemExit):
        _parser().parse_args([])


def test_exec_keeps_the_command_after_the_id() -> None:
    a = _parser().parse_args(["exec", "-t", "--cwd", "/tmp", "-e", "A=1", "-e", "B=2", "-u", "5:6",
                              "c1", "sh", "-c", "echo -n hi"])
    assert a.id == "c1" and a.command == ["sh", "-c", "echo -n hi"]
    assert a.tty and a.cwd == "/tmp" and a.env == ["A=1", "B=2"] and a.user == "5:6"


class _FakeRuntime:
    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle

    def state(self, cid: str) -> dict[str, object]:
        return {"id": cid, "bundle": str(self.bundle)}


def test_exec_process_from_args_inherits_the_bundle_process(tmp_path: Path) -> None:
    base = {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL"]}, "terminal": True}
    (tmp_path / "config.json").write_text(json.dumps({"process": base}))
    a = _parser().parse_args(["exec", "-e", "X=1", "-u", "7", "--cwd", "/w", "c1", "id", "-u"])
    p = _exec_process(a, _FakeRuntime(tmp_path))
    assert p["args"] == ["id", "-u"] and p["env"] == ["PATH=/bin", "X=1"]
    assert p["user"] == {"uid": 7, "gid": 0} and p["cwd"] == "/w" and p["terminal"] is False
    assert p["capabilities"] == base["capabilities"]


def test_exec_process_from_file(tmp_path: Path) -> None:
    proc = {"args": ["true"], "cwd": "/", "user": {"uid": 1, "gid": 2}}
    f = tmp_path / "process.json"
    f.write_text(json.dumps(proc))
    a = _parser().parse_args(["exec", "--process", str(f), "c1"])
    assert _exec_process(a, _FakeRuntime(tmp_path)) == proc


def test_exec_without_command_or_process_fails(tmp_path: Path) -> None:
    a = _parser().parse_args(["exec", "c1"])
    with pytest.raises(SystemExit):
        _exec_process(a, _FakeRuntime(tmp_path))


def test_capability_mask() -> None:
    assert mask(["CAP_CHOWN"]) == 1
    assert mask(["chown", "cap_kill", "KILL"]) == 1 | 1 << 5
    assert mask(["CAP_SYS_ADMIN"]) == 1 << 21
    assert mask(["CAP_CHECKPOINT_RESTORE"]) == 1 << 40
    assert mask(list(CAPABILITIES)) == (1 << len(CAPABILITIES)) - 1
    assert bin(mask(DOCKER_DEFAULT)).count("1") == 14
    assert mask(["CAP_NOPE", "CAP_KILL"]) == 1 << 5
    with pytest.raises(ValueError):
        mask(["CAP_NOPE"], strict=True)
    assert mask([]) == 0
