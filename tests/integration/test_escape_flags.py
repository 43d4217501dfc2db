"""Security flags through ``pallet run``: each one's effect seen from inside.

Runs with ``--runtime runc`` (the reference) and pallet's own runtime (when built).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.escape_harness import pallet_runtime_available
from tests.support.cli import Pallet


@pytest.fixture(params=["runc", "pallet"])
def pal(request: pytest.FixtureRequest, pallet_root: Path, busybox_tar: Path) -> Iterator[Pallet]:
    if request.param == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    if request.param == "pallet" and not pallet_runtime_available():
        pytest.skip("pallet's runtime (pallet.runtime.cli) is not built yet")
    p = Pallet(pallet_root, runtime=request.param)
    p.ok("import", str(busybox_tar), "busybox:test")
    yield p


def sh(p: Pallet, *flags: str, script: str) -> str:
    r = p("run", "--rm", *flags, "busybox:test", "sh", "-c", script)
    assert r.rc == 0, r
    return r.out


def status(out: str, key: str) -> str:
    return [ln for ln in out.splitlines() if ln.startswith(key + ":")][0].split()[1]


def test_default_is_confined(pal: Pallet) -> None:
    out = sh(pal, script="cat /proc/self/status")
    assert status(out, "Seccomp") == "2"  # a filter is installed
    assert int(status(out, "CapBnd"), 16) == 0xA80425FB  # Docker's 14 capabilities
    assert status(out, "NoNewPrivs") == "0"


def test_cap_drop_all_cap_add(pal: Pallet) -> None:
    out = sh(pal, "--cap-drop", "ALL", "--cap-add", "NET_RAW", script="cat /proc/self/status; chown 1 /tmp 2>&1; true")
    assert int(status(out, "CapBnd"), 16) == 1 << 13
    assert "Operation not permitted" in out


def test_no_new_privileges(pal: Pallet) -> None:
    out = sh(pal, "--security-opt", "no-new-privileges", script="cat /proc/self/status")
    assert status(out, "NoNewPrivs") == "1"


def test_seccomp_unconfined_and_custom_profile(pal: Pallet, tmp_path: Path) -> None:
    assert status(sh(pal, "--security-opt", "seccomp=unconfined", script="cat /proc/self/status"), "Seccomp") == "0"
    prof = tmp_path / "deny-mkdir.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}')
    out = sh(pal, "--security-opt", f"seccomp={prof}", script="mkdir /tmp/d 2>&1; echo rc=$?")
    assert "Permission denied" in out and "rc=1" in out


def test_privileged(pal: Pallet) -> None:
    out = sh(pal, "--privileged", script="cat /proc/self/status; mkdir -p /tmp/m; mount -t tmpfs x /tmp/m && echo MOUNTED; ls /dev | wc -l")
    assert status(out, "Seccomp") == "0"
    assert "MOUNTED" in out
    assert int(out.split()[-1]) > 20  # the host's device nodes


def test_read_only_root(pal: Pallet) -> None:
    out = sh(pal, "--read-only", script="touch /x 2>&1; touch /tmp/x 2>&1 && echo TMP-OK; echo done")
    assert "Read-only file system" in out


def test_namespaced_sysctls(pal: Pallet) -> None:
    out = sh(pal, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=123456",
             script="cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")
    assert out.split() == ["1", "123456"]
    r = pal("run", "--rm", "--sysctl", "kernel.hostname=x", "busybox:test", "true")
    assert r.rc == 125 and r.err.strip() == "Error: sysctl 'kernel.hostname=x' is not whitelisted"


@pytest.mark.skipif(not os.path.exists("/dev/loop7"), reason="needs /dev/loop7")
def test_device_flag_opens_exactly_that_device(pal: Pallet) -> None:
    out = sh(pal, "--device", "/dev/loop7:/dev/xloop:r",
             script="head -c 1 /dev/xloop; echo read=$?; echo x 2>/dev/null > /dev/xloop; echo write=$?; "
                    "mknod /tmp/l6 b 7 6; head -c 1 /tmp/l6 2>/dev/null; echo other=$?")
    assert "read=0" in out and "write=1" in out and "other=1" in out
