"""Commands over several names: each name tried, Docker's error lines and exit status.

The engine is replaced by a fake that fails for names starting with "bad"
(``No such container``) or "busy" (a conflict), so these run without root.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pallet.cli.each import exit_status, for_each
from pallet.errors import Conflict, ContainerNotFound, NetworkNotFound, PalletError, VolumeNotFound


def _check(name: str) -> None:
    if name.startswith("bad"):
        raise ContainerNotFound(name)
    if name.startswith("busy"):
        raise Conflict(f"container {name} is busy")


# -- the helper itself ---------------------------------------------------------------


def test_each_name_printed_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert for_each(["a", "b", "c"], lambda n: None) == []
    out, err = capsys.readouterr()
    assert (out, err) == ("a\nb\nc\n", "")


def test_action_line_replaces_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert for_each(["a", "b"], lambda n: n.upper() + "!") == []
    assert capsys.readouterr().out == "A!\nB!\n"
    assert for_each(["a", "b", "c"], lambda n: "" if n == "b" else f"{n}1\n{n}2") == []
    assert capsys.readouterr().out == "a1\na2\nc1\nc2\n"  # "" prints nothing


def test_one_name_raises_its_error_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ContainerNotFound) as ei:
        for_each(["bad"], _check)
    assert ei.value.exit_code == 125 and str(ei.value) == "No such container: bad"
    assert capsys.readouterr() == ("", "")


def test_several_names_report_each_failure_and_go_on(capsys: pytest.CaptureFixture[str]) -> None:
    failed = for_each(["bad1", "ok", "busy", "ok2"], _check)
    assert failed == ["bad1", "busy"] and exit_status(failed) == 1
    out, err = capsys.readouterr()
    assert out == "ok\nok2\n"
    assert err == ("Error response from daemon: No such container: bad1\n"
                   "Error response from daemon: container busy is busy\n")


def test_tolerated_errors_are_silent(capsys: pytest.CaptureFixture[str]) -> None:
    def not_found(e: PalletError) -> bool:
        return isinstance(e, ContainerNotFound)

    assert for_each(["bad"], _check, tolerate=not_found) == []
    assert for_each(["bad", "busy", "ok"], _check, tolerate=not_found) == ["busy"]
    out, err = capsys.readouterr()
    assert out == "ok\n" and err == "Error response from daemon: container busy is busy\n"


def test_warned_errors_are_printed_but_do_not_fail(capsys: pytest.CaptureFixture[str]) -> None:
    def not_found(e: PalletError) -> bool:
        return isinstance(e, ContainerNotFound)

    assert for_each(["bad"], _check, warn=not_found) == []
    assert for_each(["bad", "busy", "ok"], _check, warn=not_found) == ["busy"]
    out, err = capsys.readouterr()
    assert out == "ok\n"
    assert err == ("Error response from daemon: No such container: bad\n" * 2
                   + "Error response from daemon: container busy is busy\n")


def test_lone_name_reported_not_raised_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert for_each(["bad"], _check, raise_single=False) == ["bad"]
    assert capsys.readouterr() == ("", "Error response from daemon: No such container: bad\n")


def test_other_exceptions_are_not_caught() -> None:
    def boom(name: str) -> None:
        raise OSError(5, "I/O error")

    with pytest.raises(OSError):
        for_each(["a", "b"], boom)


# -- the commands, through the CLI entry point -----------------------------------------


class FakeContainers:
    """The few ContainerService methods the commands call, recording what they did."""

    def __init__(self, config: Any) -> None:
        self.calls = CALLS
        self.store = SimpleNamespace(load=lambda cid: SimpleNamespace(id=cid))

    def get(self, ref: str) -> Any:
        _check(ref)
        return SimpleNamespace(id=ref, state=SimpleNamespace(exit_code=len(ref)))

    def refresh(self, c: Any) -> Any:
        return c

    def _did(self, what: str, c: Any) -> Any:
        self.calls.append(f"{what} {c.id}")
        return c

    def kill(self, c: Any, sig: int, user: bool = True) -> None:
        self._did(f"kill-{sig}", c)

    def stop(self, c: Any, timeout: int | None = None, sig: str = "") -> Any:
        return self._did("stop", c)

    def start(self, c: Any) -> Any:
        return self._did("start", c)

    def remove(self, c: Any, force: bool = False, volumes: bool = False) -> None:
        self._did("rm", c)

    def pause(self, c: Any) -> None:
        self._did("pause", c)

    def unpause(self, c: Any) -> None:
        self._did("unpause", c)

    def wait(self, c: Any) -> Any:
        return self._did("wait", c)


CALLS: list[str] = []


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    import pallet.engine.containers as containers
    import pallet.engine.networks as networks
    import pallet.engine.volumes as volumes
    from pallet.cli.main import main

    CALLS.clear()
    monkeypatch.setattr(containers, "ContainerService", FakeContainers)

    def remove_network(config: Any, ref: str) -> None:
        if ref.startswith("bad"):
            raise NetworkNotFound(ref)
        _check(ref)
        CALLS.append(f"network-rm {ref}")

    class FakeVolumes:
        def __init__(self, config: Any) -> None:
            pass

        def remove(self, name: str) -> None:
            if name.startswith("bad"):
                raise VolumeNotFound(name)
            _check(name)
            CALLS.append(f"volume-rm {name}")

    class FakeImages:
        def __init__(self, config: Any) -> None:
            pass

        def remove(self, name: str, force: bool = False, prune: bool = True) -> Any:
            _check(name)
            CALLS.append(f"rmi {name}")
            deleted = [] if name.startswith("tag") else [f"sha256:{name}"]
            return SimpleNamespace(untagged=[f"{name}:latest"], deleted=deleted)

    import pallet.engine.images as images

    monkeypatch.setattr(images, "ImageService", FakeImages)
    monkeypatch.setattr(networks, "remove_network", remove_network)
    monkeypatch.setattr(volumes, "VolumeService", FakeVolumes)

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as ei:
            main(["--root", str(tmp_path), *args])
        out, err = capsys.readouterr()
        return int(ei.value.code or 0), out, err

    return run


@pytest.mark.parametrize("cmd", [["kill"], ["stop"], ["rm"], ["restart"], ["pause"], ["unpause"],
                                 ["container", "stop"], ["network", "rm"], ["volume", "rm"]])
def test_command_over_several_names(run_cli: Any, cmd: list[str]) -> None:
    rc, out, err = run_cli(*cmd, "a", "bad1", "busy2", "b")
    assert rc == 1 and out == "a\nb\n"
    lines = err.splitlines()
    assert len(lines) == 2 and all(ln.startswith("Error response from daemon: ") for ln in lines)
    assert "bad1" in lines[0] and lines[1] == "Error response from daemon: container busy2 is busy"
    # every name was tried, the failing ones in between did not stop the rest
    assert {c.split()[-1] for c in CALLS} == {"a", "b"} and CALLS[-1].endswith(" b")


@pytest.mark.parametrize("cmd", [["kill"], ["stop"], ["rm"], ["restart"], ["pause"], ["unpause"], ["wait"],
                                 ["network", "rm"], ["volume", "rm"]])
def test_command_over_one_bad_name_is_one_error_line_125(run_cli: Any, cmd: list[str]) -> None:
    rc, out, err = run_cli(*cmd, "busy1")
    assert (rc, out, err) == (125, "", "Error: container busy1 is busy\n")


def test_kill_signal_and_order(run_cli: Any) -> None:
    assert run_cli("kill", "-s", "TERM", "x", "y") == (0, "x\ny\n", "")
    assert CALLS == ["kill-15 x", "kill-15 y"]


def test_restart_stops_then_starts_each(run_cli: Any) -> None:
    assert run_cli("restart", "x", "bad", "y")[0] == 1
    assert CALLS == ["stop x", "start x", "stop y", "start y"]


def test_wait_prints_exit_codes_and_goes_on(run_cli: Any) -> None:
    rc, out, err = run_cli("wait", "ab", "bad", "abcd")
    assert (rc, out) == (1, "2\n4\n")
    assert err == "Error response from daemon: No such container: bad\n"


def test_rm_force_reports_missing_container_without_failing(run_cli: Any) -> None:
    assert run_cli("rm", "-f", "bad") == (0, "", "Error response from daemon: No such container: bad\n")
    rc, out, err = run_cli("rm", "-f", "a", "bad", "busy", "b")
    assert (rc, out) == (1, "a\nb\n")  # other errors still fail
    assert err == ("Error response from daemon: No such container: bad\n"
                   "Error response from daemon: container busy is busy\n")
    assert run_cli("rm", "-f", "busy")[0] == 125


@pytest.mark.parametrize("group", ["network", "volume"])
def test_group_rm_force_passes_over_missing(run_cli: Any, group: str) -> None:
    assert run_cli(group, "rm", "-f", "bad") == (0, "", "")
    rc, out, err = run_cli(group, "rm", "-f", "bad", "a", "busy")
    assert (rc, out) == (1, "a\n") and err == "Error response from daemon: container busy is busy\n"
    rc, _, err = run_cli(group, "rm", "bad")
    assert rc == 125 and err.startswith("Error: ") and "bad" in err


def test_start_reports_every_failure_then_fails(run_cli: Any) -> None:
    rc, out, err = run_cli("start", "a", "bad", "b")
    assert (rc, out) == (125, "a\nb\n")
    assert err.splitlines() == ["Error response from daemon: No such container: bad",
                                "Error: failed to start containers: bad"]  # the failed ones, as Docker
    rc, out, err = run_cli("start", "bad")
    assert (rc, out) == (125, "")
    assert err.splitlines() == ["Error response from daemon: No such container: bad",
                                "Error: failed to start containers: bad"]


def test_rmi_prints_what_each_removal_did(run_cli: Any) -> None:
    assert run_cli("rmi", "x", "tag1") == (0, "Untagged: x:latest\nDeleted: sha256:x\nUntagged: tag1:latest\n", "")


@pytest.mark.parametrize("cmd", [["rmi"], ["image", "rm"]])
def test_rmi_several_names_like_the_others(run_cli: Any, cmd: list[str]) -> None:
    rc, out, err = run_cli(*cmd, "tag1", "bad", "tag2")
    assert (rc, out) == (1, "Untagged: tag1:latest\nUntagged: tag2:latest\n")
    assert err == "Error response from daemon: No such container: bad\n"
    # all of them failing is still Docker's status 1, each failure on its line
    rc, out, err = run_cli(*cmd, "bad1", "busy2")
    assert (rc, out) == (1, "") and len(err.splitlines()) == 2
    assert run_cli(*cmd, "bad") == (125, "", "Error: No such container: bad\n")
