"""The network layer below the engine: CNI lists on namespaces of the tests' own, with a busybox
server started in them (nsenter), and the namespace a build step gets."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from pallet.network import cni, conflist, firewall, netns, registry
from tests.conftest import needs_busybox, needs_root
from tests.integration.network_support import (
    NetEnv,
    Outside,
    alloc,
    fetch,
    links,
    sh,
    snapshot,
    wait_fetch,
)

pytestmark = [needs_root, needs_busybox,
              pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(),
                                 reason="needs Debian's containernetworking-plugins in /usr/lib/cni")]

PATHS = ["/usr/lib/cni"]


@pytest.fixture
def ne(pallet_root: Path, tmp_path: Path) -> NetEnv:
    n = alloc()
    return NetEnv(root=pallet_root, ipam=tmp_path / "ipam", default_bridge=f"pnw{n}",
                  default_subnet=f"10.231.{n}.0/24", tokens=[f"pnw{n}", f"10.231.{n}."])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_add_check_del_on_own_namespace(ne: NetEnv, tmp_path: Path) -> None:
    before = snapshot(ne)
    bridge, subnet = ne.network()
    net = conflist.Network(name="pnwlow", id="0" * 64, bridge=bridge, subnet=subnet,
                           gateway=subnet.replace("0/24", "1"))
    doc = conflist.build_conflist(net, str(ne.ipam / bridge))
    nsdir = ne.root / "run" / "netns"
    path = netns.create(nsdir, "pnw-low")
    server = None
    port = _free_port()
    att = cni.Attachment("pnw-low-cid", str(path), "eth0",
                         runtime_config={"portMappings": [{"hostPort": port, "containerPort": 8080,
                                                           "protocol": "tcp"}]})
    try:
        firewall.setup_network(bridge, False)
        result = cni.add_list(doc, att, PATHS)
        addr = cni.result_ip(result)[0]
        assert addr.startswith(subnet.rsplit(".", 1)[0])
        assert f"{bridge}" in links()
        cni.check_list(doc, att, PATHS, result)
        www = tmp_path / "www"
        www.mkdir()
        (www / "index.html").write_text("in the namespace\n")
        server = subprocess.Popen(["nsenter", f"--net={path}", "/bin/busybox", "httpd", "-f", "-p", "8080",
                                   "-h", str(www)])
        assert wait_fetch(f"http://{addr}:8080/").strip() == "in the namespace"
        assert fetch(f"http://127.0.0.1:{port}/").strip() == "in the namespace"
        # CHECK notices what was broken behind its back
        sh("nsenter", f"--net={path}", "ip", "link", "set", "eth0", "address", "02:42:0a:e7:00:63")
        with pytest.raises(cni.CniError):
            cni.check_list(doc, att, PATHS, result)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        errors = cni.del_list(doc, att, PATHS, result if "result" in locals() else None)
        assert errors == []
        netns.remove(path)
        netns.release_dir(nsdir)
        firewall.teardown_network(bridge, False)
        registry.remove_bridge(bridge)
        registry.remove_ipam(registry.Config(extra={"network.ipam_dir": str(ne.ipam)}), bridge)
    assert snapshot(ne) == before


def test_a_failing_plugin_undoes_the_ones_before(ne: NetEnv) -> None:
    bridge, subnet = ne.network()
    net = conflist.Network(name="pnwfail", id="1" * 64, bridge=bridge, subnet=subnet,
                           gateway=subnet.replace("0/24", "1"))
    doc = conflist.build_conflist(net, str(ne.ipam / bridge))
    doc["plugins"].append({"type": "tuning", "sysctl": {"net.no.such.key": "1"}})
    nsdir = ne.root / "run" / "netns"
    path = netns.create(nsdir, "pnw-fail")
    try:
        with pytest.raises(cni.CniError, match='type="tuning"'):
            cni.add_list(doc, cni.Attachment("pnw-fail-cid", str(path)), PATHS)
        leases = [p.name for p in (ne.ipam / bridge / "pnwfail").iterdir() if p.name[0].isdigit()]
        assert leases == []
        assert sh("nsenter", f"--net={path}", "ip", "-o", "link", "show", "eth0", check=False).returncode != 0
    finally:
        netns.remove(path)
        netns.release_dir(nsdir)
        firewall.drop_unused_chains()
        registry.remove_bridge(bridge)
    assert not any(t in line for t in ne.tokens for line in sh("iptables-save").stdout.splitlines())


def test_build_step_namespace_reaches_out(ne: NetEnv, tmp_path: Path) -> None:
    """What a RUN step gets: a namespace on the default network whose traffic is masqueraded."""
    from pallet.engine import networks

    before = snapshot(ne)
    cfg = ne.config()
    out = Outside(ne, tmp_path / "www")
    try:
        with networks.build_network(cfg, "pnwstep") as path:
            assert path is not None
            r = sh("nsenter", f"--net={path}", "sh", "-c",
                   f'printf "GET /index.html HTTP/1.0\\r\\n\\r\\n" | /bin/busybox nc -w 2 {out.ip} 80 | tail -n 1')
            assert r.stdout.strip() == "outside"
            assert "nameserver" in networks.resolv_conf() or networks.resolv_conf() == ""
        assert not Path(path).exists()
        with networks.build_network(cfg, "pnwnone", "none") as path:
            r = sh("nsenter", f"--net={path}", "ip", "-o", "link")
            assert [ln.split(":")[1].strip() for ln in r.stdout.splitlines()] == ["lo"]
        with networks.build_network(cfg, "pnwhost", "host") as path:
            assert path is None
    finally:
        out.close()
        networks.destroy_default(cfg)
        netns.release_dir(cfg.run_root / "netns")
    assert snapshot(ne) == before
    assert json.loads((cfg.root / "networks" / "bridge.conflist").read_text())["plugins"][0]["bridge"] == \
        ne.default_bridge
