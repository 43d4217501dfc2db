"""The store is an OCI image layout other tools read as it is (skopeo, umoci)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from tests.conftest import needs_busybox, needs_tool
from tests.support.cli import Pallet

pytestmark = [needs_busybox, needs_tool("skopeo")]


def test_skopeo_reads_the_store(pallet: Pallet, pallet_root: Path, busybox_image: str, tmp_path: Path) -> None:
    store = pallet_root / "store"
    ref = f"oci:{store}:docker.io/library/busybox:test"
    info = json.loads(subprocess.run(["skopeo", "inspect", ref], capture_output=True, text=True,
                                     check=True).stdout)
    d = json.loads(pallet.ok("image", "inspect", busybox_image))[0]
    assert info["Layers"] == d["RootFS"]["Layers"]  # uncompressed layers: digest == DiffID
    out = tmp_path / "copy"
    subprocess.run(["skopeo", "copy", ref, f"dir:{out}"], capture_output=True, check=True)
    layer = out / d["RootFS"]["Layers"][0].split(":", 1)[1]
    assert "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest() == d["RootFS"]["Layers"][0]


@needs_tool("umoci")
def test_umoci_unpacks_a_copy(pallet: Pallet, pallet_root: Path, busybox_image: str, tmp_path: Path) -> None:
    store = pallet_root / "store"
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", f"oci:{store}:docker.io/library/busybox:test", f"oci:{layout}:bb"],
                   capture_output=True, check=True)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:bb", str(bundle)], capture_output=True, check=True)
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"]
