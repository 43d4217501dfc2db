"""Docker's seccomp profile format -> OCI linux.seccomp, and Docker's default profile."""

from __future__ import annotations

import pytest

from pallet.errors import InvalidArgument
from pallet.oci import seccomp_default as sd

DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def allowed(profile: dict, name: str) -> list[dict]:
    return [r for r in profile.get("syscalls", []) if name in r["names"] and r["action"] == "SCMP_ACT_ALLOW"]


def test_default_is_an_eperm_allowlist_for_x86_64() -> None:
    p = sd.default_profile(DEFAULT_CAPS, arch="amd64", kernel="6.1.0")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    for k in ("archMap",):
        assert k not in p
    for r in p["syscalls"]:
        assert set(r) <= {"names", "action", "errnoRet", "args"}
    for name in ("read", "write", "execve", "clone", "arch_prctl", "chroot", "ptrace"):
        assert allowed(p, name), name


@pytest.mark.parametrize(
    "blocked",
    ["mount", "umount2", "reboot", "kexec_load", "init_module", "finit_module", "delete_module",
     "bpf", "keyctl", "add_key", "perf_event_open", "unshare", "setns", "settimeofday",
     "clock_settime", "sethostname", "pivot_root", "swapon", "open_by_handle_at", "syslog", "acct"],
)
def test_default_blocks_without_capabilities(blocked: str) -> None:
    p = sd.default_profile(DEFAULT_CAPS, arch="amd64", kernel="6.1.0")
    assert not allowed(p, blocked)


def test_default_clone_refuses_new_namespaces() -> None:
    p = sd.default_profile(DEFAULT_CAPS, arch="amd64", kernel="6.1.0")
    (clone,) = allowed(p, "clone")
    (arg,) = clone["args"]
    CLONE_NEWUSER = 0x10000000
    assert arg["op"] == "SCMP_CMP_MASKED_EQ" and arg["index"] == 0 and arg.get("valueTwo", 0) == 0
    assert arg["value"] & CLONE_NEWUSER
    (clone3,) = [r for r in p["syscalls"] if "clone3" in r["names"]]
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38  # ENOSYS: libc falls back to clone


def test_ptrace_allowed_only_from_linux_4_8() -> None:
    assert allowed(sd.default_profile(DEFAULT_CAPS, arch="amd64", kernel="4.8.0"), "ptrace")
    assert not allowed(sd.default_profile(DEFAULT_CAPS, arch="amd64", kernel="4.4.0-210-generic"), "ptrace")


def test_capabilities_open_their_syscalls() -> None:
    p = sd.default_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN", "sys_time"], arch="amd64", kernel="6.1")
    for name in ("mount", "unshare", "setns", "settimeofday", "clone3"):
        assert allowed(p, name), name
    # with CAP_SYS_ADMIN the argument-filtered clone rule is replaced by the unfiltered one
    assert all("args" not in r for r in allowed(p, "clone"))
    assert not [r for r in p["syscalls"] if "clone3" in r["names"] and r["action"] == "SCMP_ACT_ERRNO"]


def test_arch_conditions() -> None:
    p = sd.default_profile(DEFAULT_CAPS, arch="arm64", kernel="6.1")
    assert p["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert not allowed(p, "arch_prctl")
    assert allowed(p, "set_tls")


def test_custom_profile() -> None:
    prof = sd.parse_profile(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ['
        '{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "comment": "x"},'
        '{"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_FOWNER"]}}]}'
    )
    out = sd.to_oci(prof, ["CAP_FOWNER"], arch="amd64", kernel="6.1")
    assert out == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }


def test_oci_form_passes_through() -> None:
    oci = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    assert sd.to_oci(oci, [], arch="amd64", kernel="6.1") == oci


def test_empty_profile_means_unconfined() -> None:
    assert sd.to_oci({}, DEFAULT_CAPS) is None


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("{nope", "Decoding seccomp profile failed"),
        ("[]", "Decoding seccomp profile failed"),
    ],
)
def test_parse_errors(text: str, msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg):
        sd.parse_profile(text)


def test_conflicting_fields() -> None:
    with pytest.raises(InvalidArgument, match="archMap"):
        sd.to_oci({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x"], "archMap": [{}]}, [])
    with pytest.raises(InvalidArgument, match="'name' and 'names'"):
        sd.to_oci({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_LOG"}]}, [])


def test_kernel_at_least() -> None:
    assert sd.kernel_at_least("6.18.44-fc-v669", "4.8")
    assert sd.kernel_at_least("4.8.0", "4.8")
    assert not sd.kernel_at_least("4.7.10", "4.8")
    assert sd.native_arch("x86_64") == "amd64"
