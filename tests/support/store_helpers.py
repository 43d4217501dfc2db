"""Build images directly in a store (no CLI): layers from in-memory tarballs."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from pallet.oci import mediatypes as mt
from pallet.oci.image import ContainerConfig, History, ImageConfig
from pallet.oci.manifest import Descriptor, Manifest
from pallet.oci.reference import parse
from pallet.store import Image, Store


def tar_of(files: dict[str, bytes | str | None], dirs: tuple[str, ...] = ()) -> bytes:
    """A tar with regular files (bytes), symlinks (str target) or empty files (None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in dirs:
            ti = tarfile.TarInfo(d)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            tf.addfile(ti)
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            if isinstance(data, str):
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                tf.addfile(ti)
            else:
                b = data or b""
                ti.size = len(b)
                ti.mode = 0o644
                tf.addfile(ti, io.BytesIO(b))
    return buf.getvalue()


def make_image(
    store: Store,
    layers: list[bytes],
    ref: str | None = None,
    created: str = "2024-01-01T00:00:00Z",
    cmd: tuple[str, ...] = ("sh",),
    history: list[History] | None = None,
) -> Image:
    descs = []
    diff_ids = []
    for data in layers:
        d = store.blobs.put(data)
        descs.append(Descriptor(mt.OCI_LAYER, d, len(data)))
        diff_ids.append(d)
    cfg = ImageConfig(
        architecture="amd64",
        os="linux",
        created=created,
        config=ContainerConfig(cmd=cmd),
        diff_ids=tuple(diff_ids),
        history=tuple(history or [History(created=created, created_by=f"layer {i}") for i in range(len(layers))]),
    )
    cb = cfg.to_json()
    cd = store.blobs.put(cb)
    m = Manifest(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, cd, len(cb)), tuple(descs))
    return store.images.add(m.to_json(), mt.OCI_MANIFEST, [parse(ref)] if ref else [])


def new_store(root: Path) -> Store:
    return Store(root / "store")
