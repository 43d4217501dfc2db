"""Parse Docker's ``-v``, ``--mount`` and ``--tmpfs`` into :class:`MountSpec` (pure)."""

from __future__ import annotations

import os
import re

from pallet.engine.state import MountSpec
from pallet.errors import InvalidArgument

_VOLUME_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"  # compiled on first use (re caches it)
_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}


def _bad_bind_source(src: str) -> InvalidArgument:
    return InvalidArgument(
        f'invalid mount config for type "bind": bind source path does not exist: {src}'
    )


def parse_volume(spec: str, check_source: bool = True) -> MountSpec:
    """``-v [SRC:]DST[:OPTS]``: a bind mount (absolute SRC), a named or an anonymous volume."""
    parts = spec.split(":")
    if not spec or len(parts) > 3 or any(p == "" for p in parts):
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        src, dst, opts = "", parts[0], ""
    elif len(parts) == 2:
        if parts[1].startswith("/"):
            src, dst, opts = parts[0], parts[1], ""
        else:
            src, dst, opts = "", parts[0], parts[1]
    else:
        src, dst, opts = parts
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': mount path must be absolute")
    if dst == "/":
        raise InvalidArgument(f"invalid volume specification: '{spec}': destination can't be '/'")
    ro = False
    extra: list[str] = []
    nocopy = False
    for o in filter(None, opts.split(",")):
        if o in ("ro", "rw"):
            ro = o == "ro"
        elif o in _PROPAGATION:
            extra.append(o)
        elif o in ("z", "Z"):
            continue
        elif o == "nocopy":
            nocopy = True
        else:
            raise InvalidArgument(f"invalid mode: {o}")
    dst = os.path.normpath(dst)
    if not src:
        return MountSpec("volume", dst, "", ro, tuple(extra), anonymous=True, nocopy=nocopy)
    if src.startswith("/") or src.startswith("."):
        if not src.startswith("/"):
            src = os.path.abspath(src)
        if check_source and not os.path.exists(src):
            raise _bad_bind_source(src)
        return MountSpec("bind", dst, os.path.normpath(src), ro, tuple(extra))
    if not re.match(_VOLUME_NAME, src):
        raise InvalidArgument(
            f'create {src}: "{src}" includes invalid characters for a local volume name, '
            "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
            "directory, use absolute path"
        )
    return MountSpec("volume", dst, src, ro, tuple(extra), nocopy=nocopy)


def _truthy(v: str | None, key: str) -> bool:
    if v is None or v.lower() in ("1", "true"):
        return True
    if v.lower() in ("0", "false"):
        return False
    raise InvalidArgument(f"invalid value for {key}: {v}")


def parse_mount(spec: str, check_source: bool = True) -> MountSpec:
    """``--mount type=bind|volume|tmpfs,source=...,target=...,readonly,...``."""
    kv: dict[str, str | None] = {}
    for field in spec.split(","):
        if not field:
            continue
        k, eq, v = field.partition("=")
        kv[k.strip().lower()] = v if eq else None
    typ: str = kv.pop("type", None) or "volume"
    src: str = kv.pop("source", None) or kv.pop("src", None) or ""
    dst: str = kv.pop("destination", None) or kv.pop("dst", None) or kv.pop("target", None) or ""
    ro = False
    for k in ("readonly", "ro"):
        if k in kv:
            ro = _truthy(kv.pop(k), k)
    opts: list[str] = []
    nocopy = False
    if typ not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: unknown mount type: {typ}")
    for k, val in kv.items():
        if k == "bind-propagation" and typ == "bind" and val in _PROPAGATION:
            opts.append(val)
        elif k == "volume-nocopy" and typ == "volume":
            nocopy = _truthy(val, k)
        elif k == "tmpfs-size" and typ == "tmpfs" and val:
            opts.append(f"size={val}")
        elif k == "tmpfs-mode" and typ == "tmpfs" and val:
            opts.append(f"mode={val}")
        elif k in ("consistency", "bind-nonrecursive", "volume-driver"):
            continue
        else:
            raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: unexpected key '{k}'")
    if not dst:
        raise InvalidArgument(f'invalid mount config for type "{typ}": field Target must not be empty')
    if not dst.startswith("/"):
        raise InvalidArgument(
            f"invalid mount config for type \"{typ}\": invalid mount path: '{dst}' mount path must be absolute"
        )
    dst = os.path.normpath(dst)
    if typ == "bind":
        if not src:
            raise InvalidArgument('invalid mount config for type "bind": field Source must not be empty')
        src = os.path.abspath(src)
        if check_source and not os.path.exists(src):
            raise _bad_bind_source(src)
        return MountSpec("bind", dst, src, ro, tuple(opts))
    if typ == "tmpfs":
        if src:
            raise InvalidArgument('invalid mount config for type "tmpfs": field Source must be empty')
        return MountSpec("tmpfs", dst, "", ro, tuple(opts))
    if src and not re.match(_VOLUME_NAME, src):
        raise InvalidArgument(f'invalid mount config for type "volume": invalid volume name: {src}')
    return MountSpec("volume", dst, src, ro, tuple(opts), anonymous=not src, nocopy=nocopy)


def parse_tmpfs(spec: str) -> MountSpec:
    """``--tmpfs /path[:opt,opt]``."""
    dst, _, opts = spec.partition(":")
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid tmpfs mount: '{spec}': mount path must be absolute")
    ro = False
    out = []
    for o in filter(None, opts.split(",")):
        if o in ("ro", "rw"):
            ro = o == "ro"
        else:
            out.append(o)
    return MountSpec("tmpfs", os.path.normpath(dst), "", ro, tuple(out))


def check_duplicates(mounts: list[MountSpec]) -> None:
    seen: set[str] = set()
    for m in mounts:
        if m.destination in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.destination}")
        seen.add(m.destination)
