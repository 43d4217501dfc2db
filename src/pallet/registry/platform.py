"""The host's platform and the choice of one manifest from an index or manifest list."""

from __future__ import annotations

import platform as _platform

from pallet.errors import NotFound
from pallet.oci.manifest import Descriptor, Index, Platform

# uname machine -> (GOARCH, variant), the names images use
_MACHINES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""),
}


def host_platform(machine: str | None = None) -> Platform:
    m = machine or _platform.machine()
    arch, variant = _MACHINES.get(m, (m, ""))
    return Platform(architecture=arch, os="linux", variant=variant)


def normalize(p: Platform) -> Platform:
    """Fill in defaults the way images write them (arm64 is arm64/v8)."""
    arch, variant = p.architecture.lower(), p.variant.lower()
    if arch in ("x86_64", "x86-64"):
        arch = "amd64"
    if arch == "aarch64":
        arch = "arm64"
    if arch == "arm64" and not variant:
        variant = "v8"
    if arch == "arm" and not variant:
        variant = "v7"
    return Platform(architecture=arch, os=p.os.lower(), variant=variant, os_version=p.os_version)


def matches(have: Platform, want: Platform) -> bool:
    h, w = normalize(have), normalize(want)
    if h.os != w.os or h.architecture != w.architecture:
        return False
    return not (w.variant and h.variant and h.variant != w.variant)


def select(index: Index, want: Platform) -> Descriptor:
    """The manifest of ``index`` for ``want``; an exact variant beats a missing one."""
    best: Descriptor | None = None
    for d in index.manifests:
        if d.platform is None or not matches(d.platform, want):
            continue
        if normalize(d.platform).variant == normalize(want).variant:
            return d
        best = best or d
    if best is None:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    return best
