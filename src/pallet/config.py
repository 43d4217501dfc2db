"""Engine configuration, passed in explicitly (no globals)."""

from __future__ import annotations

import os
from pathlib import Path

from pallet.oci.record import field, record

DEFAULT_ROOT = "/var/lib/pallet"
DEFAULT_RUN_ROOT = "/run/pallet"


@record(frozen=True)
class Config:
    """Where pallet keeps its state and which low-level runtime it uses.

    ``root`` holds persistent state (images, containers, volumes);
    ``run_root`` holds state that must not survive a reboot (runtime state,
    sockets, locks of running containers).
    """

    root: Path = Path(DEFAULT_ROOT)
    run_root: Path = Path(DEFAULT_RUN_ROOT)
    runtime: str = "pallet"
    debug: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls,
        root: str | None = None,
        runtime: str | None = None,
        run_root: str | None = None,
        debug: bool = False,
    ) -> Config:
        r = Path(root or os.environ.get("PALLET_ROOT") or DEFAULT_ROOT).absolute()
        rr = run_root or os.environ.get("PALLET_RUN_ROOT")
        if rr is None:
            # Each root gets its own run root so that parallel roots (tests,
            # several users) never share runtime state.
            rr = DEFAULT_RUN_ROOT if str(r) == DEFAULT_ROOT else str(r / "run")
        return cls(
            root=r,
            run_root=Path(rr).absolute(),
            runtime=runtime or os.environ.get("PALLET_RUNTIME") or "pallet",
            debug=debug,
        )
