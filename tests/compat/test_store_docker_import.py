"""Differential: ``pallet import`` and ``docker import`` of the same tarball agree."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import needs_busybox
from tests.support.cli import Pallet

pytestmark = needs_busybox

CHANGES = [
    'CMD ["sh", "-c", "echo hi"]',
    "ENTRYPOINT /bin/env",
    "ENV A=1 B=two",
    "EXPOSE 80 53/udp",
    "LABEL maintainer=me",
    "USER app",
    "VOLUME /data",
    "WORKDIR /srv",
    "ONBUILD RUN true",
]
FIELDS = ["Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "User", "Volumes", "WorkingDir", "OnBuild"]


def test_import_matches_docker(pallet: Pallet, busybox_tar: Path, dockerd: object) -> None:
    args = [a for c in CHANGES for a in ("--change", c)]
    pallet.ok("import", *args, "-m", "same", str(busybox_tar), "cmp:1")
    ours = json.loads(pallet.ok("image", "inspect", "cmp:1"))[0]
    d = dockerd.docker("import", *args, "-m", "same", str(busybox_tar), "pallet-cmp:1")  # type: ignore[attr-defined]
    try:
        theirs = json.loads(dockerd.docker("image", "inspect", "pallet-cmp:1").stdout)[0]  # type: ignore[attr-defined]
    finally:
        dockerd.docker("rmi", "pallet-cmp:1", check=False)  # type: ignore[attr-defined]
    assert d.returncode == 0
    # the layer is the tarball as given: same DiffID as Docker computes
    assert ours["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
    for f in FIELDS:
        assert ours["Config"].get(f) == theirs["Config"].get(f), f
    assert ours["Comment"] == theirs["Comment"] == "same"
    assert ours["Os"] == theirs["Os"] and ours["Architecture"] == theirs["Architecture"]
    assert abs(ours["Size"] - theirs["Size"]) < 0.1 * theirs["Size"]
