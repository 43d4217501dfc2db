"""Escape attempts from inside a default container: every one must fail.

Each test makes one attempt and checks both sides where it can: that the
attempt failed inside, and that the host is unchanged.  A test also checks a
positive control (the container did run the script), so that a container that
never started cannot pass.  The same suite runs against runc as a reference.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.escape_harness import (
    MB,
    BundleDriver,
    PalletDriver,
    host_block_device,
    pallet_runtime_available,
)
from tests.support.cli import Pallet
from tests.support.images import busybox_available, make_busybox_rootfs

pytestmark = [
    pytest.mark.skipif(not busybox_available(), reason="needs Debian's busybox-static"),
]

OK = "RAN-OK"  # printed first by every script: the positive control


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("escape") / "rootfs")


@pytest.fixture(params=["bundle:runc", "bundle:pallet-runtime", "run:runc", "run:pallet"])
def box(
    request: pytest.FixtureRequest, tmp_path: Path, rootfs_template: Path, pallet_root: Path, busybox_tar: Path
) -> Iterator[BundleDriver]:
    """A default container: an OCI bundle run by a runtime binary, or ``pallet run``."""
    how, runtime = request.param.split(":")
    if runtime == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    if runtime in ("pallet-runtime", "pallet") and not pallet_runtime_available():
        pytest.skip("pallet's runtime (pallet.runtime.cli) is not built yet")
    d: Any
    if how == "bundle":
        d = BundleDriver(runtime, tmp_path, rootfs_template)
    else:
        p = Pallet(pallet_root, runtime=runtime)
        p.ok("import", str(busybox_tar), "busybox:test")
        d = PalletDriver(p, "busybox:test")
    try:
        yield d
    finally:
        d.close()


def attempt(box: BundleDriver, script: str, **kw: object) -> str:
    r = box.run(f"echo {OK}; {script}", **kw)  # type: ignore[arg-type]
    assert OK in r.out, f"the container did not run: rc={r.rc} out={r.out!r}"
    assert "ESCAPED" not in r.out, r.out
    return r.out


@pytest.fixture
def host_sleeper() -> Iterator[subprocess.Popen[bytes]]:
    tag = f"{secrets.randbelow(10**6) + 10**6}"
    p = subprocess.Popen(["sleep", f"{tag}.5"])
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def test_cannot_see_host_processes(box: BundleDriver, host_sleeper: subprocess.Popen[bytes]) -> None:
    tag = str(host_sleeper.args[1])  # type: ignore[index]
    # the tag is split so that no process inside carries it in its own command line
    out = attempt(
        box,
        f"a={tag[:3]}; b={tag[3:]}; for p in /proc/[0-9]*; do cat $p/cmdline; echo; done > /tmp/all 2>/dev/null; "
        'grep -q "$a$b" /tmp/all && echo ESCAPED; set -- /proc/[0-9]*; echo $#',
    )
    n = int(out.split()[-1])
    assert n < 10, f"{n} processes visible"


def test_cannot_signal_host_processes(box: BundleDriver, host_sleeper: subprocess.Popen[bytes]) -> None:
    attempt(box, f"kill -9 {host_sleeper.pid} 2>/dev/null && echo ESCAPED; kill -9 -1 2>/dev/null; true")
    time.sleep(0.1)
    assert host_sleeper.poll() is None, "a host process was killed from inside the container"


@pytest.fixture
def host_secret(tmp_path: Path) -> Iterator[Path]:
    p = Path(f"/tmp/pallet-test-psc-secret-{secrets.token_hex(4)}")
    p.write_text("host-secret\n")
    try:
        yield p
    finally:
        p.unlink()


def test_proc_root_and_cwd_stay_inside(box: BundleDriver, host_secret: Path) -> None:
    attempt(
        box,
        f"cat /proc/1/root{host_secret} 2>/dev/null && echo ESCAPED; "
        f"cat /proc/self/cwd/../../../..{host_secret} 2>/dev/null && echo ESCAPED; "
        f"cat /proc/self/root{host_secret} 2>/dev/null && echo ESCAPED; "
        "ls /proc/1/root/ | grep -q vmlinuz && echo ESCAPED; true",
    )


def test_symlinks_in_a_bind_mount_resolve_inside(box: BundleDriver, host_secret: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "abs").symlink_to(host_secret)
    (shared / "rel").symlink_to("../../../../../../../../.." + str(host_secret))
    attempt(
        box,
        "cat /data/abs 2>/dev/null && echo ESCAPED; cat /data/rel 2>/dev/null && echo ESCAPED; "
        "ln -s / /data/root 2>/dev/null; true",
        binds=[(str(shared), "/data")],
    )
    # a symlink made inside points, on the host, at the host's / — the host must not follow it blindly;
    # what matters here is that nothing inside could read through it
    assert host_secret.read_text() == "host-secret\n"


def test_cannot_mount(box: BundleDriver) -> None:
    out = attempt(
        box,
        "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>&1 && echo ESCAPED; "
        "mount -t proc proc /tmp/m 2>&1 && echo ESCAPED; "
        "mount --bind / /tmp/m 2>&1 && echo ESCAPED; "
        "mount -o remount,rw /sys 2>&1 && echo ESCAPED; true",
    )
    assert "denied" in out or "not permitted" in out


@pytest.mark.skipif(host_block_device() is None, reason="the host has no block device to try")
def test_mknod_block_device_cannot_be_read(box: BundleDriver) -> None:
    dev = host_block_device()
    assert dev is not None
    major, minor = dev
    out = attempt(
        box,
        f"mknod /tmp/disk b {major} {minor} && echo MKNOD-DONE; "
        "head -c 512 /tmp/disk > /tmp/out 2>/dev/null && echo ESCAPED; "
        f"mknod /dev/disk2 b {major} {minor} 2>/dev/null; head -c 512 /dev/disk2 >/dev/null 2>&1 && echo ESCAPED; true",
    )
    # Docker's default set keeps CAP_MKNOD: making the node is allowed, using it is not
    assert "MKNOD-DONE" in out


def test_cannot_write_proc_sys_or_sys(box: BundleDriver) -> None:
    before = Path("/proc/sys/kernel/panic").read_text()
    attempt(
        box,
        "echo 77 > /proc/sys/kernel/panic 2>/dev/null && echo ESCAPED; "
        "echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo ESCAPED; "
        "echo c > /proc/sysrq-trigger 2>/dev/null && echo ESCAPED; "
        "touch /sys/pallet-x 2>/dev/null && echo ESCAPED; "
        "echo 1 > /sys/kernel/mm/ksm/run 2>/dev/null && echo ESCAPED; "
        "cat /proc/kcore 2>/dev/null | head -c 1 | grep -q . && echo ESCAPED; true",
    )
    after = Path("/proc/sys/kernel/panic").read_text()
    if after != before:
        Path("/proc/sys/kernel/panic").write_text(before)
    assert after == before


def test_cannot_load_kernel_modules(box: BundleDriver) -> None:
    out = attempt(box, "insmod /bin/busybox 2>&1; echo rc=$?")
    assert "rc=0" not in out
    # refused before the kernel looks at the file: an allowed call would say "Invalid module format"
    assert "not permitted" in out, out


def test_cannot_change_host_hostname_or_time(box: BundleDriver) -> None:
    name = socket.gethostname()
    out = attempt(
        box,
        "hostname pallet-escaped 2>&1 && echo ESCAPED-HOSTNAME; "
        # busybox date prints the new date and exits 0 even when setting it failed: read it back
        "date -s '2001-01-01 00:00:00' >/dev/null 2>&1; [ $(date +%Y) = 2001 ] && echo ESCAPED-TIME; true",
    )
    assert socket.gethostname() == name
    assert abs(time.time() - time.mktime(time.localtime())) < 5
    assert time.gmtime().tm_year > 2001
    assert "ESCAPED" not in out


def test_cannot_create_user_namespace(box: BundleDriver) -> None:
    out = attempt(
        box,
        "unshare -U true 2>&1 && echo ESCAPED; unshare -Ur true 2>&1 && echo ESCAPED; "
        "unshare -m true 2>&1 && echo ESCAPED; true",
    )
    assert "not permitted" in out or "denied" in out


def test_cannot_reach_outside_processes(box: BundleDriver, host_sleeper: subprocess.Popen[bytes]) -> None:
    pid = host_sleeper.pid
    attempt(
        box,
        f"cat /proc/{pid}/environ 2>/dev/null | grep -q . && echo ESCAPED; "
        f"nsenter -t {pid} -m true 2>/dev/null && echo ESCAPED; "
        "nsenter -t 1 -m -u true 2>/dev/null && echo ESCAPED; true",
    )
    with open(f"/proc/{pid}/status") as f:
        tracer = [ln for ln in f if ln.startswith("TracerPid:")][0].split()[1]
    assert tracer == "0"


def test_memory_limit_holds(box: BundleDriver) -> None:
    r = box.run(f"echo {OK}; exec dd if=/dev/zero of=/dev/null bs=256M count=1", memory="64m", memory_swap="64m")
    assert OK in r.out
    assert "records out" not in r.out, r.out
    assert r.rc == 137, r


def test_pids_limit_holds(box: BundleDriver) -> None:
    r = box.run(
        # an inner shell forks until it cannot (busybox sh then exits); the outer one
        # counts with builtins only, since at the limit not even $(...) can fork
        f"echo {OK}; sh -c 'i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done' 2>/dev/null; "
        "set -- /proc/[0-9]*; echo running=$#; kill -9 -1",
        pids_limit="50", timeout=60,
    )
    assert OK in r.out, r
    running = int(r.out.split("running=")[1].split()[0])
    assert 40 <= running <= 50, r.out  # it did fork up to the limit, and no further


def test_shm_is_bounded(box: BundleDriver) -> None:
    free_before = os.statvfs("/dev/shm").f_bavail if os.path.isdir("/dev/shm") else 0
    r = box.run(
        f"echo {OK}; dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 2>&1; "
        "echo size=$(du -m /dev/shm/fill | cut -f1)",
        memory="512m",
    )
    assert OK in r.out
    assert "No space left on device" in r.out, r.out
    size = int(r.out.split("size=")[1].split()[0])
    assert size <= 64, f"wrote {size} MB into a 64 MB /dev/shm"
    if free_before:
        assert os.statvfs("/dev/shm").f_bavail >= free_before - (8 * MB // os.statvfs("/dev/shm").f_frsize)


def test_the_suite_sees_an_open_wall(box: BundleDriver) -> None:
    """Negative control: in a --privileged container the same attempts succeed,
    so the checks above can tell a wall that holds from one that does not."""
    r = box.run(
        f"echo {OK}; mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo MOUNTED; unshare -U true && echo USERNS; "
        "echo 77 > /proc/sys/kernel/domainname 2>/dev/null; true",
        privileged=True,
    )
    assert OK in r.out and "MOUNTED" in r.out and "USERNS" in r.out, r.out
