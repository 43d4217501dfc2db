"""Low-level OCI runtimes: pallet's own, and runc/crun through their command line.

Importing this package must stay cheap: the container init imports it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def get_runtime(name: str, state_root: Path) -> Any:
    """The runtime called ``name`` ("pallet", "runc", "crun" or a path to a runc-like binary)."""
    from pathlib import Path

    if name == "pallet":
        from pallet.runtime.pallet_runtime import PalletRuntime

        return PalletRuntime(Path(state_root))
    from pallet.runtime.oci_cli import OCICLIRuntime

    return OCICLIRuntime(name, Path(state_root))
