"""Which containers are attached where: one record per container with a network namespace.

The record is written before the first plugin runs and holds, per network, the
conflist used and the CNI result once there is one: DEL always has what it needs,
even after pallet was killed halfway (the cached result is the ``prevResult``).
It lives under the run root: namespaces, leases and rules do not survive a reboot
either.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pallet.config import Config
from pallet.network.ports import PortBinding


@dataclass(frozen=True)
class Attached:
    network: str
    ifname: str
    conflist: dict[str, Any]
    result: dict[str, Any] | None = None
    aliases: tuple[str, ...] = ()
    requested_ip: str = ""
    builtin: bool = False
    network_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "ifname": self.ifname, "conflist": self.conflist, "result": self.result,
                "aliases": list(self.aliases), "requested_ip": self.requested_ip, "builtin": self.builtin,
                "network_id": self.network_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attached:
        return cls(str(d["network"]), str(d["ifname"]), dict(d["conflist"]), d.get("result"),
                   tuple(d.get("aliases") or ()), str(d.get("requested_ip", "")), bool(d.get("builtin")),
                   str(d.get("network_id", "")))


@dataclass(frozen=True)
class Endpoint:
    container_id: str
    name: str
    netns: str
    hostname: str = ""
    hosts_path: str = ""
    ports: tuple[PortBinding, ...] = ()
    attached: tuple[Attached, ...] = ()
    created: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "name": self.name, "netns": self.netns,
                "hostname": self.hostname, "hosts_path": self.hosts_path,
                "ports": [p.to_dict() for p in self.ports], "attached": [a.to_dict() for a in self.attached],
                "created": self.created, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Endpoint:
        return cls(str(d["container_id"]), str(d.get("name", "")), str(d.get("netns", "")),
                   str(d.get("hostname", "")), str(d.get("hosts_path", "")),
                   tuple(PortBinding.from_dict(p) for p in d.get("ports") or ()),
                   tuple(Attached.from_dict(a) for a in d.get("attached") or ()), float(d.get("created", 0)),
                   dict(d.get("extra") or {}))

    def on(self, network: str) -> Attached | None:
        return next((a for a in self.attached if a.network == network), None)

    def with_attached(self, a: Attached) -> Endpoint:
        rest = tuple(x for x in self.attached if x.network != a.network)
        return replace(self, attached=rest + (a,))

    def without(self, network: str) -> Endpoint:
        return replace(self, attached=tuple(x for x in self.attached if x.network != network))


def ep_dir(config: Config) -> Path:
    return config.run_root / "networks"


def netns_dir(config: Config) -> Path:
    return config.run_root / "netns"


def save(config: Config, ep: Endpoint) -> None:
    d = ep_dir(config)
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{ep.container_id}.json"
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(ep.to_dict(), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def load(config: Config, container_id: str) -> Endpoint | None:
    try:
        return Endpoint.from_dict(json.loads((ep_dir(config) / f"{container_id}.json").read_text()))
    except (OSError, ValueError, KeyError):
        return None


def delete(config: Config, container_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (ep_dir(config) / f"{container_id}.json").unlink()


def all_endpoints(config: Config) -> list[Endpoint]:
    d = ep_dir(config)
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.json")):
        ep = load(config, p.stem)
        if ep is not None:
            out.append(ep)
    return out


# -- networks a container was connected to (kept across restarts) ---------------------------


def _conn_path(config: Config, container_id: str) -> Path:
    return config.root / "networks" / "containers" / f"{container_id}.json"


def connections(config: Config, container_id: str) -> dict[str, dict[str, Any]]:
    try:
        return dict(json.loads(_conn_path(config, container_id).read_text()))
    except (OSError, ValueError):
        return {}


def save_connections(config: Config, container_id: str, conns: dict[str, dict[str, Any]]) -> None:
    p = _conn_path(config, container_id)
    if not conns:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(conns))
    os.replace(tmp, p)
