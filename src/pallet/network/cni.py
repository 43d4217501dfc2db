"""Invoking CNI plugins as the CNI specification says (ADD, DEL, CHECK of a conflist).

Each plugin is an executable found on ``CNI_PATH``; its configuration arrives on
stdin (the plugin's entry with the list's ``name`` and ``cniVersion``, the
``prevResult`` of the previous plugin, and ``runtimeConfig`` for the
capabilities it declares); parameters arrive in ``CNI_*`` variables.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pallet.errors import PalletError

DEFAULT_CNI_PATH = ("/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni")


class CniError(PalletError):
    """A plugin failed; carries its CNI error code and message."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        text = f"plugin type=\"{plugin}\" failed ({command}): {msg}" + (f": {details}" if details else "")
        super().__init__(text)
        self.plugin, self.command, self.code, self.msg = plugin, command, code, msg


@dataclass(frozen=True)
class Attachment:
    """What a CNI list is run on: one container's namespace and interface."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: dict[str, str] = field(default_factory=dict)  # CNI_ARGS
    runtime_config: dict[str, Any] = field(default_factory=dict)  # capability -> value


def find_plugin(kind: str, paths: Sequence[str]) -> str:
    if "/" in kind or not kind:
        raise CniError(kind, "find", 0, "invalid plugin name")
    for d in paths:
        p = os.path.join(d, kind)
        if os.access(p, os.X_OK):
            return p
    raise CniError(kind, "find", 0, f'failed to find plugin "{kind}" in path {list(paths)}')


def plugin_stdin(plugin: dict[str, Any], name: str, version: str, att: Attachment,
                 prev: dict[str, Any] | None) -> dict[str, Any]:
    """The configuration one plugin reads on stdin (pure)."""
    conf = dict(plugin)
    conf["name"] = name
    conf["cniVersion"] = version
    caps = plugin.get("capabilities") or {}
    rc = {k: v for k, v in att.runtime_config.items() if caps.get(k)}
    if rc:
        conf["runtimeConfig"] = rc
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def plugin_env(command: str, att: Attachment, paths: Sequence[str]) -> dict[str, str]:
    """The CNI_* environment of one invocation (pure)."""
    env = {k: v for k, v in os.environ.items() if k == "PATH" or k.startswith("LC_") or k == "LANG"}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    args = ";".join(["IgnoreUnknown=1", *(f"{k}={v}" for k, v in att.args.items())])
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": att.container_id,
        "CNI_NETNS": att.netns,
        "CNI_IFNAME": att.ifname,
        "CNI_ARGS": args,
        "CNI_PATH": ":".join(paths),
    })
    return env


def invoke(command: str, plugin: dict[str, Any], name: str, version: str, att: Attachment,
           prev: dict[str, Any] | None, paths: Sequence[str], timeout: float = 60) -> dict[str, Any] | None:
    kind = str(plugin.get("type", ""))
    exe = find_plugin(kind, paths)
    stdin = json.dumps(plugin_stdin(plugin, name, version, att, prev)).encode()
    try:
        p = subprocess.run([exe], input=stdin, env=plugin_env(command, att, paths), capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CniError(kind, command, 0, "timed out") from None
    out = p.stdout.strip()
    if p.returncode != 0:
        try:
            err = json.loads(out or p.stderr)
            raise CniError(kind, command, int(err.get("code", 0)), str(err.get("msg", "")),
                           str(err.get("details", "")))
        except (ValueError, AttributeError):
            raise CniError(kind, command, p.returncode,
                           (p.stderr or out).decode(errors="replace").strip()) from None
    if command != "ADD" or not out:
        return None
    try:
        res = json.loads(out)
    except ValueError:
        raise CniError(kind, command, 0, "invalid result") from None
    return res if isinstance(res, dict) else None


def add_list(conflist: dict[str, Any], att: Attachment, paths: Sequence[str]) -> dict[str, Any]:
    """ADD every plugin in order, each getting the previous result; the final result.

    If one fails, the plugins already run are deleted again (in reverse order)."""
    from pallet.network.conflist import plugin_list

    name, version = str(conflist.get("name", "")), str(conflist.get("cniVersion", "1.0.0"))
    prev: dict[str, Any] | None = None
    plugins = plugin_list(conflist)
    for i, plugin in enumerate(plugins):
        try:
            res = invoke("ADD", plugin, name, version, att, prev, paths)
        except CniError:
            partial = {"cniVersion": version, "name": name, "plugins": plugins[: i + 1]}
            del_list(partial, att, paths, prev)
            raise
        if res is not None:
            prev = res
    return prev or {"cniVersion": version}


def del_list(conflist: dict[str, Any], att: Attachment, paths: Sequence[str],
             cached: dict[str, Any] | None) -> list[CniError]:
    """DEL every plugin in reverse order with the cached result; errors are collected, not raised."""
    from pallet.network.conflist import plugin_list

    name, version = str(conflist.get("name", "")), str(conflist.get("cniVersion", "1.0.0"))
    errors: list[CniError] = []
    for plugin in reversed(plugin_list(conflist)):
        try:
            invoke("DEL", plugin, name, version, att, cached, paths)
        except CniError as e:
            errors.append(e)
    return errors


def check_list(conflist: dict[str, Any], att: Attachment, paths: Sequence[str],
               cached: dict[str, Any]) -> None:
    """CHECK every plugin in order with the cached result; the first failure is raised."""
    from pallet.network.conflist import plugin_list

    name, version = str(conflist.get("name", "")), str(conflist.get("cniVersion", "1.0.0"))
    v6 = any(":" in str(ip.get("address", "")) for ip in cached.get("ips") or [])
    for plugin in plugin_list(conflist):
        try:
            invoke("CHECK", plugin, name, version, att, cached, paths)
        except CniError as e:
            # portmap checks its IPv6 chain even when it made none (no IPv6 address): not a fault
            if not (e.plugin == "portmap" and "ipv6" in e.msg and not v6):
                raise


def result_ip(result: dict[str, Any]) -> tuple[str, int, str, str]:
    """(address, prefix length, gateway, MAC of the container's interface) from a result."""
    ifaces = result.get("interfaces") or []
    mac = ""
    addr, plen, gw = "", 0, ""
    for ip in result.get("ips") or []:
        a = str(ip.get("address", ""))
        if ":" in a.split("/")[0]:
            continue
        addr, _, p = a.partition("/")
        plen = int(p or 0)
        gw = str(ip.get("gateway", ""))
        idx = ip.get("interface")
        if isinstance(idx, int) and 0 <= idx < len(ifaces):
            mac = str(ifaces[idx].get("mac", ""))
        break
    return addr, plen, gw, mac
