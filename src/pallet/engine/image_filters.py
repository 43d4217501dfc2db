"""Filters of ``images`` and ``image prune`` (pure)."""

from __future__ import annotations

import time

from pallet.errors import InvalidArgument
from pallet.store import Image

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from typing import Any


def matches_reference(img: Image, pattern: str) -> bool:
    import fnmatch

    for tag in img.repo_tags:
        repo, _, t = tag.rpartition(":")
        if ":" in pattern.rsplit("/", 1)[-1]:
            if fnmatch.fnmatchcase(tag, pattern):
                return True
        elif fnmatch.fnmatchcase(repo, pattern):
            return True
    return False


def _epoch(ts: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (nanoseconds allowed)."""
    import datetime
    import re

    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", ts or "")
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(m.group(1) + frac + tz).timestamp()


def _parse_until(value: str) -> float:
    """Docker's ``until``: a Go duration (``24h``, ``90m``) before now, or a timestamp."""
    import re

    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if value and m and any(m.groups()):
        h, mi, se = (float(x or 0) for x in m.groups())
        return time.time() - (h * 3600 + mi * 60 + se)
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    t = _epoch(value) or _epoch(value + "T00:00:00Z")
    if t is None:
        raise InvalidArgument(f"invalid filter 'until={value}'")
    return t


def prune_filter(filters: list[str]) -> Any:
    """A predicate: True for images the filters protect from pruning."""
    checks = []
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if key == "until":
            cutoff = _parse_until(value)
            checks.append(lambda img, c=cutoff: (_epoch(img.created) or 0) >= c)
        elif key in ("label", "label!"):
            k, _, v = value.partition("=")

            def has(img: Image, k: str = k, v: str = v) -> bool:
                labels = img.config.config.labels
                return k in labels and (not v or labels[k] == v)

            if key == "label":
                checks.append(lambda img, h=has: not h(img))
            else:
                checks.append(has)
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return lambda img: any(c(img) for c in checks)
