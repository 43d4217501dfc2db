"""Pure parts of pallet's runtime: mount options, path resolution, command lookup, state."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pallet.errors import ContainerNotFound, RuntimeFailure
from pallet.linux import syscalls as sc
from pallet.runtime.base import state_json
from pallet.runtime.pallet_runtime import PalletRuntime, _signum
from pallet.runtime.process import ExecError, lookup
from pallet.runtime.rootfs import parse_options, secure_join


def test_parse_options() -> None:
    flags, prop, data = parse_options(["nosuid", "noexec", "mode=755", "size=65536k", "rprivate"])
    assert flags == sc.MS_NOSUID | sc.MS_NOEXEC
    assert prop == sc.MS_PRIVATE | sc.MS_REC
    assert data == "mode=755,size=65536k"
    flags, _, _ = parse_options(["rbind", "ro", "rw"])
    assert flags == sc.MS_BIND | sc.MS_REC  # the later rw clears ro
    assert parse_options(["tmpcopyup"]) == (0, 0, "")


def test_secure_join_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "abs").symlink_to("/etc")
    (root / "up").symlink_to("../../../../")
    assert secure_join(str(root), "/abs/passwd") == str(root / "etc" / "passwd")
    assert secure_join(str(root), "/up/etc") == str(root / "etc")
    assert secure_join(str(root), "../../x") == str(root / "x")
    (root / "loop").symlink_to("loop")
    with pytest.raises(OSError):
        secure_join(str(root), "/loop/x")


def _exe(path: Path, mode: int = 0o755) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)


def test_lookup_exit_codes(tmp_path: Path) -> None:
    _exe(tmp_path / "bin" / "tool")
    _exe(tmp_path / "bin" / "data", 0o644)
    env = [f"PATH={tmp_path / 'bin'}"]
    assert lookup(["tool"], env, "/") == str(tmp_path / "bin" / "tool")
    with pytest.raises(ExecError) as e:
        lookup(["nope"], env, "/")
    assert e.value.code == 127 and str(e.value) == 'exec: "nope": executable file not found in $PATH'
    with pytest.raises(ExecError) as e:
        lookup(["data"], env, "/")
    assert e.value.code == 126 and "permission denied" in str(e.value)
    with pytest.raises(ExecError) as e:
        lookup([str(tmp_path / "bin")], env, "/")
    assert e.value.code == 126
    with pytest.raises(ExecError) as e:
        lookup(["./missing"], env, str(tmp_path))
    assert e.value.code == 127


def test_state_json_is_runcs() -> None:
    d = state_json("c1", "running", 42, "/b", "2026-01-01T00:00:00Z")
    assert d["ociVersion"] and d["id"] == "c1" and d["pid"] == 42 and d["status"] == "running"
    assert d["bundle"] == "/b" and d["rootfs"] == "/b/rootfs" and d["created"].endswith("Z")
    assert d["annotations"] == {}


def test_signal_names() -> None:
    assert _signum("KILL") == signal.SIGKILL
    assert _signum("SIGTERM") == signal.SIGTERM
    assert _signum("9") == 9 and _signum(15) == 15
    with pytest.raises(RuntimeFailure):
        _signum("NOPE")


def test_unknown_and_invalid_ids(tmp_path: Path) -> None:
    rt = PalletRuntime(tmp_path)
    with pytest.raises(ContainerNotFound):
        rt.state("missing")
    with pytest.raises(RuntimeFailure):
        rt.state("../x")
    assert rt.list() == []


def test_init_messages_are_parsed() -> None:
    r, w = os.pipe()
    os.write(w, b"pid 123\nready\nerror 127 exec: \"x\": executable file not found in $PATH\n")
    os.close(w)
    try:
        assert PalletRuntime._read_msg(r) == {"pid": 123}
        assert PalletRuntime._read_msg(r) == {"ready": True}
        msg = PalletRuntime._read_msg(r)
        assert msg == {"error": 'exec: "x": executable file not found in $PATH', "code": 127}
        assert PalletRuntime._read_msg(r) is None
    finally:
        os.close(r)
