"""Docker's default config.json, built without root."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from pallet.oci.capabilities import mask
from pallet.oci.spec import default_spec

DOCKER_CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}


def spec(**kw: object) -> dict:  # type: ignore[type-arg]
    return default_spec(["sh"], env=["PATH=/bin"], **kw)  # type: ignore[arg-type]


def test_capabilities_are_dockers_fourteen() -> None:
    caps = spec()["process"]["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        assert set(caps[k]) == DOCKER_CAPS and len(caps[k]) == 14
    assert not caps.get("inheritable") and not caps.get("ambient")
    # the mask /proc/self/status shows in a default Docker container
    assert f"{mask(caps['bounding']):016x}" == "00000000a80425fb"


def test_masked_and_readonly_paths_as_docker() -> None:
    linux = spec()["linux"]
    assert linux["maskedPaths"] == [
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/sys/firmware", "/sys/devices/virtual/powercap",
    ]
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def test_default_mounts() -> None:
    mounts = {m["destination"]: m for m in spec()["mounts"]}
    assert set(mounts) == {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}
    assert mounts["/dev/shm"]["type"] == "tmpfs" and "size=65536k" in mounts["/dev/shm"]["options"]
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert "newinstance" in mounts["/dev/pts"]["options"]
    assert mounts["/dev"]["type"] == "tmpfs" and "mode=755" in mounts["/dev"]["options"]


def test_namespaces_and_network_path() -> None:
    kinds = [n["type"] for n in spec()["linux"]["namespaces"]]
    assert sorted(kinds) == ["cgroup", "ipc", "mount", "network", "pid", "uts"]
    ns = spec(netns_path="/run/netns/x")["linux"]["namespaces"]
    assert {"type": "network", "path": "/run/netns/x"} in ns
    assert [n["type"] for n in ns].count("network") == 1
    ns = spec(namespaces=("pid", "mount"))["linux"]["namespaces"]
    assert ns == [{"type": "pid"}, {"type": "mount"}]


def test_process_fields() -> None:
    p = spec(uid=1000, gid=100, additional_gids=(10, 20), cwd="/w", terminal=True,
             no_new_privileges=True, oom_score_adj=500)["process"]
    assert p["user"] == {"uid": 1000, "gid": 100, "additionalGids": [10, 20]}
    assert p["cwd"] == "/w" and p["terminal"] is True
    assert p["noNewPrivileges"] is True and p["oomScoreAdj"] == 500
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    n = 1048576 if hard == resource.RLIM_INFINITY else min(hard, 1048576)
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": n, "soft": n}]
    assert spec(nofile=4096)["process"]["rlimits"][0]["soft"] == 4096
    assert p["args"] == ["sh"] and p["env"] == ["PATH=/bin"]


def test_root_and_hostname() -> None:
    s = spec(readonly_rootfs=True, rootfs="/abs/rootfs", hostname="web")
    assert s["root"] == {"path": "/abs/rootfs", "readonly": True}
    assert s["hostname"] == "web"
    assert spec()["root"] == {"path": "rootfs", "readonly": False}


def test_builder_returns_fresh_data() -> None:
    a, b = spec(), spec()
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["mounts"].pop()
    assert "CAP_SYS_ADMIN" not in b["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" not in a["process"]["capabilities"]["effective"]
    assert len(b["mounts"]) == 7
    json.dumps(a)  # plain JSON data


@pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc to compare with `runc spec`")
def test_same_structure_as_runc_spec(tmp_path: Path) -> None:
    subprocess.run(["runc", "spec"], cwd=tmp_path, check=True)
    ref = json.loads((tmp_path / "config.json").read_text())
    ours = spec()
    assert set(ref) <= set(ours)
    assert set(ref["process"]) <= set(ours["process"])
    assert set(ref["linux"]) <= set(ours["linux"])
    for m in ref["mounts"]:
        assert m["destination"] in {x["destination"] for x in ours["mounts"]}
    # runc's own defaults are stricter about masks than about capabilities; every path it
    # masks, Docker (and so pallet) masks too
    assert set(ref["linux"]["maskedPaths"]) <= set(ours["linux"]["maskedPaths"])
    assert {n["type"] for n in ref["linux"]["namespaces"]} <= {n["type"] for n in ours["linux"]["namespaces"]}
