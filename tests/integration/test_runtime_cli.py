"""`pallet-runtime` answers runc's command line: the same verbs, flags, state JSON and
exit statuses, checked against runc itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.oci.spec import default_spec
from tests.support.images import busybox_available, make_busybox_rootfs

PALLET_RUNTIME = str(Path(sys.executable).parent / "pallet-runtime")
BINARIES = [PALLET_RUNTIME, pytest.param("runc", marks=pytest.mark.skipif(
    shutil.which("runc") is None, reason="needs runc (Debian package) as the reference runtime"))]

pytestmark = pytest.mark.skipif(not busybox_available(), reason="needs Debian's busybox-static")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("rtcli") / "rootfs")


class CLI:
    def __init__(self, binary: str, base: Path, template: Path) -> None:
        self.binary = binary
        self.root = base / "state"
        self.base = base
        self.template = template
        self.ids: list[str] = []

    def __call__(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, "--root", str(self.root), *args], text=True,
                              capture_output=True, timeout=30, **kw)  # type: ignore[call-overload]

    def detached(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A verb that leaves a container behind: its stdio must not be our pipes."""
        err = self.base / f"err-{uuid.uuid4().hex[:6]}"
        with open(err, "w") as f:
            p = subprocess.run([self.binary, "--root", str(self.root), *args], text=True,
                               stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=30)
        return subprocess.CompletedProcess(p.args, p.returncode, "", err.read_text())

    def bundle(self, args: list[str]) -> Path:
        b = self.base / f"bundle-{uuid.uuid4().hex[:8]}"
        shutil.copytree(self.template, b / "rootfs", symlinks=True)
        spec = default_spec(args, env=["PATH=/bin"], hostname="cli")
        spec["linux"]["cgroupsPath"] = f"/pallet-test-rtcli/{uuid.uuid4().hex[:12]}"
        (b / "config.json").write_text(json.dumps(spec))
        return b

    def new_id(self) -> str:
        cid = f"rtcli-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid


@pytest.fixture(params=BINARIES, ids=["pallet", "runc"])
def cli(request: pytest.FixtureRequest, tmp_path: Path, template: Path) -> Iterator[CLI]:
    c = CLI(request.param, tmp_path, template)
    yield c
    for cid in c.ids:
        c("delete", "--force", cid)
    assert not c("list", "-q").stdout.strip()


def test_run_exit_statuses(cli: CLI) -> None:
    assert cli("run", "--bundle", str(cli.bundle(["sh", "-c", "exit 3"])), cli.new_id()).returncode == 3
    r = cli("run", "--bundle", str(cli.bundle(["sh", "-c", "echo hi; hostname"])), cli.new_id())
    assert (r.returncode, r.stdout) == (0, "hi\ncli\n")
    r = cli("run", "--bundle", str(cli.bundle(["no-such-cmd"])), cli.new_id())
    assert r.returncode != 0 and "executable file not found" in r.stderr


def test_create_state_start_kill_delete(cli: CLI) -> None:
    b = cli.bundle(["sleep", "30"])
    cid = cli.new_id()
    pid_file = cli.base / "pid"
    r = cli.detached("create", "--bundle", str(b), "--pid-file", str(pid_file), cid)
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text())
    st = json.loads(cli("state", cid).stdout)
    assert st["status"] == "created" and st["pid"] == pid and st["id"] == cid
    assert os.path.realpath(st["bundle"]) == os.path.realpath(b)
    assert {"ociVersion", "created", "rootfs"} <= set(st)
    assert cli("start", cid).returncode == 0
    assert json.loads(cli("state", cid).stdout)["status"] == "running"
    assert cli("delete", cid).returncode != 0  # a running container is not deleted without --force
    assert cli("kill", cid, "KILL").returncode == 0
    deadline = time.monotonic() + 10
    while json.loads(cli("state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert cli("delete", cid).returncode == 0
    assert cli("state", cid).returncode != 0
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_exec_in_a_running_container(cli: CLI) -> None:
    b = cli.bundle(["sleep", "30"])
    cid = cli.new_id()
    assert cli.detached("run", "-d", "--bundle", str(b), cid).returncode == 0
    r = cli("exec", cid, "sh", "-c", "hostname; echo $$; exit 5")
    assert r.returncode == 5
    host, pid = r.stdout.split()
    assert host == "cli" and int(pid) > 1
    assert cli("delete", "--force", cid).returncode == 0


def test_unknown_container_is_an_error(cli: CLI) -> None:
    for verb in (["state"], ["start"], ["kill"], ["delete"]):
        r = cli(*verb, "rtcli-missing")
        assert r.returncode == 1 and r.stderr.strip()


def test_spec_prints_a_config(cli: CLI, tmp_path: Path) -> None:
    d = tmp_path / "sp"
    d.mkdir()
    assert cli("spec", "--bundle", str(d)).returncode == 0
    spec = json.loads((d / "config.json").read_text())
    assert spec["root"]["path"] == "rootfs" and spec["process"]["args"] == ["sh"]


@pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc (Debian package) as the reference runtime")
def test_state_and_list_json_have_runcs_keys(tmp_path: Path, template: Path) -> None:
    seen: dict[str, tuple[set[str], list[str], set[str]]] = {}
    for name, binary in (("pallet", PALLET_RUNTIME), ("runc", "runc")):
        c = CLI(binary, tmp_path / name, template)
        cid = c.new_id()
        try:
            assert c.detached("create", "--bundle", str(c.bundle(["sleep", "30"])), cid).returncode == 0
            statuses = [json.loads(c("state", cid).stdout)["status"]]
            keys = set(json.loads(c("state", cid).stdout))
            c("start", cid)
            statuses.append(json.loads(c("state", cid).stdout)["status"])
            listed = json.loads(c("list", "-f", "json").stdout)
            assert [x["id"] for x in listed] == [cid] and c("list", "-q").stdout.split() == [cid]
            seen[name] = (keys, statuses, set(listed[0]))
        finally:
            c("delete", "--force", cid)
    assert seen["pallet"][1] == seen["runc"][1] == ["created", "running"]
    assert seen["pallet"][0] >= seen["runc"][0] - {"owner"}, seen
    assert {"id", "pid", "status", "bundle", "created"} <= seen["pallet"][2] & seen["runc"][2]


def test_exec_with_a_process_file(cli: CLI) -> None:
    cid = cli.new_id()
    assert cli.detached("run", "-d", "--bundle", str(cli.bundle(["sleep", "30"])), cid).returncode == 0
    proc = {"args": ["sh", "-c", "id -u; echo $V; pwd; exit 4"], "env": ["PATH=/bin", "V=from-file"],
            "cwd": "/tmp", "user": {"uid": 65534, "gid": 65534}}
    f = cli.base / "process.json"
    f.write_text(json.dumps(proc))
    r = cli("exec", "--process", str(f), cid)
    assert r.returncode == 4, r.stderr
    assert r.stdout.split() == ["65534", "from-file", "/tmp"]
    assert cli("delete", "--force", cid).returncode == 0


def test_missing_command_fails_create_with_status_1(cli: CLI) -> None:
    r = cli("run", "--bundle", str(cli.bundle(["no-such-cmd"])), cli.new_id())
    assert r.returncode == 1 and "no-such-cmd" in r.stderr
    cid = cli.new_id()
    r = cli.detached("create", "--bundle", str(cli.bundle(["no-such-cmd"])), cid)
    assert r.returncode == 1 and "executable file not found" in r.stderr
    assert cli("state", cid).returncode == 1  # nothing is left behind


def test_errors_as_json_log_records(cli: CLI) -> None:
    log = cli.base / "log.json"
    r = subprocess.run([cli.binary, "--root", str(cli.root), "--log", str(log), "--log-format", "json",
                        "state", "rtcli-missing"], text=True, capture_output=True, timeout=30)
    assert r.returncode == 1
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [x for x in recs if x.get("level") == "error"]
    assert errors and errors[-1]["msg"] and errors[-1]["time"].startswith("20")
    assert r.stderr.strip()
