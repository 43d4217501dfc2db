"""The cgroup v2 device filter: OCI device rules compiled to an eBPF program.

cgroup v2 has no devices.allow/deny files; a BPF_PROG_TYPE_CGROUP_DEVICE
program attached to the cgroup decides every open and mknod of a device node.
Its context is ``struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32
minor; }`` where ``access_type`` is ``(access << 16) | type`` (type: 1 block,
2 char; access: 1 mknod, 2 read, 4 write); it returns 1 to allow, 0 to deny.

The rules keep their v1 meaning: later rules override earlier ones, so they
are emitted last-first and the first match decides; nothing matched is
denied.
"""

from __future__ import annotations

import struct

from pallet.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# opcodes (linux/bpf.h, linux/bpf_common.h)
_LDXW = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MOV64_X = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X
_MOV64_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_EXIT = 0x95  # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def access_mask(access: str) -> int:
    mask = 0
    for ch in access or "rwm":
        if ch not in _ACCESS:
            raise InvalidArgument(f"invalid device access {access!r}")
        mask |= _ACCESS[ch]
    return mask


def program(rules: Iterable[Mapping[str, Any]]) -> bytes:
    """The eBPF instructions enforcing ``rules`` (OCI ``linux.resources.devices``)."""
    out = [
        _insn(_LDXW, dst=2, src=1, off=0),  # r2 = access_type
        _insn(_AND32_K, dst=2, imm=0xFFFF),  # r2 = type
        _insn(_LDXW, dst=3, src=1, off=0),
        _insn(_RSH32_K, dst=3, imm=16),  # r3 = access
        _insn(_LDXW, dst=4, src=1, off=4),  # r4 = major
        _insn(_LDXW, dst=5, src=1, off=8),  # r5 = minor
    ]
    for rule in reversed(list(rules)):
        block: list[tuple[int, int, int, int]] = []  # (code, dst, src, imm) of the tests
        typ = rule.get("type") or "a"
        if typ not in ("a", "b", "c"):
            raise InvalidArgument(f"invalid device type {typ!r}")
        if typ != "a":
            block.append((_JNE_K, 2, 0, _TYPES[typ]))
        mask = access_mask(rule.get("access") or "rwm")
        if mask != 7:
            # a request matches when it asks for nothing outside the rule's access
            block.append((_MOV64_X, 1, 3, 0))
            block.append((_AND32_K, 1, 0, ~mask & 7))
            block.append((_JNE_K, 1, 0, 0))
        if typ != "a":
            major, minor = rule.get("major"), rule.get("minor")
            if major is not None and major >= 0:
                block.append((_JNE_K, 4, 0, int(major)))
            if minor is not None and minor >= 0:
                block.append((_JNE_K, 5, 0, int(minor)))
        n = len(block) + 2  # the tests, then "r0 = verdict; exit"
        for i, (code, dst, src, imm) in enumerate(block):
            off = n - i - 1 if code == _JNE_K else 0  # a failed test skips the rest of the block
            out.append(_insn(code, dst=dst, src=src, off=off, imm=imm))
        out.append(_insn(_MOV64_K, dst=0, imm=1 if rule.get("allow") else 0))
        out.append(_insn(_EXIT))
        if not block:
            # matches every request: what the earlier rules say can never matter (and the
            # verifier refuses unreachable instructions)
            return b"".join(out)
    out.append(_insn(_MOV64_K, dst=0, imm=0))
    out.append(_insn(_EXIT))
    return b"".join(out)


def run(prog: bytes, dev_type: str, major: int, minor: int, access: str) -> bool:
    """Interpret ``prog`` for one request (the subset of eBPF :func:`program` emits):
    for tests and for a fake kernel."""
    regs = [0] * 11
    ctx = ((access_mask(access) << 16) | _TYPES[dev_type], major, minor)
    insns = [struct.unpack("<BBhi", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    pc = 0
    while True:
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == _LDXW:
            regs[dst] = ctx[off // 4]
        elif code == _AND32_K:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == _RSH32_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == _MOV64_X:
            regs[dst] = regs[src]
        elif code == _MOV64_K:
            regs[dst] = imm
        elif code == _JNE_K:
            if regs[dst] != imm:
                pc += off
        elif code == _EXIT:
            return regs[0] == 1
        else:
            raise ValueError(f"unexpected opcode {code:#x}")


def attach(cgroup_dir: str, prog: bytes) -> None:
    """Load ``prog`` and attach it to the cgroup at ``cgroup_dir``, replacing its previous one."""
    import os

    from pallet.linux import syscalls

    prog_fd = syscalls.bpf_load_cgroup_device_program(prog)
    try:
        cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            syscalls.bpf_attach_cgroup_device(cg, prog_fd)
        finally:
            os.close(cg)
    finally:
        os.close(prog_fd)
