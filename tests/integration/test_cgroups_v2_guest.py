"""The cgroup conformance suite on a real, complete cgroup v2 hierarchy.

This host runs cgroup v1 (its v2 tree has no controllers), so the suite runs
inside a guest booted by pallet's own VM isolation: a Debian kernel whose v2
hierarchy offers memory, cpu, cpuset, io and pids.  The guest's root
filesystem is the busybox test image plus this host's Python, the test
dependencies and pallet's sources; the guest runs tests/integration/
test_cgroups_host.py, where the v2 backend then exercises every check
(memory limits, a real OOM kill, CPU, cpuset, pids, freezer, the eBPF device
filter, removal).
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.integration.test_vm_runtime import pytestmark as vm_marks
from tests.integration.test_vm_runtime import vm_cache  # noqa: F401 (a session fixture)
from tests.support.cli import Pallet
from tests.support.images import make_busybox_rootfs

pytestmark = vm_marks

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3.11"
SITE = ("_pytest", "pytest", "pluggy", "iniconfig", "packaging", "pygments", "py.py")
ENV = "PYTHONPATH=/pallet-src/src:/pallet-src:/pallet-src/site"


def _shared_libs(binary: str) -> list[str]:
    import subprocess

    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libs.append(path)
    return libs


def python_image_tar(dest: Path) -> Path:
    """busybox + this host's python3.11 and stdlib + pytest + pallet's sources and tests."""
    import _pytest
    import pytest as pytest_mod

    site = Path(pytest_mod.__file__).parent.parent
    assert (site / "_pytest").is_dir() and Path(_pytest.__file__).parent.parent == site
    root = make_busybox_rootfs(dest / "rootfs")
    import glob

    ctypes_ext = glob.glob("/usr/lib/python3.11/lib-dynload/_ctypes*.so")
    for lib in sorted({lib for b in [PYTHON, *ctypes_ext] for lib in _shared_libs(b)}):
        target = root / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), target)
    shutil.copy2(PYTHON, root / "usr/bin/python3")
    shutil.copytree("/usr/lib/python3.11", root / "usr/lib/python3.11", symlinks=True,
                    ignore=shutil.ignore_patterns("test", "idlelib", "tkinter", "ensurepip", "turtledemo",
                                                  "site-packages", "dist-packages"))
    (root / "pallet-src/site").mkdir(parents=True)
    for n in SITE:
        src = site / n
        if src.is_dir():
            shutil.copytree(src, root / "pallet-src/site" / n, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, root / "pallet-src/site" / n)
    ign = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "src/pallet", root / "pallet-src/src/pallet", ignore=ign)
    shutil.copytree(REPO / "tests", root / "pallet-src/tests", ignore=ign)
    shutil.copy2(REPO / "pyproject.toml", root / "pallet-src/pyproject.toml")
    tar = dest / "python.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(root, arcname=".")
    shutil.rmtree(root)
    return tar


@pytest.mark.skipif(not os.path.exists(PYTHON), reason=f"needs {PYTHON} to copy into the guest")
def test_conformance_on_a_real_v2_hierarchy(pallet: Pallet, pallet_root: Path, vm_cache: Path, tmp_path: Path) -> None:  # noqa: F811
    (pallet_root / "vm").symlink_to(vm_cache)
    pallet.ok("import", str(python_image_tar(tmp_path)), "pallet-tests:py")
    script = (
        "grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup; "
        "echo controllers: $(cat /sys/fs/cgroup/cgroup.controllers); "
        "python3 -m pytest -p no:cacheprovider -q -rs --tb=short tests/integration/test_cgroups_host.py -k host-v2"
    )
    r = pallet("run", "--rm", "--isolation", "vm", "-m", "256m", "-e", ENV, "-w", "/pallet-src",
               "pallet-tests:py", "sh", "-c", script, timeout=600)
    assert r.rc == 0, r.out[-3000:] + r.err[-500:]
    controllers = r.out.split("controllers:")[1].splitlines()[0].split()
    assert {"memory", "cpu", "pids", "cpuset"} <= set(controllers), r.out
    assert " passed" in r.out and "failed" not in r.out and "error" not in r.out.lower(), r.out
    # on a complete hierarchy every check runs, the eBPF device filter included
    skipped = [ln for ln in r.out.splitlines() if ln.startswith("SKIPPED") and "host-v2" in ln]
    assert not skipped, skipped
