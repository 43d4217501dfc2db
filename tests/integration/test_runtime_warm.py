"""The warm-up ``run`` sets off before creating a container changes nobody's cgroups."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import needs_root

pytestmark = [needs_root]

PROBE = """
import os
from pallet.runtime.pallet_runtime import warm_cgroup_migrations
before = open("/proc/self/cgroup").read()
warm_cgroup_migrations()
pid, status = os.wait()
print(os.waitstatus_to_exitcode(status), open(f"/proc/self/cgroup").read() == before)
"""


def test_warm_up_moves_a_shell_into_its_own_cgroup_and_ends() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # the shell's write into cgroup.procs succeeded (status 0) and ours are unchanged
    assert r.stdout.split() == ["0", "True"], r
