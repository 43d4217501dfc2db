"""Networking end to end through the CLI: published ports, names, isolation, --internal, none,
port conflicts, connect/disconnect, recovery; the host's network state is as before after each test."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import needs_busybox, needs_root
from tests.integration.network_support import (
    NetEnv,
    NetPallet,
    Outside,
    alloc,
    cleanup,
    fetch,
    forward_policy,
    host_address,
    http_via_nc,
    ps_running,
    sh,
    snapshot,
    wait_fetch,
)

pytestmark = [needs_root, needs_busybox,
              pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(),
                                 reason="needs Debian's containernetworking-plugins in /usr/lib/cni")]

HTTPD = ("httpd", "-f", "-p", "80", "-h", "/etc")


@pytest.fixture
def ne(pallet_root: Path, tmp_path: Path) -> NetEnv:
    n = alloc()
    return NetEnv(root=pallet_root, ipam=tmp_path / "ipam", default_bridge=f"pnw{n}",
                  default_subnet=f"10.231.{n}.0/24", tokens=[f"pnw{n}", f"10.231.{n}."])


@pytest.fixture
def np(ne: NetEnv, busybox_image: str) -> Iterator[NetPallet]:
    before = snapshot(ne)
    assert before["iptables"] == []
    p = NetPallet(ne.root, ne.env)
    try:
        yield p
    finally:
        cleanup(p, ne)
        after = snapshot(ne)
        assert after == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_published_port_answers_on_localhost_and_host_addresses(np: NetPallet) -> None:
    port = _free_port()
    cid = np.ok("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox:test", *HTTPD).strip()
    assert wait_fetch(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    addr = host_address()
    if addr:
        assert fetch(f"http://{addr}:{port}/hostname").strip() == cid[:12]
    assert np.ok("port", "web").strip() == f"80/tcp -> 0.0.0.0:{port}"
    assert np.ok("port", "web", "80").strip() == f"0.0.0.0:{port}"
    doc = json.loads(np.ok("inspect", "web"))[0]["NetworkSettings"]
    assert doc["Ports"]["80/tcp"][0] == {"HostIp": "0.0.0.0", "HostPort": str(port)}
    ip = doc["Networks"]["bridge"]["IPAddress"]
    assert ip.startswith("10.231.") and doc["IPAddress"] == ip
    assert fetch(f"http://{ip}/hostname").strip() == cid[:12]  # the host reaches the container directly
    # the container reaches the host's side of its bridge (its gateway)
    gw = doc["Gateway"]
    assert np("exec", "web", "ping", "-c", "1", "-W", "2", gw).rc == 0
    np.ok("stop", "-t", "1", "web")
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}/hostname", timeout=1)
    np.ok("start", "web")
    assert wait_fetch(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]


def test_port_conflict_is_refused_before_start(np: NetPallet) -> None:
    port = _free_port()
    np.ok("run", "-d", "--name", "one", "-p", f"{port}:80", "busybox:test", *HTTPD)
    r = np("run", "-d", "--name", "two", "-p", f"{port}:80", "busybox:test", *HTTPD)
    assert r.rc == 125
    assert r.err.strip().endswith(f"Bind for 0.0.0.0:{port} failed: port is already allocated"), r
    assert not ps_running(np, "two")
    with socket.socket() as s:  # a host process holding a port
        s.bind(("0.0.0.0", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        r = np("run", "-d", "--name", "three", "-p", f"{busy}:80", "busybox:test", *HTTPD)
        assert r.rc == 125 and f"Bind for 0.0.0.0:{busy} failed: port is already allocated" in r.err
    assert wait_fetch(f"http://127.0.0.1:{port}/hostname")  # the first one still serves


def test_publish_all_exposed_ports(np: NetPallet, busybox_tar: Path) -> None:
    np.ok("import", "--change", "EXPOSE 80", "--change", 'CMD ["httpd","-f","-p","80","-h","/etc"]',
          str(busybox_tar), "web:test")
    cid = np.ok("run", "-d", "-P", "--name", "pub", "web:test").strip()
    line = np.ok("port", "pub").strip()
    assert line.startswith("80/tcp -> 0.0.0.0:")
    port = int(line.rsplit(":", 1)[1])
    assert wait_fetch(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]


def test_user_networks_names_aliases_and_isolation(np: NetPallet, ne: NetEnv) -> None:
    br_a, sub_a = ne.network()
    br_b, sub_b = ne.network()
    np.ok("network", "create", "--subnet", sub_a, "-o", f"com.docker.network.bridge.name={br_a}",
          "--label", "team=a", "neta")
    np.ok("network", "create", "--subnet", sub_b, "-o", f"com.docker.network.bridge.name={br_b}", "netb")
    ls = np.ok("network", "ls").splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert sorted(ln.split()[1] for ln in ls[1:]) == ["bridge", "host", "neta", "netb", "none"]
    assert np.ok("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}").split() == ["neta"]
    a1 = np.ok("run", "-d", "--name", "a1", "--network", "neta", "--network-alias", "db",
               "busybox:test", *HTTPD).strip()
    b1 = np.ok("run", "-d", "--name", "b1", "--network", "netb", "busybox:test", *HTTPD).strip()
    b1_ip = json.loads(np.ok("inspect", "b1"))[0]["NetworkSettings"]["Networks"]["netb"]["IPAddress"]
    assert b1_ip.startswith(sub_b.rsplit(".", 1)[0])
    script = "; ".join([http_via_nc("a1"), http_via_nc("db"), http_via_nc(b1_ip), "ping -c1 -W1 b1 || echo nob1"])
    out = np.ok("run", "--rm", "--network", "neta", "busybox:test", "sh", "-c", script).split()
    assert out == [a1[:12], a1[:12], "nob1"], out
    doc = json.loads(np.ok("network", "inspect", "neta"))[0]
    assert list(doc["Containers"]) == [a1] and doc["IPAM"]["Config"][0]["Subnet"] == sub_a
    # connect b1 to neta: now reachable by name from neta, and it sees a1; disconnect undoes it
    np.ok("network", "connect", "--alias", "bee", "neta", "b1")
    assert np.ok("exec", "b1", "sh", "-c", http_via_nc("db")).strip() == a1[:12]
    assert np.ok("exec", "a1", "sh", "-c", http_via_nc("bee")).strip() == b1[:12]
    np.ok("network", "disconnect", "neta", "b1")
    assert "bee" not in np.ok("exec", "a1", "cat", "/etc/hosts")
    assert np("exec", "b1", "ping", "-c1", "-W1", "a1").rc != 0
    r = np("network", "rm", "neta")
    assert r.rc == 125 and "has active endpoints" in r.err
    np.ok("stop", "-t", "0", "b1")
    np.ok("network", "prune", "-f")  # netb has a stopped container: kept
    assert sorted(np.ok("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}").split()) == [
        "neta", "netb"]
    assert np("network", "rm", "bridge").rc == 125


def test_network_none_has_only_loopback(np: NetPallet) -> None:
    out = np.ok("run", "--rm", "--network", "none", "busybox:test", "ip", "-o", "link").splitlines()
    assert [ln.split(":")[1].strip() for ln in out] == ["lo"]


def test_default_network_reaches_outside_and_internal_does_not(np: NetPallet, ne: NetEnv, tmp_path: Path) -> None:
    out = Outside(ne, tmp_path / "www")
    try:
        get = http_via_nc(out.ip, path="/index.html")
        assert np.ok("run", "--rm", "busybox:test", "sh", "-c", get).strip() == "outside"
        br, sub = ne.network()
        np.ok("network", "create", "--internal", "--subnet", sub, "-o", f"com.docker.network.bridge.name={br}",
              "closed")
        np.ok("run", "-d", "--name", "peer", "--network", "closed", "busybox:test", *HTTPD)
        r = np("run", "--rm", "--network", "closed", "busybox:test", "sh", "-c",
               f"{get}; {http_via_nc('peer')}; ip route")
        lines = r.out.split()
        assert "outside" not in lines and "default" not in r.out
        assert len(lines) >= 1 and lines[0] != "outside"  # peers on the internal network still talk
    finally:
        out.close()


def test_forward_policy_drop(np: NetPallet, ne: NetEnv, tmp_path: Path) -> None:
    """What dockerd does to the host: FORWARD's policy DROP. Containers still get out, ports still publish."""
    old = forward_policy()
    out = Outside(ne, tmp_path / "www")
    sh("iptables", "-P", "FORWARD", "DROP")
    try:
        get = http_via_nc(out.ip, path="/index.html")
        assert np.ok("run", "--rm", "busybox:test", "sh", "-c", get).strip() == "outside"
        port = _free_port()
        cid = np.ok("run", "-d", "-p", f"{port}:80", "busybox:test", *HTTPD).strip()
        assert wait_fetch(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
        # from "another machine": the outside namespace reaches the published port on the host's address
        r = sh("nsenter", f"--net={out.path}", "sh", "-c",
               http_via_nc(out.host_ip, port).replace("nc ", "/bin/busybox nc "), check=False)
        assert r.stdout.strip() == cid[:12], r
    finally:
        sh("iptables", "-P", "FORWARD", old)
        out.close()


def test_dns_flags_and_etc_files(np: NetPallet) -> None:
    out = np.ok("run", "--rm", "--hostname", "box", "--dns", "10.231.250.53", "--dns-search", "corp.test",
                "--dns-option", "ndots:2", "--add-host", "db.local:10.231.250.9", "busybox:test",
                "sh", "-c", "cat /etc/resolv.conf /etc/hostname; grep -E 'db.local|box' /etc/hosts")
    assert out.splitlines() == ["nameserver 10.231.250.53", "search corp.test", "options ndots:2", "box",
                                "10.231.250.9\tdb.local", out.splitlines()[-1]]
    assert out.splitlines()[-1].endswith("\tbox") and out.splitlines()[-1].startswith("10.231.")


def test_reconcile_after_pallet_was_killed(np: NetPallet, ne: NetEnv) -> None:
    """pallet killed right after it set a container's network up: namespace, veth, lease and rules
    stay behind until the next reconcile (``network prune``) releases them."""
    from pallet.engine import networks
    from pallet.engine.containers import ContainerService
    from pallet.network import endpoints

    port = _free_port()
    cid = np.ok("create", "--name", "half", "-p", f"{port}:80", "busybox:test", *HTTPD).strip()
    cfg = ne.config()
    c = ContainerService(cfg).get(cid)
    res = networks.setup(cfg, c)  # what `start` does first; then "kill -9"
    assert res.netns_path and Path(res.netns_path).exists() and res.ip.startswith("10.231.")
    lease = ne.ipam / ne.default_bridge / "bridge" / res.ip
    assert lease.read_text().split()[0] == cid
    np.ok("network", "prune", "-f")  # a container being created is spared for a while
    assert endpoints.load(cfg, cid) is not None
    assert networks.reconcile(cfg, grace=0) == [cid]
    assert endpoints.load(cfg, cid) is None and not Path(res.netns_path).exists() and not lease.exists()
    np.ok("start", "half")  # and the container starts normally afterwards
    assert wait_fetch(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]


def test_static_ip_check_and_mistakes_refused_at_create(np: NetPallet, ne: NetEnv) -> None:
    br, sub = ne.network()
    np.ok("network", "create", "--subnet", sub, "--ip-range", sub.replace("0/24", "128/25"),
          "-o", f"com.docker.network.bridge.name={br}", "fixed")
    want = sub.replace("0/24", "77")
    cid = np.ok("run", "-d", "--name", "s1", "--network", "fixed", "--ip", want, "busybox:test", *HTTPD).strip()
    assert np.ok("inspect", "-f", "{{.NetworkSettings.Networks.fixed.IPAddress}}", "s1").strip() == want
    auto = np.ok("run", "-d", "--name", "s2", "--network", "fixed", "busybox:test", *HTTPD).strip()
    got = json.loads(np.ok("inspect", auto))[0]["NetworkSettings"]["Networks"]["fixed"]["IPAddress"]
    assert int(got.rsplit(".", 1)[1]) > 128  # from --ip-range
    doc = json.loads(np.ok("network", "inspect", "-v", "fixed"))[0]
    assert {k: v["Check"] for k, v in doc["Containers"].items()} == {cid: "ok", auto: "ok"}
    for args, msg in [
        (("--network", "pnw-no-such-net"), "network pnw-no-such-net not found"),
        (("-p", "abc"), 'invalid port specification: "abc"'),
        (("--network-alias", "x"), "network-scoped alias is supported only for containers in user defined networks"),
        (("--network", "fixed", "--ip", "10.231.255.1"), "no configured subnet contains IP address 10.231.255.1"),
    ]:
        r = np("create", *args, "busybox:test", "true")
        assert r.rc == 125 and r.err.strip() == f"Error: {msg}" or r.err.strip().endswith(msg), r
    assert len(np.ok("ps", "-aq").split()) == 2  # nothing was created by the mistakes


def test_user_supplied_conflist(np: NetPallet, ne: NetEnv, tmp_path: Path) -> None:
    """A conflist of the user's own, with a plugin pallet never writes (tuning), run as written."""
    br, sub = ne.network()
    confdir = tmp_path / "net.d"
    confdir.mkdir()
    (confdir / "tuned.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "tuned", "plugins": [
            {"type": "bridge", "bridge": br, "isGateway": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": sub}]], "dataDir": str(ne.ipam / br)}},
            {"type": "tuning", "sysctl": {"net.ipv4.tcp_keepalive_time": "123"}},
        ]}))
    env = {"PALLET_CNI_CONFIG_DIR": str(confdir)}
    assert "tuned" in np.ok("network", "ls", "--format", "{{.Name}}", env=env).split()
    out = np.ok("run", "--rm", "--network", "tuned", "busybox:test", "sh", "-c",
                "cat /proc/sys/net/ipv4/tcp_keepalive_time; ip -o -4 addr show eth0", env=env)
    assert out.split()[0] == "123" and f" {sub.rsplit('.', 1)[0]}." in out
    assert np("network", "rm", "tuned", env=env).rc == 125
    from pallet.network import registry

    registry.remove_bridge(br)
    registry.remove_ipam(ne.config(), br)


def test_kill9_of_monitor_and_container_releases_the_network(np: NetPallet, ne: NetEnv) -> None:
    """Nothing left to clean up the container: the next command's reconciliation releases its network."""
    import os
    import signal

    from pallet.network import endpoints

    port = _free_port()
    cid = np.ok("run", "-d", "--name", "k9", "-p", f"{port}:80", "busybox:test", *HTTPD).strip()
    pid = int(np.ok("inspect", "-f", "{{.State.Pid}}", "k9"))
    doc = json.loads((ne.root / "containers" / cid / "state.json").read_text())
    mon = int(doc.get("monitor_pid") or doc.get("state", {}).get("monitor_pid") or 0)
    assert mon > 0 and endpoints.load(ne.config(), cid) is not None
    os.kill(mon, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    import time

    deadline = time.monotonic() + 10
    while endpoints.load(ne.config(), cid) is not None and time.monotonic() < deadline:
        np.ok("ps", "-a")
        time.sleep(0.2)
    assert endpoints.load(ne.config(), cid) is None
    assert not (ne.root / "run" / "netns" / cid).exists()
    assert f"--dports {port}" not in sh("iptables", "-t", "nat", "-S").stdout


def test_network_container_mode_shares_the_namespace(np: NetPallet) -> None:
    cid = np.ok("run", "-d", "--name", "owner", "busybox:test", *HTTPD).strip()
    ip = np.ok("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "owner").strip()
    out = np.ok("run", "--rm", "--network", "container:owner", "busybox:test", "sh", "-c",
                f"ip -o -4 addr show eth0; {http_via_nc('127.0.0.1')}")
    assert f" {ip}/" in out and out.split()[-1] == cid[:12]
    r = np("run", "--rm", "--network", "container:pnw-nobody", "busybox:test", "true")
    assert r.rc == 125 and "No such container: pnw-nobody" in r.err, r
    assert np.ok("ps", "-aq").split() == [cid[:12]]  # refused before anything was created
