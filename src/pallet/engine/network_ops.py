"""Network-wide operations of the engine: a network's users, ``network inspect`` and ``rm``,
the default network's removal, and recovery after a crash (``reconcile``: what containers
that no longer run still hold).

What one container's networking needs (setup, teardown, connect, hosts files) is in
:mod:`pallet.engine.networks`, which offers these names too.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from pallet.config import Config
from pallet.engine.networks import parse_network_mode, teardown
from pallet.errors import Conflict, PalletError
from pallet.network import cni, endpoints, firewall, netns, registry
from pallet.network.conflist import Network, inspect_doc
from pallet.network.registry import DEFAULT_NETWORK


def network_users(config: Config, net: Network, check: bool = False) -> dict[str, dict[str, str]]:
    """Docker's ``Containers`` of a network: the running containers attached to it
    (with ``check``, the outcome of CNI CHECK of each attachment as ``Check``)."""
    out: dict[str, dict[str, str]] = {}
    for ep in endpoints.all_endpoints(config):
        a = ep.on(net.name)
        if a is None:
            continue
        addr, plen, _gw, mac = cni.result_ip(a.result or {})
        d = {"Name": ep.name, "EndpointID": f"{ep.container_id[:12]}-{a.ifname}",
             "MacAddress": mac, "IPv4Address": f"{addr}/{plen}" if addr else "", "IPv6Address": ""}
        if check:
            try:
                cni.check_list(a.conflist, cni.Attachment(ep.container_id, ep.netns, a.ifname),
                               registry.cni_path(config), a.result or {})
                d["Check"] = "ok"
            except cni.CniError as e:
                d["Check"] = str(e)
        out[ep.container_id] = d
    return out


def referenced(config: Config) -> set[str]:
    """Names of the networks some container (running or not) is on or was connected to."""
    from pallet.engine.state import ContainerStore

    out: set[str] = set()
    for c in ContainerStore(config.root).all():
        kind, name = parse_network_mode(c.spec.network_mode)
        if kind == "network":
            out.add(name)
        out.update(n for n, v in endpoints.connections(config, c.id).items() if not v.get("disconnected"))
    return out


def network_inspect(config: Config, ref: str, check: bool = False) -> dict[str, Any]:
    net, _ = registry.lookup(config, ref)
    return inspect_doc(net, network_users(config, net, check))


def remove_network(config: Config, ref: str) -> Network:
    net, _ = registry.lookup(config, ref)
    if net.builtin:
        raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
    with registry.locked(config):
        users = network_users(config, net)
        if users:
            raise Conflict(f"error while removing network: network {net.name} id {net.id} has active endpoints")
        if net.user_conflist:
            raise Conflict(f"network {net.name} comes from a user's CNI configuration; remove its file instead")
        firewall.teardown_network(net.bridge, net.internal)
        registry.delete_files(config, net)
    return net


def destroy_default(config: Config) -> None:
    """Remove the default network's bridge, rules and leases (when no container uses it)."""
    net, _ = registry.lookup(config, DEFAULT_NETWORK)
    if network_users(config, net):
        raise Conflict(f"network {net.name} has active endpoints")
    brif = Path(f"/sys/class/net/{net.bridge}/brif")
    if brif.is_dir() and any(brif.iterdir()):
        # the bridge is shared with other pallet roots whose containers still use it
        raise Conflict(f"network {net.name} has active endpoints on {net.bridge}")
    firewall.teardown_network(net.bridge, net.internal)
    registry.remove_bridge(net.bridge)
    registry.remove_ipam(config, net.bridge)


# -- recovery -------------------------------------------------------------------------------


def reconcile(config: Config, grace: float = 120.0) -> list[str]:
    """Release what containers that no longer run still hold: CNI attachments (veths, leases,
    rules), namespaces, records.  Endpoints of containers being created are spared for ``grace`` s."""
    from pallet.engine.state import ContainerStore

    try:
        live = {c.id: c for c in ContainerStore(config.root).all()}
    except PalletError:
        live = {}
    done: list[str] = []
    now = time.time()
    for ep in endpoints.all_endpoints(config):
        c = live.get(ep.container_id)
        if c is not None and (c.state.running or (c.state.status == "created" and now - ep.created < grace)):
            continue
        teardown(config, ep.container_id)
        done.append(ep.container_id)
    d = endpoints.netns_dir(config)
    if d.is_dir():
        for p in d.iterdir():
            if endpoints.load(config, p.name) is None and not (p.name in live and live[p.name].state.running):
                netns.remove(p)
                done.append(p.name)
        netns.release_dir(d)
    for p in (config.root / "networks" / "containers").glob("*.json"):
        if p.stem not in live:
            p.unlink()
    _stale_leases(config, live)
    return done


def _stale_leases(config: Config, live: dict[str, Any]) -> None:
    """Leases held in this root's networks by containers that exist and do not run."""
    running = {e.container_id for e in endpoints.all_endpoints(config)}
    for net in registry.networks(config, pseudo=False):
        if not net.bridge:
            continue
        d = Path(registry.ipam_dir(config, net.bridge)) / net.name
        if not d.is_dir():
            continue
        for lease in d.iterdir():
            if lease.name.startswith(("last_reserved_ip", "lock")):
                continue
            with contextlib.suppress(OSError):
                owner = lease.read_text().split()[0]
                if owner in live and owner not in running:
                    lease.unlink()
