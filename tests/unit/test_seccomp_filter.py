"""Loading OCI seccomp filters with libseccomp: in a child process, with
no_new_privs so that no privilege is needed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pallet.errors import InvalidArgument
from pallet.oci.seccomp_default import default_profile
from pallet.runtime import seccomp

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"]


def run_filtered(spec: dict | None, body: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        """
        import errno, json, os, sys
        from pallet.runtime import seccomp
        seccomp.apply(json.loads(sys.argv[1]), no_new_privs=True)
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, timeout=60
    )


def test_errno_rule_and_allowed_rest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    r = run_filtered(
        spec,
        f"""
        try:
            os.mkdir({str(tmp_path / 'x')!r})
        except OSError as e:
            print("mkdir", e.errno)
        open({str(tmp_path / 'f')!r}, "w").write("ok")
        print("write ok")
        """,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["mkdir 13", "write ok"]


def test_argument_conditions() -> None:
    # kill(anything, 0) refused; kill(self, SIGCONT) allowed: the condition looks at argument 1
    spec = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
        ],
    }
    r = run_filtered(
        spec,
        """
        import signal
        os.kill(os.getpid(), signal.SIGCONT)
        print("sigcont ok")
        try:
            os.kill(os.getpid(), 0)
        except OSError as e:
            print("kill0", e.errno)
        """,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["sigcont", "ok", "kill0"] and "kill0 1" in r.stdout


def test_default_profile_blocks_what_docker_blocks() -> None:
    spec = default_profile(DEFAULT_CAPS)
    r = run_filtered(
        spec,
        """
        import socket, subprocess
        for name, call in [
            ("sethostname", lambda: socket.sethostname("pallet-test")),
            ("unshare-user", lambda: subprocess.run(["unshare", "-U", "true"], check=True, capture_output=True)),
        ]:
            try:
                call()
                print(name, "ALLOWED")
            except subprocess.CalledProcessError:
                print(name, "blocked")
            except OSError as e:
                print(name, "blocked", e.errno)
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """,
    )
    assert r.returncode == 0, r.stderr
    assert "ALLOWED" not in r.stdout
    assert "sethostname blocked 1" in r.stdout
    assert "fork 7" in r.stdout


def test_none_is_unconfined() -> None:
    seccomp.apply(None)  # no filter, no library loaded
    seccomp.apply({})


@pytest.mark.parametrize(
    "bad",
    [
        {"defaultAction": "SCMP_ACT_NOPE"},
        {"defaultAction": "SCMP_ACT_NOTIFY"},
        {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]},
        {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                          "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                          "args": [{"index": 0, "value": 1, "op": "EQ"}]}]},
    ],
)
def test_invalid_specs(bad: dict) -> None:
    with pytest.raises(InvalidArgument):
        seccomp.build(bad)


def test_unknown_syscall_names_are_skipped() -> None:
    seccomp.build({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["no_such_call", "mkdir"], "action": "SCMP_ACT_ERRNO"}]})


def test_import_is_lazy() -> None:
    r = subprocess.run(
        [sys.executable, "-c", "import sys, pallet.runtime.seccomp; print('pyseccomp' in sys.modules)"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.stdout.strip() == "False"


def test_prepared_program_loads_without_libseccomp(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The init compiles before pivot_root and installs after: the install needs no library."""
    spec = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    prepared = seccomp.prepare(spec, no_new_privs=True)
    assert prepared is not None and len(prepared.program) % 8 == 0
    code = textwrap.dedent(
        f"""
        import os, sys
        from pallet.runtime.seccomp import Prepared
        from pallet.linux import syscalls
        Prepared(bytes.fromhex({prepared.program.hex()!r}), 0, True).load()
        assert syscalls.get_no_new_privs()
        try:
            os.mkdir({str(tmp_path / 'x')!r})
        except OSError as e:
            print("mkdir", e.errno)
        print("pyseccomp" in sys.modules)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["mkdir", "13", "False"]


def test_prepare_cache(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    spec = default_profile(DEFAULT_CAPS)
    first = seccomp.prepare(spec, cache_dir=str(tmp_path))
    assert first is not None and len(list(tmp_path.iterdir())) == 1

    def boom(_spec: dict) -> bytes:
        raise AssertionError("compiled again")

    monkeypatch.setattr(seccomp, "compile_bpf", boom)
    again = seccomp.prepare(spec, cache_dir=str(tmp_path))
    assert again == first
    other = dict(spec, defaultErrnoRet=38)
    with pytest.raises(AssertionError, match="compiled again"):
        seccomp.prepare(other, cache_dir=str(tmp_path))


def test_prepare_cache_verifies_the_whole_key(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A cached file whose stored key is another spec's (a checksum clash) is compiled
    again, never loaded."""
    spec = default_profile(DEFAULT_CAPS)
    first = seccomp.prepare(spec, cache_dir=str(tmp_path))
    assert first is not None
    (cached,) = tmp_path.iterdir()
    other = dict(spec, defaultErrnoRet=38)
    other_prog = seccomp.compile_bpf(other)
    data = cached.read_bytes()
    n = int.from_bytes(data[:8], "little")
    forged_key = data[8:8 + n].replace(b'"defaultAction"', b'"defaultActioN"')
    cached.write_bytes(len(forged_key).to_bytes(8, "little") + forged_key + other_prog)
    again = seccomp.prepare(spec, cache_dir=str(tmp_path))
    assert again == first and again is not None and again.program != other_prog


def test_prepare_flags() -> None:
    p = seccomp.prepare({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]})
    assert p is not None and p.flags == 3
    assert seccomp.prepare(None) is None
