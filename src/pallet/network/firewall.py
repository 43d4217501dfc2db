"""pallet's own firewall rules beside the CNI plugins': isolation between networks.

The CNI ``firewall`` plugin accepts each container's traffic in ``CNI-FORWARD``
(which keeps working when a host's FORWARD policy is DROP, as dockerd sets it);
the ``bridge`` plugin masquerades and ``portmap`` publishes ports.  What they do
not do is Docker's isolation: no traffic from one bridge network to another, and
none in or out of an ``--internal`` network.  Those rules live in two chains of
the filter table, built here as plain data and applied with ``iptables``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from pallet.errors import Unavailable

FORWARD_CHAIN = "PALLET-FORWARD"
ISOLATION_CHAIN = "PALLET-ISOLATION"


@dataclass(frozen=True)
class Rule:
    chain: str
    spec: tuple[str, ...]
    top: bool = False  # inserted first rather than appended
    table: str = "filter"


def jump_rules() -> list[Rule]:
    """The jump from FORWARD into pallet's chain (first, before the plugins' chains)."""
    return [Rule("FORWARD", ("-m", "comment", "--comment", "pallet", "-j", FORWARD_CHAIN), top=True)]


def network_rules(bridge: str, internal: bool) -> list[Rule]:
    """The rules of one bridge network (pure)."""
    tag = ("-m", "comment", "--comment", f"pallet:{bridge}")
    if internal:
        return [
            Rule(FORWARD_CHAIN, ("-i", bridge, "!", "-o", bridge, *tag, "-j", "DROP")),
            Rule(FORWARD_CHAIN, ("-o", bridge, "!", "-i", bridge, *tag, "-j", "DROP")),
        ]
    return [
        # published ports from other machines pass even when FORWARD's policy is DROP
        Rule(FORWARD_CHAIN, ("-o", bridge, "-m", "conntrack", "--ctstate", "DNAT", *tag, "-j", "ACCEPT"),
             top=True),
        Rule(FORWARD_CHAIN, ("-i", bridge, "!", "-o", bridge, *tag, "-j", ISOLATION_CHAIN)),
        Rule(ISOLATION_CHAIN, ("-o", bridge, *tag, "-j", "DROP")),
    ]


def _ipt(*args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["iptables", "-w", "5", *args], capture_output=True)
    except FileNotFoundError:
        raise Unavailable("iptables is not installed (Debian package iptables)") from None


def _ensure_chain(table: str, chain: str) -> None:
    if _ipt("-t", table, "-n", "-L", chain).returncode != 0:
        _ipt("-t", table, "-N", chain)


def ensure(rules: Iterable[Rule]) -> None:
    """Add each rule unless present (idempotent; concurrent callers at worst add nothing twice)."""
    for r in rules:
        if r.chain not in ("FORWARD", "INPUT", "OUTPUT"):
            _ensure_chain(r.table, r.chain)
        if _ipt("-t", r.table, "-C", r.chain, *r.spec).returncode == 0:
            continue
        if r.top:
            p = _ipt("-t", r.table, "-I", r.chain, "1", *r.spec)
        else:
            p = _ipt("-t", r.table, "-A", r.chain, *r.spec)
        if p.returncode != 0:
            raise Unavailable(f"iptables: {p.stderr.decode(errors='replace').strip()}")


def remove(rules: Iterable[Rule]) -> None:
    for r in rules:
        while _ipt("-t", r.table, "-C", r.chain, *r.spec).returncode == 0:
            if _ipt("-t", r.table, "-D", r.chain, *r.spec).returncode != 0:
                break


def _in_place(bridge: str, internal: bool) -> bool:
    """One listing instead of a check per rule: this network's rules and the jump ahead of CNI's."""
    p = _ipt("-S")
    if p.returncode != 0:
        return False
    lines = p.stdout.decode().splitlines()
    tag = f"pallet:{bridge}"
    mine = sum(1 for ln in lines if ln.startswith("-A ") and tag in ln.replace('"', ""))
    fwd = [ln for ln in lines if ln.startswith("-A FORWARD")]
    jump = next((i for i, ln in enumerate(fwd) if ln.endswith(f"-j {FORWARD_CHAIN}")), None)
    cni = next((i for i, ln in enumerate(fwd) if ln.endswith("-j CNI-FORWARD")), None)
    return mine == len(network_rules(bridge, internal)) and jump is not None and (cni is None or jump < cni)


LOCK = "/run/pallet-firewall.lock"


def _locked() -> int:
    import fcntl
    import os

    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def setup_network(bridge: str, internal: bool) -> None:
    """Ensure a network's rules (host-wide lock: concurrent starts add each rule once)."""
    import os

    if _in_place(bridge, internal):
        return
    fd = _locked()
    try:
        _setup_network(bridge, internal)
    finally:
        os.close(fd)


def _setup_network(bridge: str, internal: bool) -> None:
    for chain in (FORWARD_CHAIN, ISOLATION_CHAIN):
        _ensure_chain("filter", chain)
    ensure(network_rules(bridge, internal))
    ensure(jump_rules())


def ensure_first_jump() -> None:
    """Keep pallet's jump ahead of the plugins' in FORWARD (the firewall plugin inserts its own first)."""
    spec = jump_rules()[0].spec
    lines = _ipt("-S", "FORWARD").stdout.decode().splitlines()
    rules = [ln for ln in lines if ln.startswith("-A FORWARD")]
    idx = next((i for i, ln in enumerate(rules) if ln.endswith(f"-j {FORWARD_CHAIN}")), None)
    cni = next((i for i, ln in enumerate(rules) if ln.endswith("-j CNI-FORWARD")), None)
    if idx is None or (cni is not None and cni < idx):
        import os

        fd = _locked()
        try:
            remove(jump_rules())
            _ipt("-I", "FORWARD", "1", *spec)
        finally:
            os.close(fd)


def teardown_network(bridge: str, internal: bool) -> None:
    import os

    fd = _locked()
    try:
        remove(network_rules(bridge, internal))
        drop_unused_chains()
    finally:
        os.close(fd)


def _empty(chain: str) -> bool:
    p = _ipt("-S", chain)
    return p.returncode == 0 and len(p.stdout.decode().strip().splitlines()) <= 1


def drop_unused_chains() -> None:
    """Remove pallet's chains and their jump once no network has a rule in them."""
    if _ipt("-n", "-L", FORWARD_CHAIN).returncode != 0:
        return
    if not (_empty(FORWARD_CHAIN) and _empty(ISOLATION_CHAIN)):
        return
    remove(jump_rules())
    for chain in (FORWARD_CHAIN, ISOLATION_CHAIN):
        _ipt("-X", chain)
