"""Names on a container's networks: its /etc/hosts (its peers on each user-defined network,
kept current in theirs as containers come and go) and its resolv.conf."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet.config import Config
from pallet.network import cni, endpoints, hosts
from pallet.network.endpoints import Endpoint

if TYPE_CHECKING:
    from pallet.engine.state import Container


def spec_extra(c: Container, key: str, default: Any) -> Any:
    """A network setting of the container's spec (or of its annotations, ``pallet.network.<key>``)."""
    return getattr(c.spec, key, None) or (c.spec.annotations or {}).get(f"pallet.network.{key}") or default


def _peers(config: Config, ep: Endpoint) -> list[hosts.Peer]:
    mine = {a.network for a in ep.attached if not a.builtin}
    out = []
    for other in endpoints.all_endpoints(config):
        if other.container_id == ep.container_id:
            continue
        for a in other.attached:
            if a.network in mine and a.result:
                ip = cni.result_ip(a.result)[0]
                out.append(hosts.Peer(ip, (other.name, *a.aliases, other.container_id[:12])))
    return out


def _own_ip(ep: Endpoint) -> str:
    for a in ep.attached:
        if a.result:
            return cni.result_ip(a.result)[0]
    return ""


def write_hosts_of(config: Config, ep: Endpoint, extra: tuple[str, ...]) -> None:
    if not ep.hosts_path or not Path(ep.hosts_path).exists():
        return
    text = hosts.hosts_text(ep.hostname, _own_ip(ep), extra, _peers(config, ep))
    hosts.rewrite_in_place(Path(ep.hosts_path), text)


def refresh_peers(config: Config, ep: Endpoint, exclude: str = "") -> None:
    nets = {a.network for a in ep.attached if not a.builtin}
    if not nets:
        return
    for other in endpoints.all_endpoints(config):
        if other.container_id == exclude or other.container_id == ep.container_id:
            continue
        if nets & {a.network for a in other.attached}:
            with contextlib.suppress(OSError):
                write_hosts_of(config, other, tuple(other.extra.get("extra_hosts") or ()))


def write_hosts(config: Config, c: Container) -> None:
    """After the engine wrote the container's /etc files: its peers in its hosts file, and it in theirs."""
    ep = endpoints.load(config, c.id)
    if ep is None:
        return
    ep = replace(ep, hosts_path=str(c.dir / "hosts"), extra={**ep.extra, "extra_hosts": list(c.spec.extra_hosts)})
    endpoints.save(config, ep)
    write_hosts_of(config, ep, c.spec.extra_hosts)
    refresh_peers(config, ep)
    search = tuple(spec_extra(c, "dns_search", ()))
    opts = tuple(spec_extra(c, "dns_options", ()))
    resolv = c.dir / "resolv.conf"
    if resolv.exists():
        hosts.rewrite_in_place(resolv, resolv_conf(c.spec.dns, search, opts))


def resolv_conf(dns: tuple[str, ...] = (), search: tuple[str, ...] = (), options: tuple[str, ...] = ()) -> str:
    """A container's (or a build step's) resolv.conf: the host's, loopback servers left out."""
    def read(p: str) -> str:
        try:
            return Path(p).read_text()
        except OSError:
            return ""

    host = read("/etc/resolv.conf")
    # a local stub resolver (systemd-resolved) is unreachable from a container: its upstream servers are not
    upstream = read("/run/systemd/resolve/resolv.conf")
    return hosts.resolv_text(host, dns, search, options, fallback=upstream)
