"""Docker's default seccomp profile, and Docker's profile format turned into the OCI form.

Docker's profile format (``--security-opt seccomp=PROFILE.json``) is the OCI
``linux.seccomp`` object plus conditions: each syscall rule may carry
``includes``/``excludes`` filters on the container's capabilities (its
bounding set), the machine's architecture and the kernel's version, and
``archMap`` lists the sub-architectures of each native one.  Converting a
profile for one container evaluates those conditions and drops them, leaving a
plain OCI object any runtime (pallet's, runc, crun) loads.

``seccomp_docker_default.json`` beside this module is Docker's own default
profile (from the moby/profiles project, Apache-2.0), kept verbatim as data:
an allowlist whose default action is ``SCMP_ACT_ERRNO`` with EPERM, so that,
without the matching capability, mount, reboot, kexec_load, init_module, bpf,
keyctl, perf_event_open, unshare, clone/clone3 with new namespaces (and
therefore new user namespaces), ptrace (before Linux 4.8), settimeofday...
fail with "Operation not permitted".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

_DATA = "seccomp_docker_default.json"

# platform.machine() -> the architecture names Docker's profile uses in "arches"
_MACHINE_TO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
    "loongarch64": "loong64",
}
# Docker's arch name -> the OCI SCMP_ARCH_ constant of the native architecture
_ARCH_TO_SCMP = {
    "amd64": "SCMP_ARCH_X86_64",
    "x86": "SCMP_ARCH_X86",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "ppc64": "SCMP_ARCH_PPC64",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "mips64": "SCMP_ARCH_MIPS64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
}

_OCI_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata")


def native_arch(machine: str | None = None) -> str:
    m = machine or os.uname().machine
    return _MACHINE_TO_ARCH.get(m, m)


def default_docker_profile() -> dict[str, Any]:
    """Docker's default profile, in Docker's format (a fresh copy)."""
    with open(os.path.join(os.path.dirname(__file__), _DATA)) as f:
        data: dict[str, Any] = json.load(f)
    return data


def default_profile(
    capabilities: Iterable[str], *, arch: str | None = None, kernel: str | None = None
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object Docker gives a container whose bounding
    capability set is ``capabilities``."""
    out = to_oci(default_docker_profile(), capabilities, arch=arch, kernel=kernel)
    assert out is not None
    return out


def parse_profile(text: str | bytes) -> dict[str, Any]:
    """Decode a profile file's content, with Docker's error wording."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"Decoding seccomp profile failed: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("Decoding seccomp profile failed: not a JSON object")
    return data


def to_oci(
    profile: Mapping[str, Any],
    capabilities: Iterable[str],
    *,
    arch: str | None = None,
    kernel: str | None = None,
) -> dict[str, Any] | None:
    """Evaluate a Docker-format profile for one container; ``None`` when the
    profile disables seccomp (no default action and no rules).  A profile
    already in the OCI form passes through (its keys are a subset)."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'"
        )
    caps = {c if c.startswith("CAP_") else f"CAP_{c}" for c in (x.upper() for x in capabilities)}
    arch = arch or native_arch()
    release = kernel or os.uname().release
    out: dict[str, Any] = {k: profile[k] for k in _OCI_KEYS if profile.get(k) not in (None, [], "")}
    if profile.get("archMap"):
        native = _ARCH_TO_SCMP.get(arch)
        for entry in profile["archMap"]:
            if entry.get("architecture") == native:
                out["architectures"] = [native, *(entry.get("subArchitectures") or [])]
                break
    rules: list[dict[str, Any]] = []
    for call in profile.get("syscalls") or []:
        if call.get("name") and call.get("names"):
            raise InvalidArgument(
                "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'"
            )
        names = call.get("names") or ([call["name"]] if call.get("name") else [])
        if not names:
            continue
        if not _applies(call, caps, arch, release):
            continue
        rule = {"names": list(names), "action": call.get("action")}
        if not rule["action"]:
            raise InvalidArgument(f"seccomp rule for {names[0]} has no action")
        for k in ("errnoRet", "args"):
            if call.get(k) not in (None, []):
                rule[k] = call[k]
        rules.append(rule)
    if rules:
        out["syscalls"] = rules
    return out


def _applies(call: Mapping[str, Any], caps: set[str], arch: str, kernel: str) -> bool:
    exc = call.get("excludes") or {}
    if arch in (exc.get("arches") or []):
        return False
    if any(c in caps for c in exc.get("caps") or []):
        return False
    if exc.get("minKernel") and kernel_at_least(kernel, exc["minKernel"]):
        return False
    inc = call.get("includes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if any(c not in caps for c in inc.get("caps") or []):
        return False
    return not (inc.get("minKernel") and not kernel_at_least(kernel, inc["minKernel"]))


def kernel_at_least(release: str, wanted: str) -> bool:
    """``release`` (uname -r, e.g. "6.1.0-18-amd64") >= ``wanted`` ("4.8")."""

    def parse(v: str) -> tuple[int, int]:
        parts = v.split("-", 1)[0].split(".")
        try:
            return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        except ValueError:
            raise InvalidArgument(f"invalid kernel version {v!r}") from None

    return parse(release) >= parse(wanted)
