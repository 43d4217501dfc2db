"""Per-process limits of a container: ``--ulimit``, ``--shm-size``, ``--oom-score-adj``.

Parsed into Docker's HostConfig fields (``Ulimits``, ``ShmSize``,
``OomScoreAdj``) and written into the OCI spec (``process.rlimits``, the
/dev/shm mount, ``process.oomScoreAdj``).  Pure functions; Docker's wording.
"""

from __future__ import annotations

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # typing only for the type checker
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

ULIMITS = {
    "as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}  # fmt: skip


def parse_ulimit(text: str) -> dict[str, Any]:
    """``name=soft[:hard]`` (Docker's --ulimit) -> ``{"Name", "Soft", "Hard"}``."""
    name, sep, limits = text.partition("=")
    if not sep:
        raise InvalidArgument(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit argument: {text}')
    if name not in ULIMITS:
        raise InvalidArgument(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit type: {name}')
    soft_s, _, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise InvalidArgument(
            f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit argument: {limits}'
        ) from None
    if soft > hard and hard != -1:
        raise InvalidArgument(
            f'invalid argument "{text}" for "--ulimit" flag: ulimit soft limit must be less than or '
            f"equal to hard limit: {soft} > {hard}"
        )
    return {"Name": name, "Soft": soft, "Hard": hard}


def parse_flags(
    *, ulimit: Iterable[str] = (), shm_size: int | None = None, oom_score_adj: str | int | None = None
) -> dict[str, Any]:
    """HostConfig fields of these flags (``shm_size`` already in bytes)."""
    hc: dict[str, Any] = {}
    limits: dict[str, dict[str, Any]] = {}
    for u in ulimit:
        parsed = parse_ulimit(u)
        limits[parsed["Name"]] = parsed  # a later --ulimit for the same name wins
    if limits:
        hc["Ulimits"] = list(limits.values())
    if shm_size is not None:
        if shm_size <= 0:
            raise InvalidArgument("SHM size can not be less than 0")
        hc["ShmSize"] = shm_size
    if oom_score_adj not in (None, ""):
        try:
            score = int(oom_score_adj)  # type: ignore[arg-type]
        except ValueError:
            raise InvalidArgument(
                f'invalid argument "{oom_score_adj}" for "--oom-score-adj" flag: invalid syntax'
            ) from None
        if not -1000 <= score <= 1000:
            raise InvalidArgument(f"Invalid value {score}, range for oom score adj is [-1000, 1000]")
        hc["OomScoreAdj"] = score
    return hc


def apply(spec: dict[str, Any], hc: Mapping[str, Any]) -> None:
    """Write ``hc``'s process limits into the OCI ``spec`` (in place)."""
    process = spec.setdefault("process", {})
    if hc.get("Ulimits"):
        rlimits = {r["type"]: r for r in process.get("rlimits") or []}
        for u in hc["Ulimits"]:
            typ = ULIMITS[u["Name"]]
            unlimited = 2**64 - 1
            rlimits[typ] = {
                "type": typ,
                "soft": unlimited if u["Soft"] == -1 else u["Soft"],
                "hard": unlimited if u["Hard"] == -1 else u["Hard"],
            }
        process["rlimits"] = list(rlimits.values())
    if hc.get("OomScoreAdj") is not None:
        process["oomScoreAdj"] = int(hc["OomScoreAdj"])
    if hc.get("ShmSize"):
        for m in spec.get("mounts") or []:
            if m.get("destination") == "/dev/shm" and m.get("type") == "tmpfs":
                opts = [o for o in m.get("options") or [] if not o.startswith("size=")]
                m["options"] = [*opts, f"size={int(hc['ShmSize'])}"]
