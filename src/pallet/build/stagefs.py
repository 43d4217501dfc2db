"""A build state's filesystem: its layers unpacked (the store's snapshots), paths looked up
through them (whiteouts honoured), an overlay of them mounted for RUN and ``COPY --from``,
and a COPY plan written as a layer.  Only steps that miss the cache come here."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from pallet.oci import mediatypes as mt
from pallet.oci.manifest import Descriptor, Manifest

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from pallet.build.builder import _State
    from pallet.build.copy import Plan
    from pallet.store import Image, Store


def image_of(st: _State) -> Image:
    """The state as an image of the store (for its snapshots)."""
    from pallet.store import Image

    cfg_desc = Descriptor(mt.OCI_CONFIG, st.image_id or "sha256:" + "0" * 64, 0)
    m = Manifest(media_type=mt.OCI_MANIFEST, config=cfg_desc, layers=tuple(st.layers))
    return Image(id=st.image_id, manifest_digest="", manifest=m, config=st.config)


def lowers(store: Store, st: _State) -> list[Path]:
    """The state's layers unpacked, top first."""
    if not st.layers:
        return []
    return store.snapshots.ensure(image_of(st))


def lookup(store: Store, st: _State) -> Callable[[str], os.stat_result | None]:
    """``stat`` of a path of the state's filesystem (layers unpacked on the first call)."""
    found: list[Path] | None = None

    def look(rel: str) -> os.stat_result | None:
        nonlocal found
        if found is None:
            found = lowers(store, st)
        return stat_in_layers(found, rel)

    return look


def resolver(store: Store, st: _State) -> Callable[[str], tuple[str, os.stat_result | None]]:
    """:func:`resolve_in_layers` over the state's layers (unpacked on the first call)."""
    found: list[Path] | None = None

    def resolve(rel: str) -> tuple[str, os.stat_result | None]:
        nonlocal found
        if found is None:
            found = lowers(store, st)
        return resolve_in_layers(found, rel)

    return resolve


OPAQUE_XATTR = "trusted.overlay.opaque"
MAX_SYMLINKS = 40  # the kernel's limit (ELOOP)


def stat_in_layers(layers: list[Path], rel: str) -> os.stat_result | None:
    """``stat`` of an image path through unpacked layers (top first), as seen in a container.

    Each component is looked up from the top layer down: a whiteout hides it and what is
    below, an opaque directory hides the lower layers' contents, and a symbolic link is
    followed inside the image (an absolute target starts at the image's root), never on
    the host.  None when the path does not exist; a dangling link named by the path itself
    gives the link's own ``lstat`` (it exists, as an entry).
    """
    _, found, link = _walk(layers, rel)
    return found if found is not None else link


def resolve_in_layers(layers: list[Path], rel: str) -> tuple[str, os.stat_result | None]:
    """The path ``rel`` names in the image, its symbolic links followed inside the image
    (Docker's "follow symlink in scope"), and its ``stat`` (None when it does not exist:
    the missing components are kept as written)."""
    path, found, _ = _walk(layers, rel)
    return path, found


def _walk(layers: list[Path], rel: str) -> tuple[str, os.stat_result | None, os.stat_result | None]:
    """(resolved path, its stat or None, the lstat of ``rel``'s own last component if a link).

    ``rel`` is cleaned first, as Docker does (``a/../b`` is ``b``); ``..`` in link targets
    is resolved against where the link leads.
    """
    parts = [p for p in _lexical(rel.split("/")).split("/") if p]
    done: list[str] = []
    depth = len(layers)  # layers below an opaque directory are not looked into
    hops = 0
    result: os.stat_result | None = None
    link: os.stat_result | None = None
    while parts:
        name = parts.pop(0)
        if name == "..":
            if done:
                done.pop()
            depth, result = len(layers), None  # re-resolved from the root below
            parts = done + parts
            done = []
            continue
        cur = "/".join((*done, name))
        hit = _top_entry(layers[:depth], cur)
        if hit is None or hops > MAX_SYMLINKS:
            return _lexical([*done, name, *parts]), None, link
        s, index = hit
        if stat.S_ISLNK(s.st_mode):
            if not parts and link is None:
                link = s
            hops += 1
            target = os.readlink(layers[index] / cur)
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            if target.startswith("/"):
                done = []
            depth, result = len(layers), None
            parts = done + parts
            done = []
            continue
        done.append(name)
        result = s
        if stat.S_ISDIR(s.st_mode) and _opaque(layers[index] / cur):
            depth = min(depth, index + 1)
    if result is None:  # the root itself
        for layer in layers:
            with contextlib.suppress(OSError):
                return "", os.stat(layer), link
        return "", None, link
    return "/".join(done), result, link


def _lexical(parts: list[str]) -> str:
    out: list[str] = []
    for p in parts:
        if p == "..":
            if out:
                out.pop()
        elif p not in ("", "."):
            out.append(p)
    return "/".join(out)


def _top_entry(layers: list[Path], rel: str) -> tuple[os.stat_result, int] | None:
    for i, layer in enumerate(layers):
        try:
            s = os.lstat(layer / rel)
        except OSError:
            continue
        if stat.S_ISCHR(s.st_mode) and s.st_rdev == 0:
            return None  # whiteout
        return s, i
    return None


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


@contextlib.contextmanager
def mounted(store: Store, work_dir: Path, st: _State, writable: bool) -> Iterator[tuple[Path, Path]]:
    """The state's filesystem as an overlay: (rootfs, upper dir)."""
    tmp = work_dir / "tmp" / os.urandom(8).hex()
    tmp.mkdir(parents=True)
    rootfs, upper, work = tmp / "rootfs", tmp / "upper", tmp / "work"
    done = False
    try:
        store.snapshots.mount(lowers(store, st), upper, work, rootfs, readonly=not writable)
        done = True
        yield rootfs, upper
    finally:
        if done:
            with contextlib.suppress(OSError):
                store.snapshots.unmount(rootfs)
        if not done or not os.path.ismount(rootfs):
            from pallet.linux.mounts import remove_tree

            remove_tree(tmp)


def write_plan(store: Store, p: Plan) -> Descriptor:
    """A COPY/ADD plan as a layer blob."""
    from pallet.build.copy import write_layer

    with store.blobs.writer() as w:
        write_layer(p, w)  # type: ignore[arg-type]
    return Descriptor(mt.OCI_LAYER, w.digest, w.size)
