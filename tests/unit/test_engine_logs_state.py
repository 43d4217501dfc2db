"""json-file logs, timestamps, container records, spec building and status strings (no root)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pallet.engine.humanize import command_string, human_duration, status_string
from pallet.engine.logs import LogWriter, encode_record, parse_rfc3339_ns, parse_time, read_logs
from pallet.engine.spec_builder import (
    INIT_PATH,
    bind,
    command,
    finish_spec,
    hosts_file,
    process_env,
    resolv_conf,
    tmpfs,
)
from pallet.engine.state import (
    ContainerSpec,
    ContainerState,
    ContainerStore,
    MountSpec,
    rfc3339,
)
from pallet.engine.users import ExecUser
from pallet.errors import ContainerNotFound, InvalidArgument, NameInUse


def test_json_file_records(tmp_path: Path) -> None:
    rec = json.loads(encode_record("stderr", b"caf\xc3\xa9 \xff\n", 1_700_000_000_123_456_789))
    assert rec == {"log": "café \ufffd\n", "stream": "stderr", "time": "2023-11-14T22:13:20.123456789Z"}
    w = LogWriter(tmp_path / "l.log")
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\nthree")
    w.close()
    recs = list(read_logs(tmp_path / "l.log"))
    assert [(r.stream, r.data) for r in recs] == [
        ("stdout", b"one\n"), ("stderr", b"err\n"), ("stdout", b"two\n"), ("stdout", b"three")]
    assert [r.data for r in read_logs(tmp_path / "l.log", tail=2)] == [b"two\n", b"three"]
    assert list(read_logs(tmp_path / "l.log", tail=0)) == []
    assert list(read_logs(tmp_path / "missing.log")) == []


def test_long_lines_are_split(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "l.log")
    w.write("stdout", b"x" * 40000 + b"\n")
    w.close()
    recs = list(read_logs(tmp_path / "l.log"))
    assert len(recs) == 3 and b"".join(r.data for r in recs) == b"x" * 40000 + b"\n"


def test_since_until(tmp_path: Path) -> None:
    p = tmp_path / "l.log"
    with open(p, "wb") as f:
        f.write(encode_record("stdout", b"old\n", 1_000 * 10**9))
        f.write(encode_record("stdout", b"mid\n", 2_000 * 10**9))
        f.write(encode_record("stdout", b"new\n", 3_000 * 10**9))
    assert [r.data for r in read_logs(p, since=1_500 * 10**9)] == [b"mid\n", b"new\n"]
    assert [r.data for r in read_logs(p, until=2_500 * 10**9)] == [b"old\n", b"mid\n"]
    now = 10_000 * 10**9
    assert parse_time("1500", now) == 1_500 * 10**9
    assert parse_time("10m", now) == now - 600 * 10**9
    assert parse_time("1h30m", now) == now - 5400 * 10**9
    assert parse_time("1970-01-01T00:25:00Z", now) == 1_500 * 10**9
    assert parse_rfc3339_ns("1970-01-01T01:00:00.5+01:00") == 500_000_000
    with pytest.raises(InvalidArgument):
        parse_time("yesterday-ish", now)


def test_follow_stops_when_not_alive(tmp_path: Path) -> None:
    p = tmp_path / "l.log"
    p.write_bytes(encode_record("stdout", b"a\n"))
    calls = []

    def alive() -> bool:
        calls.append(1)
        if len(calls) == 1:
            with open(p, "ab") as f:
                f.write(encode_record("stdout", b"b\n"))
        return len(calls) < 3

    assert [r.data for r in read_logs(p, follow=True, alive=alive, poll=0.001)] == [b"a\n", b"b\n"]


def spec(**kw: object) -> ContainerSpec:
    base: dict[str, object] = {"image": "busybox", "image_id": "sha256:" + "a" * 64, "path": "sh", "args": ("-c", "x")}
    base.update(kw)
    return ContainerSpec(**base)  # type: ignore[arg-type]


def test_store_records_names_and_prefixes(tmp_path: Path) -> None:
    st = ContainerStore(tmp_path)
    a, b = "ab" + "0" * 62, "ac" + "1" * 62
    st.reserve("web", a)
    st.create(a, "web", spec(mounts=(MountSpec("volume", "/d", "v"),)), time.time_ns())
    st.reserve("db", b)
    st.create(b, "db", spec(), time.time_ns())
    with pytest.raises(NameInUse, match='The container name "/web" is already in use'):
        st.reserve("web", "f" * 64)
    assert st.resolve("web") == a and st.resolve("/db") == b
    assert st.resolve("ab") == a and st.resolve(b) == b
    with pytest.raises(InvalidArgument, match="multiple IDs found with provided prefix: a"):
        st.resolve("a")
    with pytest.raises(ContainerNotFound, match="No such container: zz"):
        st.resolve("zz")
    c = st.load(a)
    assert c.spec.mounts[0].source == "v" and c.state.status == "created"
    with st.locked(a):
        c = st.save_state(c, ContainerState(status="running", pid=42))
    assert st.load(a).state.pid == 42
    c = st.set_name(c, "web2")
    st.release("web", a)
    assert st.load(a).name == "web2"
    st.remove_record(st.load(b))
    assert st.ids() == [a] and not (tmp_path / "containers" / "names" / "db").exists()
    assert not any(n.startswith(".") for n in os.listdir(tmp_path / "containers"))


def test_spec_builder() -> None:
    s = spec(env=("A=1", "PATH=/x"), tty=True, init=True, read_only=True, annotations={"k": "v"})
    env = process_env(s, ExecUser(1000, 1000, (), "/home/app"), "box")
    assert env[:3] == ["PATH=/x", "HOSTNAME=box", "TERM=xterm"] and "HOME=/home/app" in env
    assert command(s) == [INIT_PATH, "--", "sh", "-c", "x"]
    base = {"mounts": [{"destination": "/proc"}, {"destination": "/dev/shm"}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}}
    out = finish_spec(base, s, rootfs="/r", mounts=[bind("/h/a/b", "/a/b"), bind("/h/a", "/a", True),
                                                    tmpfs("/dev/shm", ("size=1m",))],
                      container_id="c" * 64, name="n", network_mode="host")
    assert out["root"] == {"path": "/r", "readonly": True}
    dests = [m["destination"] for m in out["mounts"]]
    assert dests == ["/proc", "/a", "/a/b", "/dev/shm"]  # ours after the defaults, parents first
    assert out["mounts"][1]["options"] == ["rbind", "rprivate", "ro"]
    assert out["linux"]["namespaces"] == [{"type": "pid"}]  # --network host: no network namespace
    assert out["annotations"]["k"] == "v"
    assert "127.0.0.1\tlocalhost" in hosts_file("h", "10.0.0.2", ("db:10.0.0.9",))
    assert "10.0.0.2\th" in hosts_file("h", "10.0.0.2") and "10.0.0.9\tdb" in hosts_file("h", "", ("db:10.0.0.9",))
    assert resolv_conf("nameserver 127.0.0.53\nnameserver 9.9.9.9\nsearch x\n") == "nameserver 9.9.9.9\nsearch x\n"
    assert resolv_conf("nameserver 1.1.1.1\n", ("8.8.8.8",)) == "nameserver 8.8.8.8\n"


def test_status_strings(tmp_path: Path) -> None:
    from pallet.engine.state import Container

    now = 1_000_000.0
    c = Container("c" * 64, "n", 0, spec(path="sleep", args=("1000000000000",)),
                  ContainerState(status="running", started_at=int((now - 90) * 1e9)), tmp_path)
    assert status_string(c, now) == "Up About a minute"
    c2 = Container(c.id, "n", 0, c.spec, ContainerState(status="exited", exit_code=3,
                                                        finished_at=int((now - 7200) * 1e9)), tmp_path)
    assert status_string(c2, now) == "Exited (3) 2 hours ago"
    assert command_string(c) == '"sleep 1000000000000"'
    assert command_string(Container(c.id, "n", 0, spec(path="sh", args=("-c", "a long command here")),
                                    ContainerState(), tmp_path)) == '"sh -c a long comman…"'
    assert human_duration(0.2) == "Less than a second" and human_duration(3 * 86400) == "3 days"
    assert rfc3339(0) == "0001-01-01T00:00:00Z"
