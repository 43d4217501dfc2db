"""``inspect`` of a container: Docker's JSON field names and shapes."""

from __future__ import annotations

from typing import Any

from pallet.engine.state import Container, rfc3339


def _hostconfig(c: Container) -> dict[str, Any]:
    s = c.spec
    binds = [f"{m.source}:{m.destination}" + (":ro" if m.read_only else "")
             for m in s.mounts if m.type in ("bind", "volume") and m.source and not m.anonymous]
    hc: dict[str, Any] = {
        "Binds": binds or None,
        "NetworkMode": s.network_mode,
        "PortBindings": _port_bindings(s.port_bindings),
        "RestartPolicy": {"Name": s.restart_policy, "MaximumRetryCount": s.restart_max},
        "AutoRemove": s.auto_remove,
        "Runtime": s.runtime,
        "Isolation": "" if s.isolation == "default" else s.isolation,
        "ReadonlyRootfs": s.read_only,
        "Init": s.init or None,
        "Tmpfs": {m.destination: ",".join(m.options) for m in s.mounts if m.type == "tmpfs"} or None,
        "Mounts": [m.to_dict() for m in s.mounts if m.type != "tmpfs"] or None,
        "Dns": list(s.dns),
        "DnsSearch": list(s.dns_search),
        "DnsOptions": list(s.dns_options),
        "PublishAllPorts": s.publish_all,
        "ExtraHosts": list(s.extra_hosts) or None,
        "Privileged": False,
        "CapAdd": None,
        "CapDrop": None,
        "Memory": 0,
        "NanoCpus": 0,
        "PidsLimit": None,
    }
    hc.update(s.resources)
    return hc


def _vm(c: Container) -> dict[str, Any]:
    """A VM container's guest: kernel, accelerator (KVM or TCG), root filesystem, RAM, vCPUs."""
    if c.spec.runtime != "vm":
        return {}
    import json

    try:
        return {"VM": json.loads((c.bundle / "vm.json").read_text())}
    except (OSError, ValueError):
        return {"VM": None}


def _port_bindings(specs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, list[dict[str, str]]] = {}
    for p in specs:
        parts = p.split(":")
        ctr = parts[-1]
        if "/" not in ctr:
            ctr += "/tcp"
        host_ip = parts[0] if len(parts) == 3 else ""
        host_port = parts[-2] if len(parts) >= 2 else ""
        out.setdefault(ctr, []).append({"HostIp": host_ip, "HostPort": host_port})
    return out


def mounts(c: Container, volume_root: str) -> list[dict[str, Any]]:
    out = []
    for m in c.spec.mounts:
        if m.type == "tmpfs":
            continue
        d: dict[str, Any] = {"Type": m.type}
        if m.type == "volume":
            d["Name"] = m.source
            d["Source"] = f"{volume_root}/{m.source}/_data"
            d["Driver"] = "local"
        else:
            d["Source"] = m.source
        d["Destination"] = m.destination
        d["Mode"] = "z" if m.type == "volume" else ""
        d["RW"] = not m.read_only
        d["Propagation"] = next((o for o in m.options if "shared" in o or "slave" in o or "private" in o),
                                "rprivate" if m.type == "bind" else "")
        out.append(d)
    return out


def container_inspect(c: Container, volume_root: str, network: dict[str, Any] | None = None) -> dict[str, Any]:
    s, st = c.spec, c.state
    from pallet.engine.lifecycle import hostname_of

    return {
        "Id": c.id,
        "Created": rfc3339(c.created),
        "Path": s.path,
        "Args": list(s.args),
        "State": {
            "Status": st.status,
            "Running": st.status in ("running", "paused"),
            "Paused": st.status == "paused",
            "Restarting": st.status == "restarting",
            "OOMKilled": st.oom_killed,
            "Dead": st.status == "dead",
            "Pid": st.pid if st.status in ("running", "paused") else 0,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": rfc3339(st.started_at),
            "FinishedAt": rfc3339(st.finished_at),
        },
        "Image": s.image_id,
        "ResolvConfPath": str(c.dir / "resolv.conf"),
        "HostnamePath": str(c.dir / "hostname"),
        "HostsPath": str(c.dir / "hosts"),
        "LogPath": str(c.log_path),
        "Name": "/" + c.name,
        "RestartCount": st.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _hostconfig(c),
        **_vm(c),
        "GraphDriver": {
            "Name": "overlay",
            "Data": {"MergedDir": str(c.rootfs), "UpperDir": str(c.dir / "upper"), "WorkDir": str(c.dir / "work")},
        },
        "Mounts": mounts(c, volume_root),
        "Config": {
            "Hostname": hostname_of(c),
            "Domainname": s.domainname,
            "User": s.user,
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "ExposedPorts": {p: {} for p in s.exposed_ports} or None,
            "Tty": s.tty,
            "OpenStdin": s.open_stdin,
            "StdinOnce": False,
            "Env": list(s.env),
            "Cmd": list(s.cmd) if s.cmd is not None else None,
            "Image": s.image,
            "Volumes": {m.destination: {} for m in s.mounts if m.type == "volume" and m.anonymous} or None,
            "WorkingDir": s.working_dir,
            "Entrypoint": list(s.entrypoint) if s.entrypoint is not None else None,
            "OnBuild": None,
            "Labels": dict(s.labels),
            "StopSignal": s.stop_signal or None,
            "StopTimeout": s.stop_timeout,
        },
        "NetworkSettings": network or {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": {},
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "MacAddress": "",
            "Networks": {s.network_mode: {"NetworkID": s.network_mode, "IPAddress": "", "Gateway": "",
                                          "MacAddress": "", "Aliases": None}},
        },
    }
