"""Docker's json-file log format: one JSON object per line of output.

``{"log":"hello\\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}``
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pallet.errors import InvalidArgument

MAX_LINE = 16 * 1024  # Docker splits longer lines into partial records


def _ts(ns: int) -> str:
    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


def encode_record(stream: str, data: bytes, ns: int | None = None) -> bytes:
    rec = {
        "log": data.decode("utf-8", errors="replace"),
        "stream": stream,
        "time": _ts(ns if ns is not None else time.time_ns()),
    }
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class LogWriter:
    """Append complete lines of each stream to a json-file log."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial.get(stream, b"") + data
        out = []
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            line = buf[: i + 1]
            while len(line) > MAX_LINE:
                out.append(encode_record(stream, line[:MAX_LINE]))
                line = line[MAX_LINE:]
            out.append(encode_record(stream, line))
            buf = buf[i + 1 :]
        while len(buf) >= MAX_LINE:
            out.append(encode_record(stream, buf[:MAX_LINE]))
            buf = buf[MAX_LINE:]
        self.partial[stream] = buf
        if out:
            os.write(self.fd, b"".join(out))

    def close(self) -> None:
        for stream, buf in self.partial.items():
            if buf:
                os.write(self.fd, encode_record(stream, buf))
        self.partial.clear()
        os.close(self.fd)


@dataclass(frozen=True)
class LogRecord:
    stream: str
    data: bytes
    time: str  # RFC 3339 as recorded
    ns: int


def parse_rfc3339_ns(s: str) -> int:
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?$", s)
    if not m:
        raise ValueError(s)
    import calendar

    base = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = int((m.group(2) or "0").ljust(9, "0"))
    tz = m.group(3) or "Z"
    off = 0
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        off = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return (base - off) * 1_000_000_000 + frac


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def parse_time(value: str, now_ns: int | None = None) -> int:
    """--since/--until: RFC 3339 (date or date-time), unix seconds, or a Go duration ago."""
    now = now_ns if now_ns is not None else time.time_ns()
    v = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return int(float(v) * 1e9)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", v):
        v += "T00:00:00Z"
    try:
        return parse_rfc3339_ns(v)
    except ValueError:
        pass
    if _DUR.sub("", v) == "" and v:
        total = sum(float(n) * _UNITS[u] for n, u in _DUR.findall(v))
        return now - int(total)
    raise InvalidArgument(f'invalid value for "since/until": {value!r}')


def _records(data: bytes) -> Iterator[LogRecord]:
    for line in data.splitlines():
        if not line:
            continue
        try:
            d = json.loads(line)
            t = str(d.get("time", ""))
            yield LogRecord(str(d.get("stream", "stdout")), str(d.get("log", "")).encode(), t,
                            parse_rfc3339_ns(t) if t else 0)
        except ValueError:
            continue


def read_logs(
    path: str | os.PathLike[str],
    *,
    tail: int | None = None,
    since: int = 0,
    until: int = 0,
    follow: bool = False,
    alive: Callable[[], bool] | None = None,
    poll: float = 0.1,
) -> Iterator[LogRecord]:
    """Records of a json-file log; with ``follow``, keep reading while ``alive()`` is true."""
    while True:
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
            break
        except FileNotFoundError:
            # following a container whose monitor has not created its log yet: wait for it
            if not follow or alive is None or (not alive() and not os.path.exists(path)):
                return
            time.sleep(poll)
    with f:
        data = f.read()
        cut = data.rfind(b"\n") + 1
        rest, data = data[cut:], data[:cut]
        recs = list(_records(data))
        if tail is not None and tail >= 0:
            recs = recs[-tail:] if tail else []
        for r in recs:
            if since and r.ns < since:
                continue
            if until and r.ns > until:
                return
            yield r
        if not follow:
            return
        while True:
            chunk = f.read()
            if chunk:
                rest += chunk
                cut = rest.rfind(b"\n") + 1
                for r in _records(rest[:cut]):
                    if since and r.ns < since:
                        continue
                    if until and r.ns > until:
                        return
                    yield r
                rest = rest[cut:]
                continue
            if alive is not None and not alive():
                chunk = f.read()
                if chunk:
                    rest += chunk
                    continue
                return
            time.sleep(poll)
