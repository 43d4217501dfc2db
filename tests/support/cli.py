"""Run the pallet CLI as a user would, against a test's own root directory."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __repr__(self) -> str:
        return f"Result(rc={self.rc}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


class Pallet:
    """``pallet --root ROOT ...`` as a subprocess."""

    def __init__(self, root: Path, runtime: str | None = None) -> None:
        self.root = root
        self.runtime = runtime

    def argv(self, *args: str) -> list[str]:
        argv = [sys.executable, "-m", "pallet", "--root", str(self.root)]
        if self.runtime:
            argv += ["--runtime", self.runtime]
        return argv + list(args)

    def __call__(
        self, *args: str, input: str | bytes | None = None, timeout: float = 120, check: bool = False,
        env: dict[str, str] | None = None,
    ) -> Result:
        text = not isinstance(input, bytes)
        p = subprocess.run(
            self.argv(*args),
            input=input,
            capture_output=True,
            text=text,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        out = p.stdout if text else p.stdout.decode(errors="replace")
        err = p.stderr if text else p.stderr.decode(errors="replace")
        r = Result(p.returncode, out, err)
        if check and p.returncode != 0:
            raise AssertionError(f"pallet {' '.join(args)} failed: {r!r}")
        return r

    def ok(self, *args: str, **kw: object) -> str:
        return self(*args, check=True, **kw).out  # type: ignore[arg-type]


# A probe run as ``python -c MAIN_PROBE ARGS...``: pallet's entry point on ARGS, then
# the exit status and whether click was imported on the way (the click-free paths).
MAIN_PROBE = (
    "import sys\n"
    "from pallet.cli.main import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    print(e.code, 'click' in sys.modules)\n"
)


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """This interpreter on ``args``, without the caller's PALLET_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PALLET_", "_PALLET"))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, env=env)
