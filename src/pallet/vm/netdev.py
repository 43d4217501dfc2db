"""A VM on the container's own network: a tap in its network namespace, mirrored to its veth.

When the bundle names a network namespace (made by the engine with CNI, exactly
as for a container), QEMU runs inside it with a tap device, and tc mirrors every
frame between the namespace's ``eth0`` and the tap both ways (the way Kata
Containers joins VMs to CNI networks). The guest takes ``eth0``'s address, MAC
and gateway, so it is a peer of containers on the bridge and published ports
(CNI portmap) reach it as they reach a container.

Pure builders (:func:`tap_commands`, :func:`parse_ip_json`) and thin runners.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from pallet.errors import RuntimeFailure

TAP = "pvmtap0"
IFACE = "eth0"


@dataclass(frozen=True)
class GuestNet:
    address: str  # "10.88.0.5/16"
    gateway: str  # "" without a default route
    mac: str
    mtu: int = 1500


def in_netns(netns: str, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net={netns}", "--", *argv]


def tap_commands(iface: str = IFACE, tap: str = TAP, mtu: int = 1500) -> list[list[str]]:
    """Inside the namespace: make the tap and mirror ``iface`` <-> tap with tc (pure)."""
    mirror = ["protocol", "all", "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev"]
    return [
        ["ip", "tuntap", "add", "dev", tap, "mode", "tap"],
        ["ip", "link", "set", "dev", tap, "mtu", str(mtu), "up"],
        ["tc", "qdisc", "add", "dev", iface, "ingress"],
        ["tc", "filter", "add", "dev", iface, "parent", "ffff:", *mirror, tap],
        ["tc", "qdisc", "add", "dev", tap, "ingress"],
        ["tc", "filter", "add", "dev", tap, "parent", "ffff:", *mirror, iface],
    ]


def undo_commands(iface: str = IFACE, tap: str = TAP) -> list[list[str]]:
    return [["tc", "qdisc", "del", "dev", iface, "ingress"], ["ip", "link", "del", "dev", tap]]


def parse_ip_json(addr_json: str, route_json: str, iface: str = IFACE) -> GuestNet:
    """``ip -j addr show dev IFACE`` and ``ip -j route show default`` -> the guest's settings (pure)."""
    links = json.loads(addr_json or "[]")
    link = next((lk for lk in links if lk.get("ifname") == iface), None)
    if link is None:
        raise RuntimeFailure(f"the container's network namespace has no {iface}")
    v4 = [a for a in link.get("addr_info", []) if a.get("family") == "inet"]
    if not v4:
        raise RuntimeFailure(f"{iface} in the container's network namespace has no IPv4 address")
    routes = json.loads(route_json or "[]")
    gw = next((r.get("gateway", "") for r in routes if r.get("dst") == "default" and r.get("gateway")), "")
    return GuestNet(f"{v4[0]['local']}/{v4[0]['prefixlen']}", gw, str(link.get("address", "")),
                    int(link.get("mtu", 1500)))


def batches(cmds: list[list[str]]) -> list[tuple[list[str], str]]:
    """Consecutive ``ip``/``tc`` commands as one ``-batch -`` run each: (argv, stdin) (pure).

    Leading options (``-j``) are global in batch mode: commands group by tool and options.
    """
    out: list[tuple[list[str], str]] = []
    for cmd in cmds:
        n = 1
        while n < len(cmd) and cmd[n].startswith("-"):
            n += 1
        head, rest = [*cmd[:n], "-batch", "-"], " ".join(cmd[n:]) + "\n"
        if out and out[-1][0] == head:
            out[-1] = (head, out[-1][1] + rest)
        else:
            out.append((head, rest))
    return out


def _run(netns: str, cmds: list[list[str]], check: bool = True) -> str:
    """Run the commands inside the namespace, a few processes for all of them."""
    out = ""
    for argv, script in batches(cmds):
        r = subprocess.run(in_netns(netns, argv), input=script, capture_output=True, text=True,
                           check=False)
        if check and r.returncode != 0:
            raise RuntimeFailure(f"setting up the VM's network ({argv[0]}): {r.stderr.strip()}")
        out += r.stdout
    return out


def setup(netns: str) -> GuestNet:
    """Read eth0's settings and mirror it to a new tap (undone by :func:`teardown`)."""
    lines = _run(netns, [["ip", "-j", "addr", "show", "dev", IFACE], ["ip", "-j", "route", "show", "default"]]
                 ).splitlines()
    if len(lines) < 2:
        raise RuntimeFailure(f"cannot read {IFACE} of the container's network namespace")
    net = parse_ip_json(lines[0], lines[1])
    try:
        _run(netns, tap_commands(mtu=net.mtu))
    except RuntimeFailure:
        teardown(netns)
        raise
    return net


def teardown(netns: str) -> None:
    for cmd in undo_commands():
        _run(netns, [cmd], check=False)
