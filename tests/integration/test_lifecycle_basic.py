"""The container lifecycle through the CLI, against pallet's runtime and runc (to check the tests)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import needs_busybox, needs_root
from tests.integration.lifecycle_support import (
    assert_clean,
    cgroups_of,
    eventually,
    pallet_runtime_available,
    remove_everything,
)
from tests.support.cli import Pallet

pytestmark = [needs_root, needs_busybox]


@pytest.fixture(params=["pallet", "runc"])
def p(request: pytest.FixtureRequest, pallet_root: Path, busybox_tar: Path) -> Iterator[Pallet]:
    """A CLI on a fresh root with busybox imported, for each runtime; checks nothing leaks after."""
    rt = request.param
    if rt == "pallet" and not pallet_runtime_available():
        pytest.skip("pallet's own runtime is not available in this tree")
    if rt == "runc" and not os.path.exists("/usr/sbin/runc") and not os.path.exists("/usr/bin/runc"):
        pytest.skip("needs runc")
    cli = Pallet(pallet_root, runtime=rt)
    cli.ok("import", str(busybox_tar), "busybox:test", "--change", 'CMD ["sh"]')
    yield cli
    ids = cli("ps", "-aq", "--no-trunc").out.split()
    remove_everything(cli)
    assert_clean(cli)
    assert cgroups_of(ids) == []


IMG = "busybox:test"


def one_error_line(r: object) -> str:
    err = r.err  # type: ignore[attr-defined]
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_pid1_and_no_host_processes(p: Pallet) -> None:
    r = p("run", "--rm", IMG, "sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid | tail -n +2")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("sh -c")
    pids = [int(x) for x in lines[2:]]
    assert max(pids) < 20 and len(pids) <= 4, lines  # sh, ps, tail: nothing of the host's


def test_hostname_mounts_ipc_are_its_own(p: Pallet) -> None:
    cid = p.ok("create", "--name", "h1", IMG, "sh", "-c",
               "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/mnt; readlink /proc/self/ns/uts; cat /proc/self/mounts").strip()
    r = p("start", "-a", "h1")
    assert r.rc == 0, r
    out = r.out.splitlines()
    assert out[0] == cid[:12]
    assert out[1] != os.readlink("/proc/self/ns/ipc")
    assert out[2] != os.readlink("/proc/self/ns/mnt")
    assert out[3] != os.readlink("/proc/self/ns/uts")
    mounts = "\n".join(out[4:])
    assert str(p.root) not in mounts.split()[1::6]  # the host's paths are not mount points inside
    assert " / overlay " in mounts or mounts.startswith("overlay / ")
    r = p("run", "--rm", "--hostname", "box", IMG, "hostname")
    assert r.out.strip() == "box"


def test_host_files_unreachable_except_bind_mounts(p: Pallet, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    r = p("run", "--rm", IMG, "sh", "-c", f"cat {secret} || ls {tmp_path} || echo unreachable")
    assert "host secret" not in r.out and "unreachable" in r.out
    r = p("run", "--rm", "-v", f"{tmp_path}:/data:ro", IMG, "sh", "-c", "cat /data/secret.txt; touch /data/x || echo ro")
    assert r.rc == 0, r
    assert "host secret" in r.out and "ro" in r.out.splitlines()[-1]
    assert not (tmp_path / "x").exists()


def test_writes_invisible_to_another_container(p: Pallet) -> None:
    assert p("run", "--name", "w1", IMG, "sh", "-c", "echo mine > /etc/written; cat /etc/written").out == "mine\n"
    r = p("run", "--rm", IMG, "sh", "-c", "cat /etc/written 2>/dev/null || echo absent")
    assert r.out.strip() == "absent"
    # and the first container's write survives in its own filesystem
    r = p("start", "-a", "w1")
    assert r.out == "mine\n"


def test_detached_survives_cli_and_logs(p: Pallet) -> None:
    cid = p.ok("run", "-d", "--name", "bg", IMG, "sh", "-c", "echo out-line; echo err-line >&2; exec sleep 60").strip()
    assert len(cid) == 64
    assert eventually(lambda: "out-line" in p("logs", "bg").out)
    r = p("logs", "bg")
    assert r.out == "out-line\n" and r.err == "err-line\n"
    assert p.ok("inspect", "-f", "{{.State.Status}} {{.State.Running}}", "bg").strip() == "running true"
    pid = int(p.ok("inspect", "-f", "{{.State.Pid}}", "bg"))
    assert pid > 1 and os.path.exists(f"/proc/{pid}")
    assert "bg" in p.ok("ps", "--format", "{{.Names}}")
    r = p("logs", "--tail", "1", "-t", "bg")
    assert r.out == "" and r.err.endswith(" err-line\n") and "T" in r.err.split()[0]
    log = (p.root / "containers" / cid / f"{cid}-json.log").read_text().splitlines()
    assert '"stream":"stdout"' in log[0] or '"stream": "stdout"' in log[0]
    p.ok("kill", "bg")
    assert p.ok("wait", "bg").strip() == "137"
    assert p.ok("inspect", "-f", "{{.State.ExitCode}}", "bg").strip() == "137"


def test_stop_sends_sigterm_before_sigkill(p: Pallet) -> None:
    p.ok("run", "-d", "--name", "trap", IMG, "sh", "-c",
         'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.1; done')
    assert eventually(lambda: "ready" in p("logs", "trap").out)
    p.ok("stop", "trap")
    assert "got-term" in p.ok("logs", "trap")
    assert p.ok("inspect", "-f", "{{.State.ExitCode}}", "trap").strip() == "7"
    # a process that ignores SIGTERM is killed after the timeout
    p.ok("run", "-d", "--name", "stubborn", IMG, "sh", "-c", 'trap "" TERM; echo ready; while true; do sleep 0.1; done')
    assert eventually(lambda: "ready" in p("logs", "stubborn").out)
    t = time.monotonic()
    p.ok("stop", "-t", "1", "stubborn")
    took = time.monotonic() - t
    assert 0.9 < took < 8, took
    assert p.ok("inspect", "-f", "{{.State.ExitCode}}", "stubborn").strip() == "137"


def test_stop_signal_flag(p: Pallet) -> None:
    p.ok("run", "-d", "--name", "usr1", "--stop-signal", "USR1", IMG, "sh", "-c",
         'trap "echo got-usr1; exit 3" USR1; echo ready; while true; do sleep 0.1; done')
    assert eventually(lambda: "ready" in p("logs", "usr1").out)
    p.ok("stop", "usr1")
    assert "got-usr1" in p.ok("logs", "usr1")
    assert p.ok("inspect", "-f", "{{.State.ExitCode}}", "usr1").strip() == "3"


def test_exit_codes_match_docker(p: Pallet) -> None:
    assert p("run", "--rm", IMG, "sh", "-c", "exit 3").rc == 3
    r = p("run", "--rm", IMG, "no-such-command")
    assert r.rc == 127 and "executable file not found" in one_error_line(r)
    r = p("run", "--rm", IMG, "/etc")
    assert r.rc == 126, r
    one_error_line(r)
    assert p("run", "--rm", IMG, "sh", "-c", "sleep 30 & kill -9 $!; wait $!").rc == 137
    assert p("run", "--rm", "--bogus-flag", IMG, "true").rc == 125
    assert p("run", "--rm", IMG, "true").rc == 0


def test_bad_input_one_line_exit_125_nothing_left(p: Pallet, tmp_path: Path) -> None:
    cases = [
        (["run", "--rm", "no-such-image:1", "true"], "No such image"),
        (["run", "--rm", "-v", f"{tmp_path}/missing:/x", IMG, "true"], "bind source path does not exist"),
        (["run", "--rm", "--mount", f"type=bind,source={tmp_path}/missing,target=/x", IMG, "true"],
         "bind source path does not exist"),
        (["run", "--rm", "--restart", "always", IMG, "true"], "Conflicting options"),
        (["run", "--restart", "sometimes", IMG, "true"], "restart policy"),
        (["run", "--stop-signal", "SIGNOPE", IMG, "true"], "Invalid signal"),
        (["run", "--name", "bad name", IMG, "true"], "Invalid container name"),
        (["run", "-u", "nobody-here", IMG, "true"], "unable to find user"),
        (["run", "-w", "relative", IMG, "true"], "absolute path"),
        (["stop", "no-such-container"], "No such container"),
        (["rm", "no-such-container"], "No such container"),
        (["logs", "no-such-container"], "No such container"),
    ]
    for args, words in cases:
        r = p(*args)
        assert r.rc == 125, (args, r)
        assert words in one_error_line(r), (args, r)
    # the failing runs left no container behind (the -u case is created, then fails to start)
    left = p.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()
    assert all(ln.endswith("Created") for ln in left), left
    p.ok("run", "--name", "taken", IMG, "true")
    r = p("run", "--name", "taken", IMG, "true")
    assert r.rc == 125 and 'The container name "/taken" is already in use' in one_error_line(r)
    p.ok("run", "-d", "--name", "busy", IMG, "sleep", "30")
    r = p("rm", "busy")
    assert r.rc == 125 and "container is running" in one_error_line(r)


def test_user_and_groups_from_image(p: Pallet) -> None:
    assert p.ok("run", "--rm", "-u", "app", IMG, "id").strip() == "uid=1000(app) gid=1000(app) groups=10(wheel),29(audio)"
    assert p.ok("run", "--rm", "-u", "1000:29", IMG, "id", "-u").strip() == "1000"
    assert p.ok("run", "--rm", "-u", "app", IMG, "sh", "-c", "echo $HOME").strip() == "/home/app"
    assert p.ok("run", "--rm", "-w", "/tmp/new", "-e", "A=1", IMG, "sh", "-c", "pwd; echo $A").split() == ["/tmp/new", "1"]


def test_entrypoint_env_file_labels(p: Pallet, tmp_path: Path) -> None:
    envf = tmp_path / "env"
    envf.write_text("# comment\nX=from-file\nY=2\n")
    r = p.ok("run", "--rm", "--env-file", str(envf), "-e", "Y=3", "--entrypoint", "sh", IMG, "-c", "echo $X $Y")
    assert r.strip() == "from-file 3"
    p.ok("create", "--name", "lab", "-l", "a=b", "--label", "c", IMG, "true")
    assert p.ok("ps", "-a", "--filter", "label=a=b", "--format", "{{.Names}}").strip() == "lab"
    assert p.ok("ps", "-a", "--filter", "label=c", "-q") .strip() != ""
    assert p.ok("ps", "-a", "--filter", "label=zzz", "-q").strip() == ""


def test_read_only_and_tmpfs(p: Pallet) -> None:
    r = p("run", "--rm", "--read-only", "--tmpfs", "/scratch", IMG, "sh", "-c",
          "touch /etc/x 2>/dev/null && echo wrote || echo ro; touch /scratch/y && echo tmp-ok")
    assert r.out.split() == ["ro", "tmp-ok"], r


def test_init_reaps_and_forwards(p: Pallet) -> None:
    r = p("run", "--rm", "--init", IMG, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert r.rc == 0, r
    assert "--" in r.out and "sh -c" in r.out
    p.ok("run", "-d", "--init", "--name", "in", IMG, "sleep", "60")
    t = time.monotonic()
    p.ok("stop", "in")
    assert time.monotonic() - t < 5  # sleep gets SIGTERM through the init, no 10 s wait
    assert p.ok("inspect", "-f", "{{.State.ExitCode}}", "in").strip() == "143"


def test_restart_policies(p: Pallet) -> None:
    p.ok("run", "-d", "--name", "of", "--restart", "on-failure:2", IMG, "sh", "-c", "echo run; exit 1")
    assert eventually(lambda: p.ok("inspect", "-f", "{{.State.Status}}", "of").strip() == "exited", timeout=15)
    assert p.ok("inspect", "-f", "{{.RestartCount}}", "of").strip() == "2"
    assert p.ok("logs", "of").count("run") == 3
    p.ok("run", "-d", "--name", "al", "--restart", "always", IMG, "sh", "-c", "echo x; sleep 0.2; exit 0")
    assert eventually(lambda: int(p.ok("inspect", "-f", "{{.RestartCount}}", "al")) >= 1, timeout=15)
    p.ok("stop", "al")
    time.sleep(0.5)
    assert p.ok("inspect", "-f", "{{.State.Status}}", "al").strip() == "exited"
    p.ok("run", "-d", "--name", "ok", "--restart", "on-failure", IMG, "true")
    assert p.ok("wait", "ok").strip() == "0"
    assert p.ok("inspect", "-f", "{{.RestartCount}}", "ok").strip() == "0"


def test_volumes_named_anonymous_and_rm_v(p: Pallet) -> None:
    p.ok("run", "--rm", "-v", "data:/data", IMG, "sh", "-c", "echo kept > /data/f")
    assert p.ok("run", "--rm", "-v", "data:/data:ro", IMG, "cat", "/data/f") == "kept\n"
    assert "data" in p.ok("volume", "ls", "-q").split()
    p.ok("run", "-d", "--name", "user", "-v", "data:/data", IMG, "sleep", "30")
    r = p("volume", "rm", "data")
    assert r.rc == 125 and "volume is in use" in one_error_line(r)
    p.ok("rm", "-f", "user")
    p.ok("volume", "rm", "data")
    p.ok("create", "--name", "anon", "-v", "/scratch", IMG, "true")
    vols = p.ok("volume", "ls", "-q").split()
    assert len(vols) == 1 and len(vols[0]) == 64
    p.ok("rm", "-v", "anon")
    assert p.ok("volume", "ls", "-q").strip() == ""
    p.ok("volume", "create", "--label", "k=v", "lab")
    assert '"k": "v"' in p.ok("volume", "inspect", "lab")
    assert "lab" in p.ok("volume", "prune", "-a", "-f")


def test_exec_cp_pause_rename_top(p: Pallet, tmp_path: Path) -> None:
    p.ok("run", "-d", "--name", "ex", IMG, "sleep", "60")
    assert p("exec", "ex", "sh", "-c", "exit 5").rc == 5
    assert p.ok("exec", "-u", "app", "-w", "/tmp", "-e", "Q=1", "ex", "sh", "-c", "id -u; pwd; echo $Q").split() == ["1000", "/tmp", "1"]
    assert p("exec", "ex", "nope").rc == 127
    (tmp_path / "in.txt").write_text("copied in\n")
    p.ok("cp", str(tmp_path / "in.txt"), "ex:/tmp/")
    assert p.ok("exec", "ex", "cat", "/tmp/in.txt") == "copied in\n"
    p.ok("cp", "ex:/etc/passwd", str(tmp_path / "pw"))
    assert (tmp_path / "pw").read_text().startswith("root:")
    assert "sleep 60" in p.ok("top", "ex")
    p.ok("pause", "ex")
    assert p.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "ex").strip() == "paused true"
    assert "(Paused)" in p.ok("ps", "--format", "{{.Status}}")
    p.ok("unpause", "ex")
    assert p.ok("inspect", "-f", "{{.State.Status}}", "ex").strip() == "running"
    p.ok("rename", "ex", "ex2")
    assert p.ok("inspect", "-f", "{{.Name}}", "ex2").strip() == "/ex2"
    assert p("inspect", "ex").rc != 0
    r = p("run", "--name", "ex2", IMG, "true")
    assert r.rc == 125


def test_ps_listing_and_prune(p: Pallet) -> None:
    a = p.ok("run", "-d", "--name", "up", IMG, "sleep", "60").strip()
    p.ok("run", "--name", "done", IMG, "true")
    assert p.ok("ps", "-q").split() == [a[:12]]
    assert p.ok("ps", "-q", "--no-trunc").split() == [a]
    assert set(p.ok("ps", "-a", "--format", "{{.Names}}").split()) == {"up", "done"}
    assert p.ok("ps", "-l", "--format", "{{.Names}}").strip() == "done"
    assert p.ok("ps", "-n", "1", "-q").strip() != ""
    assert p.ok("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").strip() == "done"
    assert p.ok("ps", "-a", "--filter", "name=do", "--format", "{{.Names}}").strip() == "done"
    assert p.ok("ps", "-a", "--filter", "ancestor=busybox:test", "-q").split().__len__() == 2
    assert p.ok("ps", "-a", "--filter", f"id={a[:5]}", "--format", "{{.Names}}").strip() == "up"
    header = p.ok("ps").splitlines()[0].split()
    assert header[:3] == ["CONTAINER", "ID", "IMAGE"]
    out = p.ok("container", "prune", "-f")
    assert "Deleted Containers:" in out and "Total reclaimed space" in out
    assert p.ok("ps", "-a", "--format", "{{.Names}}").split() == ["up"]


def test_reconcile_after_monitor_killed(p: Pallet) -> None:
    import signal

    p.ok("run", "-d", "--name", "orphan", IMG, "sleep", "60")
    cid = p.ok("inspect", "-f", "{{.Id}}", "orphan").strip()
    import json

    state = json.loads((p.root / "containers" / cid / "state.json").read_text())
    os.kill(state["monitor_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    assert eventually(lambda: not _alive(state["pid"]))
    time.sleep(0.2)
    assert p.ok("inspect", "-f", "{{.State.Status}}", "orphan").strip() == "exited"
    # and its rootfs mount was released by the command that noticed
    with open("/proc/self/mountinfo") as f:
        assert str(p.root / "containers" / cid / "rootfs") not in f.read()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def test_foreground_forwards_signals(p: Pallet) -> None:
    import signal
    import subprocess

    proc = subprocess.Popen(p.argv("run", "--rm", "--init", IMG, "sh", "-c", "echo up; exec sleep 60"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()


def test_restart_command(p: Pallet) -> None:
    p.ok("run", "-d", "--init", "--name", "rs", IMG, "sh", "-c", "echo started; exec sleep 60")
    first = int(p.ok("inspect", "-f", "{{.State.Pid}}", "rs"))
    p.ok("restart", "-t", "1", "rs")
    assert p.ok("inspect", "-f", "{{.State.Status}}", "rs").strip() == "running"
    assert int(p.ok("inspect", "-f", "{{.State.Pid}}", "rs")) != first
    assert eventually(lambda: p.ok("logs", "rs").count("started") == 2)


def test_kill_9_of_foreground_cli_is_reconciled(p: Pallet) -> None:
    import json
    import signal
    import subprocess

    proc = subprocess.Popen(p.argv("run", "--name", "fgk", IMG, "sh", "-c", "echo up; sleep 1; exit 0"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    cid = p.ok("inspect", "-f", "{{.Id}}", "fgk").strip()
    pid = json.loads((p.root / "containers" / cid / "state.json").read_text())["pid"]
    assert eventually(lambda: not _alive(pid), timeout=15)
    assert p.ok("inspect", "-f", "{{.State.Status}}", "fgk").strip() == "exited"
    with open("/proc/self/mountinfo") as f:
        assert str(p.root / "containers" / cid / "rootfs") not in f.read()
