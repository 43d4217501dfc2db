"""The image configuration (OCI image-spec ``config``, same JSON as Docker's).

Field names inside :class:`ContainerConfig` keep Docker's capitalized JSON names
in ``to_dict()`` (``Env``, ``Cmd``, ``WorkingDir``...), which is also what
``inspect`` prints under ``Config``.
"""

from __future__ import annotations

import json

from pallet.errors import InvalidData
from pallet.oci.record import field, record, replace

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@record(frozen=True)
class Healthcheck:
    test: tuple[str, ...] = ()
    interval: int = 0  # nanoseconds, as Docker records them
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Healthcheck:
        return cls(
            test=tuple(d.get("Test") or ()),
            interval=int(d.get("Interval") or 0),
            timeout=int(d.get("Timeout") or 0),
            start_period=int(d.get("StartPeriod") or 0),
            start_interval=int(d.get("StartInterval") or 0),
            retries=int(d.get("Retries") or 0),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"Test": list(self.test)}
        for k, v in (
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
            ("Retries", self.retries),
        ):
            if v:
                d[k] = v
        return d


@record(frozen=True)
class ContainerConfig:
    """The run-time defaults an image carries (``config`` in the image JSON)."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "80/tcp"
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    healthcheck: Healthcheck | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] = ()
    args_escaped: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ContainerConfig:
        d = d or {}

        def seq(key: str) -> tuple[str, ...] | None:
            v = d.get(key)
            if v is None:
                return None
            if isinstance(v, str):
                return (v,)
            return tuple(str(x) for x in v)

        hc = d.get("Healthcheck")
        return cls(
            user=str(d.get("User") or ""),
            exposed_ports=tuple(sorted((d.get("ExposedPorts") or {}).keys())),
            env=tuple(d.get("Env") or ()),
            entrypoint=seq("Entrypoint"),
            cmd=seq("Cmd"),
            volumes=tuple(sorted((d.get("Volumes") or {}).keys())),
            working_dir=str(d.get("WorkingDir") or ""),
            labels=dict(d.get("Labels") or {}),
            stop_signal=str(d.get("StopSignal") or ""),
            healthcheck=Healthcheck.from_dict(hc) if isinstance(hc, dict) else None,
            on_build=tuple(d.get("OnBuild") or ()),
            shell=tuple(d.get("Shell") or ()),
            args_escaped=bool(d.get("ArgsEscaped", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Docker's JSON for this config; empty fields are left out as Docker does."""
        d: dict[str, Any] = {}
        if self.user:
            d["User"] = self.user
        if self.exposed_ports:
            d["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            d["Env"] = list(self.env)
        if self.entrypoint is not None:
            d["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            d["Cmd"] = list(self.cmd)
        if self.volumes:
            d["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            d["WorkingDir"] = self.working_dir
        if self.labels:
            d["Labels"] = dict(self.labels)
        if self.stop_signal:
            d["StopSignal"] = self.stop_signal
        if self.healthcheck is not None:
            d["Healthcheck"] = self.healthcheck.to_dict()
        if self.on_build:
            d["OnBuild"] = list(self.on_build)
        if self.shell:
            d["Shell"] = list(self.shell)
        if self.args_escaped:
            d["ArgsEscaped"] = True
        return d

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.env:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def with_env(self, key: str, value: str) -> ContainerConfig:
        env = [e for e in self.env if e.partition("=")[0] != key]
        env.append(f"{key}={value}")
        return replace(self, env=tuple(env))


@record(frozen=True)
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(
            created=str(d.get("created") or ""),
            created_by=str(d.get("created_by") or ""),
            author=str(d.get("author") or ""),
            comment=str(d.get("comment") or ""),
            empty_layer=bool(d.get("empty_layer", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.created:
            d["created"] = self.created
        if self.created_by:
            d["created_by"] = self.created_by
        if self.author:
            d["author"] = self.author
        if self.comment:
            d["comment"] = self.comment
        if self.empty_layer:
            d["empty_layer"] = True
        return d


@record(frozen=True)
class ImageConfig:
    """The whole image configuration blob."""

    architecture: str = "amd64"
    os: str = "linux"
    variant: str = ""
    created: str = ""
    author: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[str, ...] = ()
    history: tuple[History, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level fields, kept

    @classmethod
    def from_json(cls, data: bytes | str) -> ImageConfig:
        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidData(f"invalid image config: {e}") from None
        if not isinstance(d, dict):
            raise InvalidData("invalid image config: not a JSON object")
        rootfs = d.get("rootfs") or {}
        known = {"architecture", "os", "variant", "created", "author", "config", "rootfs", "history"}
        return cls(
            architecture=str(d.get("architecture") or ""),
            os=str(d.get("os") or ""),
            variant=str(d.get("variant") or ""),
            created=str(d.get("created") or ""),
            author=str(d.get("author") or ""),
            config=ContainerConfig.from_dict(d.get("config")),
            diff_ids=tuple(rootfs.get("diff_ids") or ()),
            history=tuple(History.from_dict(h) for h in d.get("history") or ()),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra)
        d["architecture"] = self.architecture
        d["os"] = self.os
        if self.variant:
            d["variant"] = self.variant
        if self.created:
            d["created"] = self.created
        if self.author:
            d["author"] = self.author
        d["config"] = self.config.to_dict()
        d["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        if self.history:
            d["history"] = [h.to_dict() for h in self.history]
        return d

    def to_json(self) -> bytes:
        from pallet.oci.manifest import canonical_json

        return canonical_json(self.to_dict())
