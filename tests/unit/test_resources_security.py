"""Docker's security flags: capabilities, seccomp, sysctls, devices, privileged, userns."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pallet.engine import resources as r
from pallet.engine import security as s
from pallet.errors import InvalidArgument


class _st:
    def __init__(self, mode: int, rdev: int) -> None:
        self.st_mode, self.st_rdev, self.st_uid, self.st_gid = mode, rdev, 0, 20


def fake_stat(path: str) -> _st:
    if path == "/dev/ttyUSB0":
        return _st(stat.S_IFCHR | 0o660, os.makedev(188, 0))
    if path == "/etc/passwd":
        return _st(stat.S_IFREG | 0o644, 0)
    raise FileNotFoundError(2, "No such file or directory", path)


def spec_for(**flags):  # type: ignore[no-untyped-def]
    base = {"process": {}, "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
            "mounts": [{"destination": "/sys", "type": "sysfs", "options": ["nosuid", "ro"]}]}
    return r.apply_to_spec(  # type: ignore[arg-type]
        base, r.parse_flags(**flags), stat=fake_stat, host_devices=lambda: [], available_caps=s.ALL_CAPS
    )


def test_default_capabilities() -> None:
    caps = spec_for()["process"]["capabilities"]
    assert sorted(caps["bounding"]) == sorted(s.DEFAULT_CAPS)
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    assert "inheritable" not in caps and "ambient" not in caps


@pytest.mark.parametrize(
    ("add", "drop", "has", "lacks"),
    [
        (["NET_ADMIN"], [], ["CAP_NET_ADMIN", "CAP_CHOWN"], []),
        (["cap_sys_time"], ["chown"], ["CAP_SYS_TIME"], ["CAP_CHOWN"]),
        ([], ["ALL"], [], list(s.DEFAULT_CAPS)),
        (["CHOWN"], ["ALL"], ["CAP_CHOWN"], ["CAP_KILL"]),
        (["ALL"], ["MKNOD"], ["CAP_SYS_ADMIN"], ["CAP_MKNOD"]),
        (["KILL"], ["KILL"], ["CAP_KILL"], []),  # an added capability wins
    ],
)
def test_cap_add_drop(add: list[str], drop: list[str], has: list[str], lacks: list[str]) -> None:
    caps = s.capabilities(add, drop, available=s.ALL_CAPS)
    for c in has:
        assert c in caps
    for c in lacks:
        assert c not in caps


def test_all_means_what_the_engine_holds() -> None:
    status = "Name:\tx\nCapBnd:\t000001fffeffffff\n"  # every capability but CAP_SYS_RESOURCE (24)
    held = s.bounding_caps(status)
    assert "CAP_SYS_RESOURCE" not in held and "CAP_SYS_ADMIN" in held and len(held) == 40
    assert s.capabilities(privileged=True, available=held) == held
    assert "CAP_SYS_RESOURCE" not in s.capabilities(["ALL"], available=held)


def test_unknown_capability() -> None:
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_FLY"'):
        r.parse_flags(cap_add=["fly"])


def test_capabilities_shape_the_seccomp_profile() -> None:
    def allowed(spec: dict, name: str) -> bool:
        return any(name in x["names"] and x["action"] == "SCMP_ACT_ALLOW" for x in spec["linux"]["seccomp"]["syscalls"])

    assert not allowed(spec_for(), "mount")
    assert allowed(spec_for(cap_add=["SYS_ADMIN"]), "mount")
    assert not allowed(spec_for(), "settimeofday")
    assert allowed(spec_for(cap_add=["SYS_TIME"]), "settimeofday")


def test_privileged() -> None:
    out = spec_for(privileged=True)
    assert sorted(out["process"]["capabilities"]["bounding"]) == sorted(s.ALL_CAPS)
    assert "seccomp" not in out["linux"]
    assert out["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert out["linux"]["maskedPaths"] == [] and out["linux"]["readonlyPaths"] == []
    assert "ro" not in out["mounts"][0]["options"]


def test_security_opts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert "seccomp" not in spec_for(security_opt=["seccomp=unconfined"])["linux"]
    assert spec_for(security_opt=["no-new-privileges"])["process"]["noNewPrivileges"] is True
    assert "noNewPrivileges" not in spec_for()["process"]
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}))
    hc = r.parse_flags(security_opt=[f"seccomp={prof}"])
    assert hc["SecurityOpt"][0].startswith("seccomp={")  # the content, as docker sends it
    out = r.apply_to_spec({}, hc, host_devices=lambda: [])
    assert out["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ALLOW",
                                        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    out = spec_for(security_opt=["systempaths=unconfined"])
    assert out["linux"]["maskedPaths"] == []


@pytest.mark.parametrize(
    ("opt", "msg"),
    [("bogus", 'Invalid --security-opt: "bogus"'),
     ("seccomp=/nonexistent.json", "opening seccomp profile (/nonexistent.json) failed"),
     ("foo=bar", 'Invalid --security-opt: "foo=bar"')],
)
def test_bad_security_opts(opt: str, msg: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        r.parse_flags(security_opt=[opt])
    assert msg in str(e.value)


def test_broken_profile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "bad.json"
    p.write_text("{")
    with pytest.raises(InvalidArgument, match="Decoding seccomp profile failed"):
        r.parse_flags(security_opt=[f"seccomp={p}"])


def test_read_only_and_sysctls() -> None:
    out = spec_for(read_only=True, sysctl=["net.ipv4.ip_forward=1", "kernel.shmmax=1000", "fs.mqueue.msg_max=20"])
    assert out["root"]["readonly"] is True
    assert out["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20"}


@pytest.mark.parametrize("bad", ["kernel.hostname=x", "vm.swappiness=1", "kernel.domainname=y", "net.ipv4.ip_forward"])
def test_non_namespaced_sysctls_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match=f"sysctl '{bad}' is not whitelisted"):
        r.parse_flags(sysctl=[bad])


def test_net_sysctl_with_host_network() -> None:
    with pytest.raises(InvalidArgument, match="host network namespace"):
        r.parse_flags(sysctl=["net.ipv4.ip_forward=1"], network_mode="host")


def test_devices() -> None:
    out = spec_for(device=["/dev/ttyUSB0:/dev/modem:rw"])
    assert out["linux"]["devices"] == [
        {"path": "/dev/modem", "type": "c", "major": 188, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 20}
    ]
    assert out["linux"]["resources"]["devices"][-1] == {"allow": True, "type": "c", "major": 188, "minor": 0, "access": "rw"}
    assert s.parse_device("/dev/sda") == {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}
    assert s.parse_device("/dev/sda:r") == {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "r"}
    with pytest.raises(InvalidArgument, match='adding custom device "/dev/nope"'):
        spec_for(device=["/dev/nope"])
    with pytest.raises(InvalidArgument, match="not a device node"):
        spec_for(device=["/etc/passwd"])


def test_userns_modes() -> None:
    assert r.parse_flags(userns="host") == {"UsernsMode": "host"}
    assert r.parse_flags(userns="auto:size=65536") == {"UsernsMode": "auto:size=65536"}
    with pytest.raises(InvalidArgument, match='invalid USER mode "bogus"'):
        r.parse_flags(userns="bogus")
