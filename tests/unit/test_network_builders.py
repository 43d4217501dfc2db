"""Pure parts of networking: -p specs, CNI lists, plugin input, firewall rules, /etc files."""

from __future__ import annotations

import json

import pytest

from pallet.errors import Conflict, InvalidArgument
from pallet.network import cni, conflist, firewall, hosts, ports
from pallet.network.ports import PortBinding, parse_publish

# -- -p ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("80", [PortBinding(80, "tcp", "", 0)]),
        ("8080:80", [PortBinding(80, "tcp", "", 8080)]),
        ("127.0.0.1:8080:80", [PortBinding(80, "tcp", "127.0.0.1", 8080)]),
        ("127.0.0.1::80", [PortBinding(80, "tcp", "127.0.0.1", 0)]),
        ("53:53/udp", [PortBinding(53, "udp", "", 53)]),
        ("8000-8001:80-81", [PortBinding(80, "tcp", "", 8000), PortBinding(81, "tcp", "", 8001)]),
        ("80-81", [PortBinding(80, "tcp", "", 0), PortBinding(81, "tcp", "", 0)]),
        ("8000-8010:80", [PortBinding(80, "tcp", "", 0, (8000, 8010))]),
        ("[::1]:8080:80", [PortBinding(80, "tcp", "::1", 8080)]),
        ("9000:90/TCP", [PortBinding(90, "tcp", "", 9000)]),
    ],
)
def test_parse_publish(spec: str, want: list[PortBinding]) -> None:
    assert parse_publish(spec) == want


@pytest.mark.parametrize("spec", ["", "abc", "0", "70000", "80/icmp", "1:2:3:4", "nothost:80:80",
                                  "8000-8002:80-81", "81-80", ":"])
def test_parse_publish_rejects(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_publish(spec)


def test_publish_all_adds_exposed_ports_once() -> None:
    got = ports.parse_all(["8080:80"], ["80/tcp", "443/tcp", "53/udp"], publish_all=True)
    assert [(b.container_port, b.protocol, b.host_port) for b in got] == [
        (80, "tcp", 8080), (443, "tcp", 0), (53, "udp", 0)]
    assert ports.parse_all([], ["80/tcp"], publish_all=False) == []


def test_allocate_refuses_a_port_taken_by_another_container() -> None:
    taken = [PortBinding(80, "tcp", "", 18081)]
    with pytest.raises(Conflict, match=r"^Bind for 0.0.0.0:18081 failed: port is already allocated$"):
        ports.allocate([PortBinding(8080, "tcp", "", 18081)], taken)
    with pytest.raises(Conflict, match="127.0.0.1:18081"):
        ports.allocate([PortBinding(8080, "tcp", "127.0.0.1", 18081)], taken)
    # another protocol or another explicit address is no clash
    assert ports.allocate([PortBinding(53, "udp", "", 18081)], taken)[0].host_port == 18081


def test_allocate_refuses_a_port_a_host_process_listens_on() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(Conflict, match=f"Bind for 0.0.0.0:{port} failed: port is already allocated"):
            ports.allocate([PortBinding(80, "tcp", "", port)])


def test_publishing_on_an_address_the_host_lacks_is_refused() -> None:
    with pytest.raises(Conflict, match=r"listen tcp4 192.0.2.254:8080: bind: cannot assign requested address"):
        ports.allocate([PortBinding(80, "tcp", "192.0.2.254", 8080)])


def test_allocate_picks_free_ports_and_ranges() -> None:
    got = ports.allocate([PortBinding(80, "tcp", "", 0), PortBinding(81, "tcp", "", 0)])
    assert len({b.host_port for b in got}) == 2 and all(b.host_port > 1024 for b in got)
    lo = got[0].host_port
    r = ports.allocate([PortBinding(90, "tcp", "", 0, (lo, lo + 5))], in_use=[PortBinding(1, "tcp", "", lo)])
    assert lo < r[0].host_port <= lo + 5


def test_ports_forwarded_by_portmap_rules() -> None:
    text = """-N CNI-HOSTPORT-DNAT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"bridge\\" id: \\"x\\"" -m multiport --dports 8080,9000:9002 -j CNI-DN-1
-A CNI-HOSTPORT-DNAT -p udp -m multiport --dports 53 -j CNI-DN-2
"""
    got = {(b.host_port, b.protocol) for b in ports.parse_dnat_rules(text)}
    assert got == {(8080, "tcp"), (9000, "tcp"), (9001, "tcp"), (9002, "tcp"), (53, "udp")}
    with pytest.raises(Conflict, match="0.0.0.0:9001"):
        ports.allocate([PortBinding(80, "tcp", "", 9001)], ports.parse_dnat_rules(text))


def test_portmap_and_docker_ports() -> None:
    b = [PortBinding(80, "tcp", "", 8080), PortBinding(53, "udp", "127.0.0.1", 5353)]
    assert ports.portmap_entries(b) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
    ]
    d = ports.docker_ports(b, ["80/tcp", "443/tcp"])
    assert d["443/tcp"] is None
    assert d["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8080"}]
    assert d["53/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "5353"}]


# -- networks as conflists -----------------------------------------------------------------


def _net(**kw: object) -> conflist.Network:
    base: dict[str, object] = {"name": "web", "id": "ab" * 32, "bridge": "pnw9", "subnet": "10.231.9.0/24", "gateway": "10.231.9.1"}
    base.update(kw)
    return conflist.Network(**base)  # type: ignore[arg-type]


def test_conflist_of_a_bridge_network() -> None:
    doc = conflist.build_conflist(_net(), "/run/x/ipam/pnw9")
    assert doc["cniVersion"] == "1.0.0" and doc["name"] == "web"
    kinds = [p["type"] for p in doc["plugins"]]
    assert kinds == ["bridge", "portmap", "firewall"]
    br = doc["plugins"][0]
    assert br["bridge"] == "pnw9" and br["isGateway"] and br["ipMasq"]
    assert br["ipam"] == {"type": "host-local", "dataDir": "/run/x/ipam/pnw9",
                          "ranges": [[{"subnet": "10.231.9.0/24", "gateway": "10.231.9.1"}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}
    assert doc["plugins"][1]["capabilities"] == {"portMappings": True} and doc["plugins"][1]["snat"]
    assert conflist.from_conflist(json.loads(json.dumps(doc))) == _net()


def test_internal_network_has_no_way_out() -> None:
    doc = conflist.build_conflist(_net(internal=True), "/d")
    br = doc["plugins"][0]
    assert not br["isGateway"] and not br["ipMasq"] and "routes" not in br["ipam"]
    assert [p["type"] for p in doc["plugins"]] == ["bridge", "firewall"]


def test_ip_range_limits_the_pool() -> None:
    sub, gw, rng = conflist.plan_subnet("10.231.9.0/24", "", "10.231.9.128/25")
    assert (sub, gw, rng) == ("10.231.9.0/24", "10.231.9.1", "10.231.9.128/25")
    r = conflist.ipam_conf(_net(ip_range=rng), "/d")["ranges"][0][0]
    assert (r["rangeStart"], r["rangeEnd"]) == ("10.231.9.129", "10.231.9.254")


@pytest.mark.parametrize(("subnet", "gw", "rng"), [("bad", "", ""), ("10.0.0.0/8", "11.0.0.1", ""),
                                                   ("10.0.0.0/24", "", "10.0.1.0/25"), ("fd00::/64", "", ""),
                                                   ("10.0.0.0/31", "", "")])
def test_plan_subnet_rejects(subnet: str, gw: str, rng: str) -> None:
    with pytest.raises(InvalidArgument):
        conflist.plan_subnet(subnet, gw, rng)


def test_pick_subnet_skips_used_ranges() -> None:
    assert conflist.pick_subnet("10.90.0.0/15", []) == "10.90.0.0/24"
    assert conflist.pick_subnet("10.90.0.0/15", ["10.90.0.0/23", "10.90.2.5/32"]) == "10.90.3.0/24"
    with pytest.raises(InvalidArgument):
        conflist.pick_subnet("10.90.0.0/24", ["10.0.0.0/8"])


def test_user_conflist_is_read_as_written() -> None:
    doc = {"cniVersion": "1.0.0", "name": "mine", "plugins": [
        {"type": "bridge", "bridge": "pnw8", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.231.8.0/24"}]]}},
        {"type": "tuning", "sysctl": {"net.core.somaxconn": "500"}}]}
    net = conflist.from_conflist(doc)
    assert net.user_conflist and net.bridge == "pnw8" and net.subnet == "10.231.8.0/24" and len(net.id) == 64
    assert [p["type"] for p in conflist.plugin_list(doc)] == ["bridge", "tuning"]
    assert conflist.plugin_list({"cniVersion": "0.4.0", "name": "x", "type": "bridge"}) == [{"type": "bridge"}]


@pytest.mark.parametrize("name", ["-x", "a b", "", "x/y"])
def test_network_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        conflist.check_name(name)


def test_bridge_names_fit_an_interface_name() -> None:
    conflist.check_ifname("pnw12")
    with pytest.raises(InvalidArgument):
        conflist.check_ifname("a-very-long-bridge-name")


# -- plugin invocation (what each plugin reads) ----------------------------------------------


def test_plugin_stdin_passes_prev_result_and_only_declared_capabilities() -> None:
    att = cni.Attachment("cid", "/run/ns/cid", "eth0", runtime_config={"portMappings": [{"hostPort": 1}],
                                                                         "bandwidth": {}})
    pm = {"type": "portmap", "capabilities": {"portMappings": True}}
    conf = cni.plugin_stdin(pm, "web", "1.0.0", att, {"ips": []})
    assert conf["name"] == "web" and conf["cniVersion"] == "1.0.0" and conf["prevResult"] == {"ips": []}
    assert conf["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
    fw = cni.plugin_stdin({"type": "firewall"}, "web", "1.0.0", att, None)
    assert "runtimeConfig" not in fw and "prevResult" not in fw


def test_plugin_env() -> None:
    env = cni.plugin_env("ADD", cni.Attachment("cid", "/ns", "eth1", {"IP": "10.0.0.5"}), ["/a", "/b"])
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "cid" and env["CNI_NETNS"] == "/ns"
    assert env["CNI_IFNAME"] == "eth1" and env["CNI_PATH"] == "/a:/b"
    assert env["CNI_ARGS"] == "IgnoreUnknown=1;IP=10.0.0.5"


def test_result_ip() -> None:
    res = {"interfaces": [{"name": "pnw9"}, {"name": "veth"}, {"name": "eth0", "mac": "aa:bb", "sandbox": "/ns"}],
           "ips": [{"address": "fd00::2/64", "interface": 2}, {"address": "10.231.9.2/24", "gateway": "10.231.9.1",
                                                              "interface": 2}]}
    assert cni.result_ip(res) == ("10.231.9.2", 24, "10.231.9.1", "aa:bb")
    assert cni.result_ip({}) == ("", 0, "", "")


def test_missing_plugin_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(cni.CniError, match='failed to find plugin "nope"'):
        cni.find_plugin("nope", [str(tmp_path)])
    with pytest.raises(cni.CniError):
        cni.find_plugin("../bin/sh", ["/usr/lib/cni"])


# -- firewall rules -------------------------------------------------------------------------


def test_isolation_rules_of_a_network() -> None:
    rules = firewall.network_rules("pnw9", internal=False)
    specs = [(r.chain, " ".join(r.spec), r.top) for r in rules]
    assert ("PALLET-FORWARD", "-o pnw9 -m conntrack --ctstate DNAT -m comment --comment pallet:pnw9 -j ACCEPT",
            True) in specs
    assert ("PALLET-FORWARD", "-i pnw9 ! -o pnw9 -m comment --comment pallet:pnw9 -j PALLET-ISOLATION",
            False) in specs
    assert ("PALLET-ISOLATION", "-o pnw9 -m comment --comment pallet:pnw9 -j DROP", False) in specs
    internal = [" ".join(r.spec) for r in firewall.network_rules("pnw9", internal=True)]
    assert internal == ["-i pnw9 ! -o pnw9 -m comment --comment pallet:pnw9 -j DROP",
                        "-o pnw9 ! -i pnw9 -m comment --comment pallet:pnw9 -j DROP"]
    assert firewall.jump_rules()[0].chain == "FORWARD" and firewall.jump_rules()[0].top


# -- /etc files ------------------------------------------------------------------------------


def test_hosts_text() -> None:
    text = hosts.hosts_text("web", "10.231.9.2", ["db.local:10.0.0.9"],
                            [hosts.Peer("10.231.9.3", ("api", "backend", "0123456789ab")),
                             hosts.Peer("10.231.9.4", ("web",))])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[-3:] == ["10.0.0.9\tdb.local", "10.231.9.2\tweb", "10.231.9.3\tapi backend 0123456789ab"]


def test_resolv_text_filters_loopback_and_applies_flags() -> None:
    host = "# generated\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.test\noptions edns0\n"
    assert hosts.resolv_text(host) == "nameserver 10.1.1.1\nsearch corp.test\noptions edns0\n"
    assert hosts.resolv_text(host, ["9.9.9.9"], ["a.test", "b.test"], ["ndots:2"]) == (
        "nameserver 9.9.9.9\nsearch a.test b.test\noptions ndots:2\n")
    assert hosts.resolv_text("nameserver ::1\n") == ""
    stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
    assert hosts.resolv_text(stub, fallback="nameserver 10.2.2.2\nnameserver 127.0.0.1\n") == (
        "nameserver 10.2.2.2\nsearch lan\noptions edns0 trust-ad\n")


def test_rewrite_in_place_keeps_the_inode(tmp_path: object) -> None:
    from pathlib import Path

    p = Path(str(tmp_path)) / "hosts"
    p.write_text("a much longer first version of the file\n")
    ino = p.stat().st_ino
    hosts.rewrite_in_place(p, "short\n")
    assert p.read_text() == "short\n" and p.stat().st_ino == ino


def test_network_mode_parsing() -> None:
    from pallet.engine.networks import parse_network_mode

    assert parse_network_mode("") == ("network", "bridge")
    assert parse_network_mode("default") == ("network", "bridge")
    assert parse_network_mode("none") == ("none", "none")
    assert parse_network_mode("host") == ("host", "host")
    assert parse_network_mode("container:web") == ("container", "web")
    assert parse_network_mode("mynet") == ("network", "mynet")
    with pytest.raises(InvalidArgument):
        parse_network_mode("container:")
