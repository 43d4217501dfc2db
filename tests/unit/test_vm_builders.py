"""Pure builders of the VM runtime: QEMU argv, kernel command line, initramfs, mkfs commands."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pytest

from pallet.vm import initramfs, qemu, rootfs
from pallet.vm.bundle import PortForward
from pallet.vm.kernel import Kernel, extract_vmlinux, find_kernel, has_pvh_note, tsc_khz


def machine(**kw: object) -> qemu.Machine:
    base: dict[str, object] = dict(
        qemu="/usr/bin/qemu-system-x86_64",
        kernel="/boot/vmlinuz",
        initrd="/var/lib/pallet/vm/initramfs.img",
        cmdline="console=ttyS0",
        agent_socket="/run/x/agent.sock",
        console_log="/run/x/console.log",
    )
    base.update(kw)
    return qemu.Machine(**base)  # type: ignore[arg-type]


def opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_argv_microvm_without_firmware_or_defaults() -> None:
    a = qemu.argv(machine(memory_mib=512, cpus=2))
    assert a[0] == "/usr/bin/qemu-system-x86_64"
    assert opt(a, "-M")[0].startswith("microvm,")
    assert "-nodefaults" in a and "-no-user-config" in a and "-no-reboot" in a
    assert opt(a, "-kernel") == ["/boot/vmlinuz"]
    assert opt(a, "-m") == ["512M"]
    assert opt(a, "-smp") == ["2"]
    assert opt(a, "-accel") == ["tcg,tb-size=64"] and opt(a, "-cpu") == ["max"]
    assert "chardev:console" in opt(a, "-serial")
    assert "socket,id=agent,path=/run/x/agent.sock,server=on,wait=off" in opt(a, "-chardev")
    assert "virtserialport,chardev=agent,name=pallet.agent" in opt(a, "-device")


def test_argv_kvm_uses_host_cpu() -> None:
    a = qemu.argv(machine(accel="kvm"))
    assert opt(a, "-accel") == ["kvm"] and opt(a, "-cpu") == ["host"]


def test_argv_block_root_is_read_only() -> None:
    a = qemu.argv(machine(disk="/img/root.erofs"))
    assert "id=root,file=/img/root.erofs,format=raw,if=none,readonly=on" in opt(a, "-drive")
    assert "virtio-blk-device,drive=root" in opt(a, "-device")
    assert "-object" not in a  # no shared memory without virtio-fs


def test_argv_virtiofs_needs_shared_memory_and_modern_mmio() -> None:
    fs = (qemu.VirtioFS("rootfs", "/run/x/fs.sock"),)
    a = qemu.argv(machine(filesystems=fs, memory_mib=300))
    assert "memory-backend=mem" in opt(a, "-M")[0]
    assert "memory-backend-memfd,id=mem,size=300M,share=on" in opt(a, "-object")
    assert "virtio-mmio.force-legacy=false" in opt(a, "-global")
    assert "vhost-user-fs-device,chardev=fs0,tag=rootfs" in opt(a, "-device")
    assert "socket,id=fs0,path=/run/x/fs.sock" in opt(a, "-chardev")


def test_argv_network_and_port_forwards() -> None:
    ports = (PortForward("127.0.0.1", 8080, 80), PortForward("", 5353, 53, "udp"))
    a = qemu.argv(machine(ports=ports))
    assert opt(a, "-netdev") == ["user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp::5353-:53"]
    assert "virtio-net-device,netdev=net0" in opt(a, "-device")
    assert "-netdev" not in qemu.argv(machine(network=False))


def test_kernel_cmdline() -> None:
    c = qemu.kernel_cmdline(root="erofs", hostname="web", tsc_khz=2600000).split()
    assert "console=ttyS0" in c and "quiet" in c and "panic=-1" in c
    assert "tsc_early_khz=2600000" in c and "cryptomgr.notests" in c
    assert "pallet.root=erofs" in c and "pallet.hostname=web" in c and "pallet.net=1" in c
    assert "pallet.fs=1" in qemu.kernel_cmdline(root="erofs", shares=True).split()
    c2 = qemu.kernel_cmdline(root="virtiofs", network=False, probe=True, debug=True).split()
    assert "pallet.net=1" not in c2 and "pallet.probe=1" in c2 and "quiet" not in c2
    assert not any(a.startswith("tsc_early_khz") for a in c2)


def test_virtiofsd_argv_both_daemons() -> None:
    c = qemu.virtiofsd_argv("/usr/lib/qemu/virtiofsd", "/s.sock", "/src")
    assert c == ["/usr/lib/qemu/virtiofsd", "--socket-path=/s.sock", "-o", "source=/src,cache=auto"]
    r = qemu.virtiofsd_argv("/usr/libexec/virtiofsd", "/s.sock", "/src", readonly=True)
    assert "--shared-dir=/src" in r and "--readonly" in r


def test_tsc_from_cpuinfo() -> None:
    assert tsc_khz("processor: 0\ncpu MHz\t\t: 2599.998\n") == 2599998
    assert tsc_khz("processor: 0\n") == 0


def fake_kernel(tmp_path: Path) -> Kernel:
    mods = tmp_path / "modules"
    for m in initramfs.MODULES:
        p = mods / "kernel" / f"{m}.ko"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x7fELF" + m.encode())
    return Kernel(str(tmp_path / "vmlinuz"), "6.1.0-test", str(mods))


def test_initramfs_file_list(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.write_bytes(b"agent")
    entries = initramfs.file_list(fake_kernel(tmp_path), str(agent), busybox=str(agent))
    paths = [e.path for e in entries]
    assert "init" in paths and "bin/busybox" in paths and "bin/pallet-agent" in paths
    assert "lib/modules/virtio_mmio.ko" in paths and "lib/modules/erofs.ko" in paths
    groups = next(e for e in entries if e.path == "lib/modules/order").data.decode().split()
    assert all(g.split(":")[0] in ("core", "blk", "net", "fs", "erofs") for g in groups)
    order = [g.split(":")[1] for g in groups]
    # dependencies load first
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_mmio")
    assert order.index("fuse") < order.index("virtiofs")
    assert order.index("libcrc32c") < order.index("erofs")
    # parents come before children
    for p in paths:
        parent = os.path.dirname(p)
        assert not parent or parent in paths[: paths.index(p)]


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    out: dict[str, tuple[int, bytes]] = {}
    f = io.BytesIO(data)
    while True:
        hdr = f.read(110)
        assert hdr[:6] == b"070701"
        fields = [int(hdr[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = f.read(namesize)[:-1].decode()
        f.read((4 - (110 + namesize) % 4) % 4)
        body = f.read(size)
        f.read((4 - size % 4) % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


def test_cpio_newc_archive(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"12345")
    entries = [
        initramfs.Entry("bin", "dir"),
        initramfs.Entry("bin/f", "file", 0o755, source=str(src)),
        initramfs.Entry("bin/sh", "symlink", 0o777, target="busybox"),
        initramfs.Entry("dev/console", "chr", 0o600, rdev=(5, 1)),
        initramfs.Entry("init", "file", 0o755, data=b"#!/bin/sh\n"),
    ]
    got = parse_newc(initramfs.write_cpio(entries))
    assert got["bin"][0] == 0o040755
    assert got["bin/f"] == (0o100755, b"12345")
    assert got["bin/sh"] == (0o120777, b"busybox")
    assert got["dev/console"][0] == 0o020600
    assert got["init"][1] == b"#!/bin/sh\n"


def test_init_script_reads_pallet_parameters() -> None:
    s = initramfs.init_script()
    assert s.startswith("#!/bin/sh\n")
    for p in ("pallet.root=", "pallet.hostname=", "pallet.net=", "pallet.fs=", "pallet.probe="):
        assert p in s
    assert "exec /bin/pallet-agent" in s
    assert initramfs.AGENT_PORT in s


def test_mkfs_commands() -> None:
    assert rootfs.mkfs_argv("erofs", "mkfs.erofs", "/src", "/out.img") == [
        "mkfs.erofs", "--quiet", "/out.img", "/src"]
    e = rootfs.mkfs_argv("ext4", "mkfs.ext4", "/src", "/out.img", 64 * 1024 * 1024)
    assert e[0] == "mkfs.ext4" and "-d" in e and e[e.index("-d") + 1] == "/src"
    assert e[-2:] == ["/out.img", "65536k"]
    with pytest.raises(Exception, match="invalid"):
        rootfs.mkfs_argv("xfs", "mkfs.xfs", "/s", "/o")


def test_ext4_size_has_room() -> None:
    assert rootfs.ext4_size(100 * 1024 * 1024, 1000) > 125 * 1024 * 1024


@pytest.mark.skipif(not os.path.isdir("/lib/modules"), reason="needs a kernel in /boot and /lib/modules")
def test_find_kernel_on_host() -> None:
    try:
        k = find_kernel()
    except Exception:
        pytest.skip("no guest kernel installed")
    assert os.path.exists(k.image) and os.path.isdir(k.modules)


def test_gzip_is_deterministic(tmp_path: Path) -> None:
    data = initramfs.write_cpio([initramfs.Entry("init", "file", data=b"x")])
    assert gzip.compress(data, mtime=0) == gzip.compress(data, mtime=0)


PVH = b"\x04\x00\x00\x00\x04\x00\x00\x00\x12\x00\x00\x00Xen\x00\x00\x10\x00\x01"


def test_pvh_note() -> None:
    assert has_pvh_note(b"\x7fELF" + b"\0" * 100 + PVH)
    assert not has_pvh_note(b"\x7fELF" + b"\0" * 100)


def test_extract_vmlinux_from_a_gzip_bzimage() -> None:
    import shutil as sh

    if sh.which("gzip") is None:
        pytest.skip("needs gzip")
    elf = b"\x7fELF" + b"\1" * 4096 + PVH
    bz = b"MZ setup code " * 10 + gzip.compress(elf) + b"trailing bytes"
    assert extract_vmlinux(bz) == elf
    assert extract_vmlinux(b"MZ no payload") is None
    # an ELF without the PVH entry cannot be booted that way
    assert extract_vmlinux(b"MZ" + gzip.compress(b"\x7fELF" + b"\1" * 4096)) is None


MOUNTINFO = (
    "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    "50 22 0:42 / /run/c/rootfs rw,relatime - overlay overlay "
    "rw,lowerdir=/s/l2:/s/l1,upperdir=/c/up\\040dir,workdir=/c/work\n"
    "51 22 0:43 / /other rw - tmpfs tmpfs rw\n"
)


def test_find_overlay_in_mountinfo() -> None:
    ov = rootfs.find_overlay(MOUNTINFO, "/run/c/rootfs")
    assert ov == rootfs.Overlay(("/s/l2", "/s/l1"), "/c/up dir")
    assert rootfs.find_overlay(MOUNTINFO, "/other") is None
    assert rootfs.find_overlay(MOUNTINFO, "/nowhere") is None
    hidden = MOUNTINFO + "60 50 0:50 / /run/c/rootfs rw - tmpfs tmpfs rw\n"
    assert rootfs.find_overlay(hidden, "/run/c/rootfs") is None


def test_upper_files(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "added").write_text("x")
    os.chmod(tmp_path / "etc" / "added", 0o600)
    (tmp_path / "big").write_bytes(b"0" * 2048)
    (tmp_path / "link").symlink_to("etc/added")
    got = rootfs.upper_files(str(tmp_path), limit_each=1024)
    assert got == [("/etc/added", b"x", 0o600)]
    assert rootfs.upper_files(str(tmp_path / "missing")) == []


def test_missing_kernel_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pallet.errors import Unavailable

    monkeypatch.delenv("PALLET_VM_KERNEL", raising=False)
    with pytest.raises(Unavailable, match="apt-get install linux-image-cloud-amd64"):
        find_kernel(boot=str(tmp_path), modules_root=str(tmp_path))
    (tmp_path / "vmlinuz-6.1.0-9-cloud-amd64").write_bytes(b"k")
    (tmp_path / "vmlinuz-6.1.0-10-cloud-amd64").write_bytes(b"k")
    for r in ("6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64"):
        (tmp_path / r / "kernel").mkdir(parents=True)
    assert find_kernel(boot=str(tmp_path), modules_root=str(tmp_path)).release == "6.1.0-10-cloud-amd64"
    monkeypatch.setenv("PALLET_VM_KERNEL", str(tmp_path / "nope"))
    with pytest.raises(Unavailable, match="PALLET_VM_KERNEL"):
        find_kernel(boot=str(tmp_path), modules_root=str(tmp_path))


def test_accelerator_choice_forced_or_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from pallet.vm import accel

    k = Kernel("/boot/vmlinuz-x", "x", "/lib/modules/x")
    monkeypatch.setenv("PALLET_VM_ACCEL", "tcg")
    a = accel.choose(tmp_path, "/nonexistent/qemu", k, "/nonexistent/initrd")
    assert a.name == "tcg" and "software emulation (TCG)" in a.notice
    monkeypatch.delenv("PALLET_VM_ACCEL")
    (tmp_path / "accel.json").write_text(json.dumps(
        {"boot_id": accel._boot_id(), "kernel": "x", "name": "kvm", "reason": "probed"}))
    b = accel.choose(tmp_path, "/nonexistent/qemu", k, "/nonexistent/initrd")  # no probe: cached
    assert b == accel.Accel("kvm", "probed") and "KVM" in b.notice


def test_kvm_probe_without_dev_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    from pallet.vm import accel

    monkeypatch.setattr(accel.os.path, "exists", lambda p: False)
    ok, why = accel.probe_kvm("/q", Kernel("/k", "x", "/m"), "/i")
    assert not ok and "/dev/kvm does not exist" in why


def test_tap_netdev_in_the_namespace() -> None:
    a = qemu.argv(machine(tap="pvmtap0", mac="02:00:00:00:00:05", netns="/run/netns/x",
                          ports=(PortForward("", 8080, 80),)))
    assert a[:3] == ["nsenter", "--net=/run/netns/x", "--"]
    assert opt(a, "-netdev") == ["tap,id=net0,ifname=pvmtap0,script=no,downscript=no"]
    assert "virtio-net-device,netdev=net0,mac=02:00:00:00:00:05" in opt(a, "-device")
    c = qemu.kernel_cmdline(root="erofs", address="10.88.0.5/16", gateway="10.88.0.1").split()
    assert "pallet.ip=10.88.0.5/16" in c and "pallet.gw=10.88.0.1" in c


def test_tap_mirroring_commands() -> None:
    from pallet.vm import netdev

    cmds = netdev.tap_commands("eth0", "pvmtap0", 1450)
    assert cmds[0] == ["ip", "tuntap", "add", "dev", "pvmtap0", "mode", "tap"]
    assert ["ip", "link", "set", "dev", "pvmtap0", "mtu", "1450", "up"] in cmds
    filters = [c for c in cmds if c[:2] == ["tc", "filter"]]
    # both directions, each redirecting to the other device
    assert [(f[4], f[-1]) for f in filters] == [("eth0", "pvmtap0"), ("pvmtap0", "eth0")]
    assert netdev.in_netns("/run/netns/x", ["ip", "link"]) == ["nsenter", "--net=/run/netns/x", "--", "ip", "link"]
    runs = netdev.batches(cmds)  # two processes for six commands
    assert [argv for argv, _ in runs] == [["ip", "-batch", "-"], ["tc", "-batch", "-"]]
    assert runs[0][1].splitlines()[0] == "tuntap add dev pvmtap0 mode tap"
    assert len(runs[1][1].splitlines()) == 4
    reads = netdev.batches([["ip", "-j", "addr", "show"], ["ip", "-j", "route", "show", "default"]])
    assert reads == [(["ip", "-j", "-batch", "-"], "addr show\nroute show default\n")]


def test_guest_settings_from_ip_json() -> None:
    from pallet.errors import RuntimeFailure
    from pallet.vm import netdev

    addr = ('[{"ifname":"eth0","mtu":1500,"address":"b2:aa:6a:fe:22:cf","addr_info":['
            '{"family":"inet6","local":"fe80::1","prefixlen":64},'
            '{"family":"inet","local":"10.89.0.7","prefixlen":16}]}]')
    route = '[{"dst":"default","gateway":"10.89.0.1","dev":"eth0"}]'
    assert netdev.parse_ip_json(addr, route) == netdev.GuestNet("10.89.0.7/16", "10.89.0.1", "b2:aa:6a:fe:22:cf", 1500)
    assert netdev.parse_ip_json(addr, "[]").gateway == ""
    with pytest.raises(RuntimeFailure, match="no IPv4"):
        netdev.parse_ip_json('[{"ifname":"eth0","addr_info":[]}]', "[]")
    with pytest.raises(RuntimeFailure, match="no eth0"):
        netdev.parse_ip_json("[]", "[]")
