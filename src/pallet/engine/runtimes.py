"""Choose the low-level runtime of a container (stored in its record) and where its state lives."""

from __future__ import annotations

import sys
from pathlib import Path

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # typing stays off the ``run`` path
if TYPE_CHECKING:
    from typing import Any

    from pallet.config import Config

KNOWN = ("pallet", "runc", "crun", "vm")


def runtime_name(config: Config, flag: str | None, isolation: str | None) -> str:
    if isolation and isolation not in ("default", "process", "vm", ""):
        raise InvalidArgument(f"invalid isolation: {isolation!r}: use 'default', 'process' or 'vm'")
    if isolation == "vm":
        return "vm"
    name = flag or config.runtime or "pallet"
    if name not in KNOWN and not Path(name).is_absolute():
        raise InvalidArgument(f"unknown or invalid runtime name: {name}")
    if name == "pallet" and not flag and not pallet_runtime_present():
        import shutil  # not at import time: shutil loads the bz2 and lzma modules

        if shutil.which("runc"):
            # pallet's own runtime is not installed in this tree: the default falls back to runc
            return "runc"
    return name


def pallet_runtime_present() -> bool:
    try:
        import pallet.runtime as rt
    except ImportError:
        return False
    if hasattr(rt, "get_runtime"):
        return True
    import importlib.util

    return importlib.util.find_spec("pallet.runtime.cli") is not None


def state_root(config: Config, name: str) -> Path:
    return config.run_root / "runtime" / Path(name).name


def open_runtime(config: Config, name: str) -> Any:
    """The runtime object (create/start/state/kill/delete/pause/resume/exec) for ``name``."""
    if name == "vm":
        from pallet.vm.runtime import VMRuntime

        return VMRuntime(config)
    from pallet.runtime import get_runtime

    if runtime_argv(config, name) is None:
        raise InvalidArgument(f"unknown or invalid runtime name: {name}")
    return get_runtime(name, state_root(config, name))


def runtime_argv(config: Config, name: str) -> list[str] | None:
    """A runc-compatible command line for ``name`` (for the C monitor), or None."""
    root = str(state_root(config, name))
    if name == "pallet":
        exe = Path(sys.executable).parent / "pallet-runtime"
        if exe.exists():
            return [str(exe), "--root", root]
        return None
    if name in ("runc", "crun"):
        import shutil

        path = shutil.which(name)
        return [path, "--root", root] if path else None
    return None
