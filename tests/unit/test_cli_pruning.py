"""The prune commands' prompt, ``-f`` and report, with the engine replaced by fakes (no root)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

QUESTION = "Are you sure you want to continue? [y/N] "


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    import pallet.engine.build as build
    import pallet.engine.containers as containers
    import pallet.engine.images as images
    import pallet.engine.networks as networks
    import pallet.engine.volumes as volumes
    import pallet.network.registry as registry
    from pallet.cli.main import main

    calls: list[str] = []

    class Containers:
        def __init__(self, config: Any) -> None:
            pass

        def prune(self, labels: tuple[str, ...] = (), until: int = 0) -> tuple[list[str], int]:
            calls.append("containers")
            return ["c1", "c2"], 2048

    class Volumes:
        def __init__(self, config: Any) -> None:
            pass

        def prune(self, all_: bool = False, labels: tuple[str, ...] = ()) -> tuple[list[str], int]:
            calls.append("volumes")
            return ["v1"], 1500

    class Images:
        def __init__(self, config: Any) -> None:
            pass

        def prune(self, all_: bool = False, filters: list[str] | None = None) -> Any:
            calls.append("images")
            return SimpleNamespace(deleted=["deleted: sha256:abc"], reclaimed=3000)

    def net(name: str, builtin: bool = False) -> Any:
        return SimpleNamespace(name=name, id=name * 3, driver="bridge", labels={}, builtin=builtin,
                               user_conflist=False, internal=False)

    monkeypatch.setattr(containers, "ContainerService", Containers)
    monkeypatch.setattr(volumes, "VolumeService", Volumes)
    monkeypatch.setattr(images, "ImageService", Images)
    monkeypatch.setattr(build, "prune", lambda config, all_=False: 0)
    monkeypatch.setattr(networks, "reconcile", lambda config: [])
    monkeypatch.setattr(networks, "referenced", lambda config: {"used"})
    monkeypatch.setattr(networks, "remove_network", lambda config, name: calls.append(f"net {name}"))
    monkeypatch.setattr(registry, "networks", lambda config: [net("bridge", True), net("used"), net("spare")])

    def run(*args: str, answer: str | None = None) -> tuple[int, str]:
        calls.clear()
        if answer is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(answer))
        with pytest.raises(SystemExit) as ei:
            main(["--root", str(tmp_path), *args])
        out, err = capsys.readouterr()
        assert err == ""
        return int(ei.value.code or 0), out

    run.calls = calls  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize(("args", "warning"), [
    (["container", "prune"], "WARNING! This will remove all stopped containers.\n"),
    (["image", "prune"], "WARNING! This will remove all dangling images.\n"),
    (["image", "prune", "-a"],
     "WARNING! This will remove all images without at least one container associated to them.\n"),
    (["network", "prune"], "WARNING! This will remove all custom networks not used by at least one container.\n"),
    (["volume", "prune"], "WARNING! This will remove anonymous local volumes not used by at least one container.\n"),
    (["volume", "prune", "-a"], "WARNING! This will remove all local volumes not used by at least one container.\n"),
    (["system", "prune"], "WARNING! This will remove:\n  - all stopped containers\n"
     "  - all networks not used by at least one container\n  - all dangling images\n"
     "  - all dangling build cache\n\n"),
])
def test_prompt_then_no_removes_nothing(run_cli: Any, args: list[str], warning: str) -> None:
    assert run_cli(*args, answer="n\n") == (0, warning + QUESTION)
    assert run_cli(*args, answer="\n") == (0, warning + QUESTION)  # the default is no
    assert run_cli.calls == []


def test_yes_goes_on(run_cli: Any) -> None:
    rc, out = run_cli("container", "prune", answer="y\n")
    assert rc == 0 and out.endswith(QUESTION + "Deleted Containers:\nc1\nc2\n\nTotal reclaimed space: 2.05kB\n")
    assert run_cli.calls == ["containers"]


@pytest.mark.parametrize(("args", "out"), [
    (["container", "prune", "-f"], "Deleted Containers:\nc1\nc2\n\nTotal reclaimed space: 2.05kB\n"),
    (["image", "prune", "--force"], "Deleted Images:\ndeleted: sha256:abc\n\nTotal reclaimed space: 3kB\n"),
    (["volume", "prune", "-f"], "Deleted Volumes:\nv1\n\nTotal reclaimed space: 1.5kB\n"),
    (["network", "prune", "-f"], "Deleted Networks:\nspare\n\n"),
    (["system", "prune", "-f", "--volumes"],
     "Deleted Containers:\nc1\nc2\n\nDeleted Networks:\nspare\n\nDeleted Volumes:\nv1\n\n"
     "Deleted Images:\ndeleted: sha256:abc\n\nTotal reclaimed space: 6.55kB\n"),
])
def test_force_report(run_cli: Any, args: list[str], out: str) -> None:
    assert run_cli(*args) == (0, out)


def test_system_prune_skips_volumes_without_the_flag(run_cli: Any) -> None:
    rc, out = run_cli("system", "prune", "-f")
    assert rc == 0 and "Volumes" not in out and out.endswith("Total reclaimed space: 5.05kB\n")
    assert run_cli.calls == ["containers", "net spare", "images"]


def test_nothing_pruned_prints_the_total_only(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import pallet.engine.volumes as volumes

    class Empty:
        def __init__(self, config: Any) -> None:
            pass

        def prune(self, all_: bool = False, labels: tuple[str, ...] = ()) -> tuple[list[str], int]:
            return [], 0

    monkeypatch.setattr(volumes, "VolumeService", Empty)
    assert run_cli("volume", "prune", "-f") == (0, "Total reclaimed space: 0B\n")
