"""Helpers of the network integration tests: per-test bridges and subnets, an "outside" namespace,
and a snapshot of the host's network state compared after each test.

Every name is prefixed ``pnw``; every address is inside 10.231.0.0/16 (bridges and namespaces
the tests make themselves), so the tests collide neither with each other's runs nor with
anything else on the host.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.cli import Pallet, Result

_numbers = itertools.count(int(os.environ.get("PNW_BASE", "20")))


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def alloc() -> int:
    """A fresh number N for bridge pnwN and subnet 10.231.N.0/24."""
    return next(_numbers) % 200 + 20


class NetPallet(Pallet):
    """The CLI with the test's own default bridge, subnet and lease directory."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        super().__init__(root)
        self.env = env

    def __call__(self, *args: str, input: str | bytes | None = None, timeout: float = 120, check: bool = False,
                 env: dict[str, str] | None = None) -> Result:
        return super().__call__(*args, input=input, timeout=timeout, check=check, env={**self.env, **(env or {})})


@dataclass
class NetEnv:
    root: Path
    ipam: Path
    default_bridge: str
    default_subnet: str
    bridges: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"PALLET_BRIDGE": self.default_bridge, "PALLET_BRIDGE_SUBNET": self.default_subnet,
                "PALLET_IPAM_DIR": str(self.ipam)}

    def network(self) -> tuple[str, str]:
        """(bridge name, subnet) for a new network of the test."""
        n = alloc()
        self.bridges.append(f"pnw{n}")
        self.tokens += [f"pnw{n}", f"10.231.{n}."]
        return f"pnw{n}", f"10.231.{n}.0/24"

    def config(self) -> Any:
        from pallet.config import Config

        return Config(root=self.root, run_root=self.root / "run",
                      extra={"network.ipam_dir": str(self.ipam), "network.bridge": self.default_bridge,
                             "network.subnet": self.default_subnet})


def iptables_lines(tokens: list[str]) -> list[str]:
    out = []
    for table in ("filter", "nat"):
        text = sh("iptables-save", "-t", table).stdout
        for line in text.splitlines():
            line = re.sub(r"\[\d+:\d+\]", "", line)
            if any(t in line for t in tokens):
                out.append(line)
    return sorted(out)


def links() -> set[str]:
    return {ln.split(":")[1].strip().split("@")[0] for ln in sh("ip", "-o", "link").stdout.splitlines()}


def netns_mounts(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f if line.split()[4].startswith(str(root)) and "nsfs" in line)


def files_under(p: Path) -> list[str]:
    return sorted(str(x.relative_to(p)) for x in p.rglob("*")) if p.exists() else []


def snapshot(ne: NetEnv) -> dict[str, Any]:
    return {
        "links": sorted(x for x in links() if x.startswith("pnw")),
        "iptables": iptables_lines(ne.tokens + [ne.default_bridge]),
        "netns": netns_mounts(ne.root),
        "ipam": files_under(ne.ipam),
    }


def enslaved(bridge: str) -> list[str]:
    return sh("ip", "-o", "link", "show", "master", bridge, check=False).stdout.splitlines()


def fetch(url: str, timeout: float = 3) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - local test servers only
        return str(r.read().decode())


def wait_fetch(url: str, deadline: float = 5) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            return fetch(url)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def host_address() -> str:
    """A non-loopback IPv4 address of the host (traffic to it stays on this machine)."""
    for line in sh("ip", "-4", "-o", "addr").stdout.splitlines():
        f = line.split()
        addr = f[3].split("/")[0]
        if not addr.startswith("127.") and not f[1].startswith("pnw"):
            return addr
    return ""


class Outside:
    """A namespace standing for "the outside": a veth to the host and a web server behind it."""

    def __init__(self, ne: NetEnv, docroot: Path) -> None:
        from pallet.network import netns

        n = alloc()
        self.n = n
        self.host_if = f"pnw{n}o"
        self.host_ip = f"10.231.{n}.1"
        self.ip = f"10.231.{n}.2"
        ne.tokens += [self.host_if, f"10.231.{n}."]
        self.dir = ne.root.parent / "outside-ns"
        self.path = netns.create(self.dir, "out")
        self.ns = ["nsenter", f"--net={self.path}"]
        self.server: subprocess.Popen[bytes] | None = None
        try:
            sh(*self.ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", self.host_if, "netns", "1")
            sh(*self.ns, "ip", "addr", "add", f"{self.ip}/24", "dev", "eth0")
            sh(*self.ns, "ip", "link", "set", "eth0", "up")
            sh(*self.ns, "ip", "route", "add", "default", "via", self.host_ip)
            sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
            sh("ip", "link", "set", self.host_if, "up")
            docroot.mkdir(parents=True, exist_ok=True)
            (docroot / "index.html").write_text("outside\n")
            self.server = subprocess.Popen([*self.ns, "/bin/busybox", "httpd", "-f", "-p", f"{self.ip}:80",
                                            "-h", str(docroot)])
            wait_listening(self.path, self.ip)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        from pallet.network import netns

        if self.server is not None:
            self.server.kill()
            self.server.wait()
        sh("ip", "link", "del", self.host_if, check=False)
        netns.remove(self.path)
        netns.release_dir(self.dir)


def wait_listening(path: Path, ip: str, deadline: float = 5) -> None:
    end = time.monotonic() + deadline
    while subprocess.run(["nsenter", f"--net={path}", "/bin/busybox", "nc", "-w", "1", ip, "80"],
                         stdin=subprocess.DEVNULL, capture_output=True).returncode != 0:
        if time.monotonic() > end:
            raise TimeoutError(ip)
        time.sleep(0.05)


def cleanup(p: Pallet, ne: NetEnv) -> None:
    """Remove every container and network of the test, then the default network's bridge."""
    from pallet.engine import networks
    from pallet.network import netns, registry

    ids = p("ps", "-aq").out.split()
    if ids:
        p("rm", "-f", *ids)
    cfg = ne.config()
    for n in registry.networks(cfg, pseudo=False):
        if not n.builtin and not n.user_conflist:
            networks.remove_network(cfg, n.name)
    networks.reconcile(cfg)
    for b in [ne.default_bridge, *ne.bridges]:
        assert enslaved(b) == [], f"interfaces left on {b}"
    assert registry.lookup(cfg, "bridge")[0].bridge == ne.default_bridge  # never a shared bridge
    networks.destroy_default(cfg)
    netns.release_dir(cfg.run_root / "netns")


def ps_running(p: Pallet, name: str) -> bool:
    return p("inspect", "-f", "{{.State.Running}}", name).out.strip() == "true"


def forward_policy() -> str:
    for line in sh("iptables", "-S", "FORWARD").stdout.splitlines():
        if line.startswith("-P FORWARD"):
            return line.split()[2]
    return "ACCEPT"


def http_via_nc(host: str, port: int = 80, path: str = "/hostname") -> str:
    """A shell line for a busybox container: GET over nc (busybox-static's wget crashes in lookups)."""
    return (f'printf "GET {path} HTTP/1.0\\r\\n\\r\\n" | nc -w 2 {host} {port} | tail -n 1')
