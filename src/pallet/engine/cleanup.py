"""``python -m pallet.engine.cleanup ROOT RUN_ROOT ID``: what a monitor runs when its container is done.

It merges the monitor's last report, releases the runtime state and the rootfs
mount, and removes the container when it was run with ``--rm``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from pallet.config import Config
    from pallet.engine.containers import ContainerService
    from pallet.errors import PalletError

    root, run_root, cid = (sys.argv[1:] if argv is None else argv)[:3]
    svc = ContainerService(Config(root=Path(root), run_root=Path(run_root)))
    try:
        c = svc.refresh(svc.store.load(cid))
    except PalletError:
        return 0
    if c.state.running:
        return 0
    if c.spec.auto_remove:
        svc.remove(c, force=True)
    else:
        svc.cleanup(c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
