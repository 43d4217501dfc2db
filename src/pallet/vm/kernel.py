"""Find the guest kernel, its modules and QEMU on the host."""

from __future__ import annotations

import glob
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import Unavailable

KERNEL_PACKAGE = "linux-image-cloud-amd64"
QEMU_PACKAGE = "qemu-system-x86"
QEMU_BINARY = "qemu-system-x86_64"
VIRTIOFSD_PATHS = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd")


@dataclass(frozen=True)
class Kernel:
    image: str  # the bzImage QEMU boots with -kernel
    release: str  # "6.1.0-56-cloud-amd64"
    modules: str  # /lib/modules/<release>


def _release_key(release: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", release)]


def find_kernel(boot: str = "/boot", modules_root: str = "/lib/modules") -> Kernel:
    """The newest Debian ``cloud-amd64`` kernel with its modules (any flavour as a fallback)."""
    override = os.environ.get("PALLET_VM_KERNEL")
    if override:
        rel = os.path.basename(override).removeprefix("vmlinuz-")
        if not (os.access(override, os.R_OK) and os.path.isdir(f"{modules_root}/{rel}/kernel")):
            raise Unavailable(f"PALLET_VM_KERNEL={override}: needs a readable kernel image named "
                              f"vmlinuz-<release> and its modules in {modules_root}/<release>")
        return Kernel(override, rel, f"{modules_root}/{rel}")
    found: list[Kernel] = []
    for flavour in ("-cloud-amd64", ""):
        for img in glob.glob(f"{boot}/vmlinuz-*{flavour}"):
            rel = os.path.basename(img).removeprefix("vmlinuz-")
            if os.path.isdir(f"{modules_root}/{rel}/kernel") and os.access(img, os.R_OK):
                found.append(Kernel(img, rel, f"{modules_root}/{rel}"))
        if found:
            break
    if not found:
        raise Unavailable(f"no kernel for VM isolation: apt-get install {KERNEL_PACKAGE}")
    return max(found, key=lambda k: _release_key(k.release))


def find_qemu() -> str:
    path = shutil.which(QEMU_BINARY)
    if path is None:
        raise Unavailable(f"VM isolation needs QEMU: apt-get install {QEMU_PACKAGE}")
    return path


def find_virtiofsd() -> str:
    for p in (os.environ.get("PALLET_VIRTIOFSD", ""), *VIRTIOFSD_PATHS):
        if p and os.access(p, os.X_OK):
            return p
    w = shutil.which("virtiofsd")
    if w:
        return w
    raise Unavailable("virtio-fs needs virtiofsd: apt-get install qemu-system-common (or virtiofsd)")


def tsc_khz(cpuinfo: str | None = None) -> int:
    """The host's TSC rate in kHz (TCG guests boot reliably only when told it), 0 if unknown."""
    if cpuinfo is not None:
        return tsc_khz_from_cpuinfo(cpuinfo)
    try:
        text = Path("/sys/devices/system/cpu/cpu0/tsc_freq_khz").read_text()
        return int(text.strip())
    except (OSError, ValueError):
        pass
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return 0
    return tsc_khz_from_cpuinfo(cpuinfo)


def tsc_khz_from_cpuinfo(cpuinfo: str) -> int:
    m = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", cpuinfo, re.M)
    return int(float(m.group(1)) * 1000) if m else 0


# compressed payloads a bzImage may carry: magic -> how to decompress
_PAYLOADS = (
    (b"\x02\x21\x4c\x18", ["unlz4", "-c"]),
    (b"\x28\xb5\x2f\xfd", ["zstd", "-dc"]),
    (b"\xfd7zXZ\x00", ["xz", "-dc"]),
    (b"\x1f\x8b\x08\x00", ["gzip", "-dc"]),
)


_PVH_NOTE = re.compile(rb"\x04\x00\x00\x00[\x04\x08]\x00\x00\x00\x12\x00\x00\x00Xen\x00")


def has_pvh_note(elf: bytes) -> bool:
    """True when the ELF kernel has Xen's PHYS32_ENTRY note, which QEMU's PVH boot needs."""
    return _PVH_NOTE.search(elf) is not None


def extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The uncompressed ELF kernel inside a bzImage, or None (pure but for the decompressor).

    QEMU boots such an ELF through its PVH entry point, skipping the kernel's own
    decompression, which is slow under software emulation.
    """
    import subprocess

    for magic, argv in _PAYLOADS:
        i = bzimage.find(magic)
        if i < 0 or shutil.which(argv[0]) is None:
            continue
        r = subprocess.run(argv, input=bzimage[i:], capture_output=True, check=False)
        # trailing bytes after the payload make some decompressors complain: judge the output
        if r.stdout[:4] == b"\x7fELF" and has_pvh_note(r.stdout):
            return r.stdout
    return None


def ensure_boot_image(vm_dir: Path, kernel: Kernel) -> str:
    """The cached uncompressed kernel when it can be made, else the bzImage itself."""
    if os.environ.get("PALLET_VM_BZIMAGE"):
        return kernel.image
    path = vm_dir / f"vmlinux-{kernel.release}"
    if path.exists():
        return str(path)
    failed = vm_dir / f"vmlinux-{kernel.release}.none"
    if failed.exists():
        return kernel.image
    vm_dir.mkdir(parents=True, exist_ok=True)
    elf = extract_vmlinux(Path(kernel.image).read_bytes())
    if elf is None:
        failed.touch()
        return kernel.image
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(elf)
    os.replace(tmp, path)
    return str(path)
