"""Reading an OCI bundle's config.json into a VM's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet.errors import InvalidArgument
from pallet.vm import bundle


def config(**kw: object) -> dict[str, object]:
    c: dict[str, object] = {
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/srv",
                    "user": {"uid": 1000, "gid": 100, "additionalGids": [10]}},
        "root": {"path": "rootfs"},
        "hostname": "web",
    }
    c.update(kw)
    return c


def test_process_and_defaults(tmp_path: Path) -> None:
    b = bundle.from_config(tmp_path, config())
    assert b.rootfs == tmp_path / "rootfs"
    assert b.process.args == ("sh",) and b.process.cwd == "/srv"
    assert (b.process.uid, b.process.gid, b.process.additional_gids) == (1000, 100, (10,))
    assert b.memory_mib == bundle.DEFAULT_MEMORY_MIB and b.cpus == 1
    assert b.rootfs_mode == "erofs" and b.network and b.ports == ()


def test_resources_become_ram_and_vcpus(tmp_path: Path) -> None:
    r = {"memory": {"limit": 512 * 1024 * 1024}, "cpu": {"quota": 150000, "period": 100000}}
    b = bundle.from_config(tmp_path, config(linux={"resources": r}))
    assert b.memory_mib == 512 and b.cpus == 2
    tiny = bundle.from_config(tmp_path, config(linux={"resources": {"memory": {"limit": 6 << 20}}}))
    assert tiny.memory_mib == bundle.MIN_MEMORY_MIB
    assert bundle.cpu_count({"cpu": {"cpus": "0-2,5"}}) == 4


def test_annotations(tmp_path: Path) -> None:
    ann = {
        bundle.ANN_ROOTFS: "virtiofs",
        bundle.ANN_CACHE_KEY: "sha256:abc",
        bundle.ANN_PUBLISH: "8080:80,127.0.0.1:5353:53/udp",
        bundle.ANN_NETWORK: "none",
    }
    b = bundle.from_config(tmp_path, config(annotations=ann))
    assert b.rootfs_mode == "virtiofs" and b.cache_key == "sha256:abc" and not b.network
    assert b.ports == (bundle.PortForward("", 8080, 80), bundle.PortForward("127.0.0.1", 5353, 53, "udp"))
    with pytest.raises(InvalidArgument):
        bundle.from_config(tmp_path, config(annotations={bundle.ANN_ROOTFS: "nfs"}))


def test_port_ranges() -> None:
    assert bundle.parse_ports("9000-9001:90-91") == (
        bundle.PortForward("", 9000, 90), bundle.PortForward("", 9001, 91))


@pytest.mark.parametrize("bad", ["80", "a:80", "1:2:3:4", "80:80/sctp", "1-3:1-2", "0:80", "70000:80"])
def test_bad_ports(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        bundle.parse_ports(bad)


def test_bind_mounts_become_shares_or_copies(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    f = tmp_path / "hosts"
    f.write_text("127.0.0.1 localhost\n")
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/data", "type": "bind", "source": str(d), "options": ["rbind", "ro"]},
        {"destination": "/etc/hosts", "type": "bind", "source": str(f), "options": ["rbind"]},
        {"destination": "/dev/shm", "type": "bind", "source": str(d), "options": ["bind"]},
    ]
    b = bundle.from_config(tmp_path, config(mounts=mounts))
    assert b.shares == (bundle.Share("vol0", str(d), "/data", True),)
    assert len(b.files) == 1 and b.files[0].target == "/etc/hosts"
    assert b.files[0].content == b"127.0.0.1 localhost\n"


def test_no_command_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no command"):
        bundle.from_config(tmp_path, config(process={"args": []}))
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(InvalidArgument, match="invalid config.json"):
        bundle.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config()))
    assert bundle.load(tmp_path).hostname == "web"


def test_safe_hostname() -> None:
    assert bundle.safe_hostname("web-1.local") == "web-1.local"
    assert bundle.safe_hostname("a b") == ""
    assert bundle.safe_hostname("x" * 80) == ""


def test_guest_resolv_conf_replaces_loopback_servers() -> None:
    text = "search lan\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.1\n"
    assert bundle.guest_resolv_conf(text) == "search lan\nnameserver 10.0.2.3\nnameserver 192.0.2.1\n"


def test_engine_annotations() -> None:
    assert bundle.engine_annotations("sha256:abc", "bridge") == {bundle.ANN_CACHE_KEY: "sha256-abc"}
    assert bundle.engine_annotations("", "none") == {bundle.ANN_NETWORK: "none"}


def test_network_namespace_of_the_bundle(tmp_path: Path) -> None:
    ns = [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"}]
    assert bundle.from_config(tmp_path, config(linux={"namespaces": ns})).netns == "/run/netns/x"
    assert bundle.from_config(tmp_path, config()).netns == ""


def test_tmpfs_mounts_and_read_only_root(tmp_path: Path) -> None:
    mounts = [
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid"]},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=64m"]},
    ]
    b = bundle.from_config(tmp_path, config(mounts=mounts, root={"path": "rootfs", "readonly": True}))
    assert b.mounts == (bundle.GuestMount("tmpfs", "tmpfs", "/run", ("nosuid", "size=64m")),)
    assert b.readonly
    assert not bundle.from_config(tmp_path, config()).readonly
