"""VM isolation against container isolation, side by side in one run (root).

Measures, for the same busybox bundle:
  * boot-to-exit of ``true`` in a pallet VM (create + start + wait + delete),
  * the hypervisor's floor: a bare ``qemu-system-x86_64 -M microvm`` boot of the
    same kernel and initramfs that powers off at once,
  * boot-to-exit of ``true`` in a container (runc; pallet's own runtime too when present),
  * host memory held per running VM (QEMU's RSS and the shim's) against a container's.

Prints medians and ratios, and says plainly whether the VM used KVM or TCG.

    python bench/bench_vm.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pallet.config import Config
from pallet.vm import accel, qemu
from pallet.vm.initramfs import ensure_initramfs
from pallet.vm.kernel import ensure_boot_image, find_kernel, find_qemu, tsc_khz
from pallet.vm.runtime import VMRuntime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.images import make_busybox_rootfs, make_busybox_tar  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def uss_kib(pid: int) -> int:
    """Memory only this process holds (private pages; shared libraries and page cache excluded)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def write_bundle(dest: Path, rootfs: Path, args: list[str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    cfg = {"ociVersion": "1.0.2",
           "process": {"args": args, "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
           "root": {"path": str(rootfs)}, "hostname": "bench",
           "annotations": {"org.pallet.vm.cache-key": "bench-busybox"}}
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


def runc_bundle(dest: Path, rootfs: Path, args: list[str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", str(dest)], check=True)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["process"]["args"] = args
    cfg["process"]["terminal"] = False
    cfg["root"] = {"path": str(rootfs), "readonly": True}
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


def time_vm(rt: VMRuntime, bundle: Path, n: int) -> tuple[list[float], list[float]]:
    totals, boots = [], []
    for i in range(n):
        cid = f"bench{i}"
        t0 = time.monotonic()
        with open(os.devnull, "wb") as null:
            rt.create(cid, bundle, stdout=null, stderr=null)
        rt.start(cid)
        rc = rt.wait(cid, timeout=120)
        totals.append(time.monotonic() - t0)
        boots.append(rt.vm_state(cid).boot_seconds or 0.0)
        rt.delete(cid)
        assert rc == 0, f"true exited {rc} in the VM"
    return totals, boots


def time_bare_qemu(q: str, kernel_image: str, initrd: str, acc: str, n: int) -> list[float]:
    out = []
    with tempfile.TemporaryDirectory(prefix="pallet-bench-") as tmp:
        m = qemu.Machine(qemu=q, kernel=kernel_image, initrd=initrd,
                         cmdline=qemu.kernel_cmdline(root="none", network=False, probe=True,
                                                     tsc_khz=tsc_khz() if acc == "tcg" else 0),
                         agent_socket=f"{tmp}/a.sock", console_log=f"{tmp}/console.log",
                         accel=acc, memory_mib=256, network=False)
        for _ in range(n):
            t0 = time.monotonic()
            subprocess.run(qemu.argv(m), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=120, check=False)
            out.append(time.monotonic() - t0)
    return out


def time_cmd(argv: list[str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.monotonic() - t0)
    return out


def vm_memory(rt: VMRuntime, bundle: Path) -> tuple[int, int, int]:
    with open(os.devnull, "wb") as null:
        rt.create("benchmem", bundle, stdout=null, stderr=null)
    rt.start("benchmem")
    time.sleep(1.0)
    raw = json.loads((rt.state_root / "benchmem" / "state.json").read_text())
    q, qu, s = rss_kib(raw["qemu_pid"]), uss_kib(raw["qemu_pid"]), rss_kib(raw["shim_pid"])
    rt.delete("benchmem", force=True)
    return q, qu, s


def container_memory(bundle: Path) -> int:
    cid = f"pallet-bench-{os.getpid()}"
    subprocess.run(["runc", "run", "-d", "--bundle", str(bundle), cid], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        st = json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True,
                                       check=True).stdout)
        return rss_kib(int(st["pid"]))
    finally:
        subprocess.run(["runc", "delete", "-f", cid], check=False)


def pallet_cli(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pallet", "--root", str(root), *args]


def time_pallet_run(root: Path, n: int, *extra: str) -> list[float]:
    """``pallet run --rm [extra] busybox:bench true``, end to end."""
    return time_cmd(pallet_cli(root, "run", "--rm", *extra, "busybox:bench", "true"), n)


def unmount_under(root: Path) -> None:
    """What pallet mounted under the bench's temporary root (e.g. its netns directory)."""
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f]
    for t in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", t], capture_output=True, check=False)


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f}s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_vm needs root")
    with tempfile.TemporaryDirectory(prefix="pallet-bench-vm-") as tmp:
        try:
            run_all(Path(tmp), a.runs)
        finally:
            unmount_under(Path(tmp))


def run_all(t: Path, runs: int) -> None:
    rootfs = make_busybox_rootfs(t / "rootfs")
    cfg = Config(root=t / "root", run_root=t / "run")
    rt = VMRuntime(cfg, notice=open(os.devnull, "w"))  # noqa: SIM115
    kernel, q = find_kernel(), find_qemu()
    initrd = str(ensure_initramfs(cfg.root / "vm", kernel))
    acc = accel.choose(cfg.root / "vm", q, kernel, initrd)
    print(f"accelerator: {acc.name.upper()} ({acc.reason})")
    print(f"guest kernel {kernel.release}; host kernel {os.uname().release}")
    vb = write_bundle(t / "vm-true", rootfs, ["true"])
    boot_image = ensure_boot_image(cfg.root / "vm", kernel)
    rb = runc_bundle(t / "runc-true", rootfs, ["true"]) if shutil.which("runc") else None
    # end to end through the CLI: the same image in a container and in a VM
    proot = t / "cli-root"
    (proot / "vm").parent.mkdir(parents=True, exist_ok=True)
    (proot / "vm").symlink_to(cfg.root / "vm")
    tar = make_busybox_tar(t / "busybox.tar")
    subprocess.run(pallet_cli(proot, "import", str(tar), "busybox:bench"), check=True,
                   stdout=subprocess.DEVNULL)
    time_vm(rt, vb, 1)  # warm the image cache
    runtimes = []
    for rt_name in ("pallet", "runc"):
        try:
            time_pallet_run(proot, 1, "--runtime", rt_name)
            runtimes.append(rt_name)
        except subprocess.CalledProcessError:
            print(f"(container mode with the {rt_name} runtime is not available here)")
    # one of each kind per round, so that the machine's load drifts over all of them alike
    vm_total: list[float] = []
    vm_boot: list[float] = []
    bare: list[float] = []
    runc_run: list[float] = []
    cli_vm: list[float] = []
    cli_ct: dict[str, list[float]] = {n: [] for n in runtimes}
    for _ in range(runs):
        total, boot = time_vm(rt, vb, 1)
        vm_total += total
        vm_boot += boot
        bare += time_bare_qemu(q, boot_image, initrd, acc.name, 1)
        if rb is not None:
            runc_run += time_cmd(["runc", "run", "--bundle", str(rb), f"pallet-bench-{os.getpid()}"], 1)
        cli_vm += time_pallet_run(proot, 1, "--isolation", "vm")
        for n in runtimes:
            cli_ct[n] += time_pallet_run(proot, 1, "--runtime", n)
    rows = [("pallet VM (create+start+wait+delete)", vm_total),
            ("  of which boot to agent ready", vm_boot),
            ("bare qemu microvm boot + poweroff", bare)]
    if runc_run:
        rows.append(("runc run (container)", runc_run))
    rows.append(("pallet run --rm --isolation vm IMG true", cli_vm))
    rows += [(f"pallet run --rm --runtime {n} IMG true", xs) for n, xs in cli_ct.items()]
    print(f"\nboot-to-exit of `true`, median of {runs}:")
    for name, xs in rows:
        print(f"  {name:40s} {med(xs)}")
    base = statistics.median(vm_total)
    for name, xs in [("bare qemu microvm boot + poweroff", bare), ("runc run (container)", runc_run)]:
        if xs:
            print(f"  pallet VM / {name:40s} x{base / statistics.median(xs):.1f}")
    for n, xs in cli_ct.items():
        print(f"  run --isolation vm / run --runtime {n:20s} x{statistics.median(cli_vm) / statistics.median(xs):.1f}")
    print(f"  pallet overhead over bare QEMU: {base - statistics.median(bare):+.3f}s")
    sb = write_bundle(t / "vm-sleep", rootfs, ["sleep", "1000"])
    qrss, quss, srss = vm_memory(rt, sb)
    print("\nhost memory per running instance (RSS):")
    print(f"  QEMU process {qrss / 1024:.1f} MiB RSS, {quss / 1024:.1f} MiB of it not shared with another process "
          "(guest RAM 256 MiB, touched pages only)")
    print(f"  pallet VM shim {srss / 1024:.1f} MiB")
    if shutil.which("runc"):
        cb = runc_bundle(t / "runc-sleep", rootfs, ["sleep", "1000"])
        print(f"  container process (runc, sleep) {container_memory(cb) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
