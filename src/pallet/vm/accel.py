"""Choose the accelerator: KVM when it really works, software emulation (TCG) otherwise.

``/dev/kvm`` existing is not enough (on some hosts KVM guests hang), so the
first use boots the guest kernel once under KVM with a short timeout.  The
answer is cached per host boot in ``<root>/vm/accel.json``.  ``PALLET_VM_ACCEL``
(``kvm`` or ``tcg``) overrides the probe.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pallet.vm import qemu as qemu_argv
from pallet.vm.kernel import Kernel

PROBE_TIMEOUT = 4.0


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" | "tcg"
    reason: str

    @property
    def notice(self) -> str:
        if self.name == "kvm":
            return "VM isolation: hardware virtualization (KVM)"
        return f"VM isolation: software emulation (TCG), slow: {self.reason}"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def probe_kvm(qemu: str, kernel: Kernel, initrd: str, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boot the probe init under KVM; True when it reports back in time."""
    if not os.path.exists("/dev/kvm"):
        return False, "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible"
    with tempfile.TemporaryDirectory(prefix="pallet-kvm-probe-") as tmp:
        console = os.path.join(tmp, "console.log")
        m = qemu_argv.Machine(
            qemu=qemu,
            kernel=kernel.image,
            initrd=initrd,
            cmdline=qemu_argv.kernel_cmdline(root="none", network=False, probe=True),
            agent_socket=os.path.join(tmp, "agent.sock"),
            console_log=console,
            accel="kvm",
            memory_mib=128,
            network=False,
        )
        t0 = time.monotonic()
        p = subprocess.Popen(qemu_argv.argv(m), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return False, f"a KVM guest did not boot within {timeout:.0f}s"
        ok = "pallet-probe-ok" in Path(console).read_text(errors="replace")
        if ok:
            return True, f"a KVM guest booted in {time.monotonic() - t0:.2f}s"
        last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return False, f"KVM guest failed: {last}"


def choose(vm_dir: Path, qemu: str, kernel: Kernel, initrd: str) -> Accel:
    forced = os.environ.get("PALLET_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return Accel(forced, "set by PALLET_VM_ACCEL")
    cache = vm_dir / "accel.json"
    boot = _boot_id()
    try:
        c = json.loads(cache.read_text())
        if c.get("boot_id") == boot and c.get("kernel") == kernel.release:
            return Accel(c["name"], c["reason"])
    except (OSError, ValueError, KeyError):
        pass
    ok, reason = probe_kvm(qemu, kernel, initrd)
    a = Accel("kvm" if ok else "tcg", reason)
    vm_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"boot_id": boot, "kernel": kernel.release, "name": a.name,
                               "reason": a.reason}))
    os.replace(tmp, cache)
    return a
