"""The VM shim's relaying, driven by a fake agent on a socket pair (no QEMU)."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest

from pallet.vm import proto
from pallet.vm.shim import Session, Shim


@pytest.fixture
def shim(tmp_path: Path) -> tuple[Shim, socket.socket]:
    plan = {"process": {"args": ["true"]}, "ctl_socket": "ctl.sock", "agent_socket": "agent.sock",
            "qemu_argv": []}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    s = Shim(tmp_path)
    ours, agent = socket.socketpair()
    s.sock = ours
    agent.settimeout(2)
    return s, agent


def frames(agent: socket.socket) -> list[proto.Frame]:
    return proto.Decoder().feed(agent.recv(65536))


def test_output_goes_to_the_sessions_descriptors(shim: tuple[Shim, socket.socket]) -> None:
    s, _agent = shim
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    s.sessions[0] = Session(0, 0, out_w, err_w)
    s.on_frame(proto.Frame(proto.STDOUT, 0, b"hello "))
    s.on_frame(proto.Frame(proto.STDERR, 0, b"oops"))
    s.on_frame(proto.Frame(proto.STDOUT, 0, b"world"))
    s.on_frame(proto.Frame(proto.STDOUT, 9, b"no such session"))
    assert os.read(out_r, 100) == b"hello world"
    assert os.read(err_r, 100) == b"oops"
    for fd in (out_r, out_w, err_r, err_w):
        os.close(fd)


def test_exit_of_the_process_records_status_and_powers_off(shim: tuple[Shim, socket.socket]) -> None:
    s, agent = shim
    s.on_frame(proto.Frame(proto.STARTED, 0, b"42"))
    st = json.loads((s.dir / "state.json").read_text())
    assert st["status"] == "running" and st["guest_pid"] == 42
    s.on_frame(proto.Frame(proto.EXIT, 0, b"3"))
    st = json.loads((s.dir / "state.json").read_text())
    assert st["status"] == "stopped" and st["exit_code"] == 3
    got = frames(agent)
    assert got[-1] == proto.Frame(proto.QUIT, 0, b"")
    s.on_frame(proto.Frame(proto.EXIT, 0, b"4"))  # a second exit changes nothing
    assert json.loads((s.dir / "state.json").read_text())["exit_code"] == 3


def test_signals_reach_the_guest_or_end_a_vm_not_started(shim: tuple[Shim, socket.socket]) -> None:
    s, agent = shim
    s.save(status="running")
    s.kill(signal.SIGTERM)
    assert frames(agent) == [proto.Frame(proto.SIGNAL, 0, b"15")]
    s.save(status="created")
    s.kill(signal.SIGINT)
    assert frames(agent) == [proto.Frame(proto.QUIT, 0, b"")]
    assert json.loads((s.dir / "state.json").read_text())["exit_code"] == 128 + signal.SIGINT


def test_exec_session_reports_to_its_client(shim: tuple[Shim, socket.socket]) -> None:
    s, _agent = shim
    client, peer = socket.socketpair()
    out_r, out_w = os.pipe()
    s.sessions[1] = Session(1, 0, out_w, out_w, client=client, owned=[out_w])
    s.on_frame(proto.Frame(proto.STARTED, 1, b"7"))
    s.on_frame(proto.Frame(proto.STDOUT, 1, b"exec output"))
    s.on_frame(proto.Frame(proto.EXIT, 1, b"5"))
    lines = peer.makefile("rb").read().splitlines()
    assert json.loads(lines[0]) == {"ok": True, "pid": 7, "id": 1}
    assert json.loads(lines[1]) == {"exit": 5}
    assert os.read(out_r, 100) == b"exec output"
    assert 1 not in s.sessions
    os.close(out_r)


def test_malformed_numbers_from_the_guest_are_not_trusted(shim: tuple[Shim, socket.socket]) -> None:
    s, _agent = shim
    s.on_frame(proto.Frame(proto.STARTED, 0, b"-1; rm"))
    assert json.loads((s.dir / "state.json").read_text())["guest_pid"] == 0
    s.on_frame(proto.Frame(proto.EXIT, 0, b"x" * 100))
    assert json.loads((s.dir / "state.json").read_text())["exit_code"] == 255
