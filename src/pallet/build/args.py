"""Build arguments with Docker's scoping rules (pure).

ARGs before the first FROM ("meta args") are visible to FROM lines only; a
stage sees an ARG from its declaration on, with the ``--build-arg`` value if
one was given, else its default, else (``ARG NAME`` without default) the meta
arg's value.  The predefined proxy arguments are usable without a declaration
but only when given with ``--build-arg``; ENV of the same name wins over an ARG.
"""

from __future__ import annotations

from collections.abc import Mapping

BUILTIN = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})


class BuildArgs:
    __slots__ = ("allowed", "meta", "options", "referenced")

    def __init__(self, options: dict[str, str | None], meta: dict[str, str | None] | None = None,
                 allowed: dict[str, str | None] | None = None, referenced: set[str] | None = None) -> None:
        self.options = options  # --build-arg values (None: "--build-arg X" with X unset)
        self.meta: dict[str, str | None] = {} if meta is None else meta
        self.allowed: dict[str, str | None] = {} if allowed is None else allowed  # declared in this stage
        self.referenced: set[str] = set() if referenced is None else referenced

    def __repr__(self) -> str:
        return f"BuildArgs(options={self.options!r}, meta={self.meta!r}, allowed={self.allowed!r})"

    def for_stage(self) -> BuildArgs:
        """A fresh scope for a new stage (meta args and options carry over)."""
        return BuildArgs(self.options, self.meta, {}, self.referenced)

    def add_meta(self, key: str, default: str | None) -> None:
        self.referenced.add(key)
        v = self.options.get(key)
        self.meta[key] = v if v is not None else default

    def add(self, key: str, default: str | None) -> None:
        self.referenced.add(key)
        self.allowed[key] = default

    def _value(self, key: str, mapping: Mapping[str, str | None]) -> str | None:
        opt = self.options.get(key)
        if opt is not None:
            return opt
        default = mapping.get(key)
        if default is None:
            return self.meta.get(key)
        return default

    def meta_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta.items() if v is not None}

    def values(self) -> dict[str, str]:
        """Every arg usable in this stage with its value (declared ones and set builtins)."""
        out: dict[str, str] = {}
        for k in list(self.allowed) + sorted(BUILTIN):
            if k in out:
                continue
            if k in BUILTIN and k not in self.allowed:
                v = self.options.get(k)
            else:
                v = self._value(k, self.allowed)
            if v is not None:
                out[k] = v
        return out

    def filter_allowed(self, env: tuple[str, ...]) -> list[str]:
        """``KEY=value`` for the args not shadowed by an ENV of the same name."""
        env_keys = {e.partition("=")[0] for e in env}
        return [f"{k}={v}" for k, v in self.values().items() if k not in env_keys]

    def history_args(self, env: tuple[str, ...]) -> list[str]:
        """The args a RUN records in its history (``|N K=V ...``): builtins only when declared."""
        return sorted(
            kv for kv in self.filter_allowed(env)
            if kv.partition("=")[0] in self.allowed or kv.partition("=")[0] not in BUILTIN
        )

    def unused(self) -> list[str]:
        return sorted(k for k in self.options if k not in self.referenced and k not in BUILTIN)


def env_map(env: tuple[str, ...] | list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out
