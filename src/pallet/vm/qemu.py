"""Pure builders: the guest kernel command line and QEMU's argv (a list, unit-tested)."""

from __future__ import annotations

from dataclasses import dataclass

from pallet.vm.bundle import PortForward
from pallet.vm.initramfs import AGENT_PORT


@dataclass(frozen=True)
class VirtioFS:
    tag: str
    socket: str


@dataclass(frozen=True)
class Machine:
    qemu: str
    kernel: str
    initrd: str
    cmdline: str
    agent_socket: str
    console_log: str
    accel: str = "tcg"  # "kvm" | "tcg"
    memory_mib: int = 256
    cpus: int = 1
    disk: str = ""  # read-only root filesystem image (erofs/ext4); empty with virtio-fs
    filesystems: tuple[VirtioFS, ...] = ()  # "rootfs" first when the root is shared
    network: bool = True
    ports: tuple[PortForward, ...] = ()
    tap: str = ""  # a tap device (in ``netns``) instead of QEMU's user network
    mac: str = ""
    netns: str = ""  # run QEMU in this network namespace
    tb_size_mib: int = 64  # TCG's translation cache: QEMU's default (1 GiB) dominates its RSS


def kernel_cmdline(
    *,
    root: str,
    hostname: str = "",
    network: bool = True,
    address: str = "",
    gateway: str = "",
    shares: bool = False,
    tsc_khz: int = 0,
    probe: bool = False,
    debug: bool = False,
) -> str:
    """Quiet, quick boot; the serial console gets kernel messages only."""
    args = [
        "console=ttyS0",
        "loglevel=7" if debug else "quiet",
        "panic=-1",
        "reboot=t",
        "pci=off",
        "i8042.noaux",
        "i8042.nomux",
        "i8042.nopnp",
        "i8042.dumbkbd",
        "nomodeset",
        "rdinit=/init",
        "page_alloc.shuffle=0",
        # boot-time self-tests and tracing set-up cost ~0.5 s under software emulation
        "cryptomgr.notests",
        "initcall_blacklist=init_kprobe_trace,crypto_kdf108_init",
    ]
    if tsc_khz > 0:
        args.append(f"tsc_early_khz={tsc_khz}")
    args.append(f"pallet.root={root}")
    if hostname:
        args.append(f"pallet.hostname={hostname}")
    if network:
        args.append("pallet.net=1")
    if address:
        args.append(f"pallet.ip={address}")
    if gateway:
        args.append(f"pallet.gw={gateway}")
    if shares:
        args.append("pallet.fs=1")
    if probe:
        args.append("pallet.probe=1")
    return " ".join(args)


def hostfwd(p: PortForward) -> str:
    return f"hostfwd={p.proto}:{p.host_ip}:{p.host_port}-:{p.guest_port}"


def argv(m: Machine) -> list[str]:
    """QEMU's command line for a microvm guest with no firmware, display or default devices."""
    shared_mem = bool(m.filesystems)
    machine = "microvm,x-option-roms=off,isa-serial=on"
    if shared_mem:
        machine += ",memory-backend=mem"
    out = [
        m.qemu,
        "-M", machine,
        "-accel", m.accel if m.accel == "kvm" else f"tcg,tb-size={m.tb_size_mib}",
        "-cpu", "host" if m.accel == "kvm" else "max",
        "-m", f"{m.memory_mib}M",
        "-smp", str(m.cpus),
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-kernel", m.kernel,
        "-initrd", m.initrd,
        "-append", m.cmdline,
        "-chardev", f"file,id=console,path={m.console_log}",
        "-serial", "chardev:console",
        "-device", "virtio-serial-device",
        "-chardev", f"socket,id=agent,path={m.agent_socket},server=on,wait=off",
        "-device", f"virtserialport,chardev=agent,name={AGENT_PORT}",
    ]
    if shared_mem:
        out += [
            "-object", f"memory-backend-memfd,id=mem,size={m.memory_mib}M,share=on",
            "-global", "virtio-mmio.force-legacy=false",
        ]
    if m.disk:
        out += [
            "-drive", f"id=root,file={m.disk},format=raw,if=none,readonly=on",
            "-device", "virtio-blk-device,drive=root",
        ]
    for i, fs in enumerate(m.filesystems):
        out += [
            "-chardev", f"socket,id=fs{i},path={fs.socket}",
            "-device", f"vhost-user-fs-device,chardev=fs{i},tag={fs.tag}",
        ]
    if m.network and m.tap:
        out += ["-netdev", f"tap,id=net0,ifname={m.tap},script=no,downscript=no",
                "-device", "virtio-net-device,netdev=net0" + (f",mac={m.mac}" if m.mac else "")]
    elif m.network:
        netdev = "user,id=net0"
        for p in m.ports:
            netdev += "," + hostfwd(p)
        out += ["-netdev", netdev, "-device", "virtio-net-device,netdev=net0"]
    if m.netns:
        out = ["nsenter", f"--net={m.netns}", "--", *out]
    return out


def virtiofsd_argv(virtiofsd: str, socket: str, source: str, readonly: bool = False) -> list[str]:
    """QEMU 7.2's C virtiofsd (``-o``) or the Rust one (``--shared-dir``), sandboxed by default.

    The C daemon has no read-only mode: there the guest mounts read-only shares with MS_RDONLY.
    """
    if "/qemu/" in virtiofsd:
        return [virtiofsd, f"--socket-path={socket}", "-o", f"source={source},cache=auto"]
    out = [virtiofsd, f"--socket-path={socket}", f"--shared-dir={source}", "--cache=auto"]
    if readonly:
        out.append("--readonly")
    return out
