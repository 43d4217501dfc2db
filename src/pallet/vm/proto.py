"""The framed protocol between pallet and its guest agent (docs/vm.md).

A frame is an 8-byte header -- type (one ASCII letter), flags (0), the process
id (16 bits) and the payload length (32 bits), big endian -- then the payload.
Process id 0 is the container's own process; ``exec`` sessions get 1, 2, ...

Pure functions: encoding and an incremental decoder; no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

HEADER = struct.Struct(">BBHI")
MAX_PAYLOAD = 1 << 20

# host -> guest
SPEC = "S"
STDIN = "I"
SIGNAL = "K"
WINSIZE = "W"
FILE = "F"
SHARE = "V"
MOUNT = "M"
QUIT = "Q"
# guest -> host
READY = "R"
STARTED = "P"
STDOUT = "O"
STDERR = "E"
EXIT = "X"


@dataclass(frozen=True)
class Frame:
    type: str
    id: int
    payload: bytes


def encode(type_: str, id_: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame payload too large: {len(payload)} bytes")
    return HEADER.pack(ord(type_), 0, id_, len(payload)) + payload


def encode_chunks(type_: str, id_: int, data: bytes, chunk: int = 65536) -> Iterator[bytes]:
    """Data split into frames of at most ``chunk`` bytes (never an empty frame)."""
    for i in range(0, len(data), chunk):
        yield encode(type_, id_, data[i : i + chunk])


@dataclass(frozen=True)
class ProcessSpec:
    """What the agent needs to start one process in the guest."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    terminal: bool = False


def encode_spec(spec: ProcessSpec) -> bytes:
    """The SPEC payload: NUL-terminated fields, each a one-letter tag then the value."""
    fields: list[str] = [f"a{a}" for a in spec.args]
    fields += [f"e{e}" for e in spec.env]
    fields += [f"c{spec.cwd}", f"u{spec.uid}", f"g{spec.gid}"]
    fields += [f"G{g}" for g in spec.additional_gids]
    fields.append(f"t{int(spec.terminal)}")
    for f in fields:
        if "\0" in f:
            raise ValueError(f"NUL byte in process field {f[1:]!r}")
    return b"".join(f.encode() + b"\0" for f in fields)


def decode_spec(payload: bytes) -> ProcessSpec:
    """Inverse of :func:`encode_spec` (used by tests and for symmetry with the agent)."""
    args: list[str] = []
    env: list[str] = []
    gids: list[int] = []
    kw: dict[str, object] = {}
    for raw in payload.split(b"\0")[:-1]:
        f = raw.decode()
        tag, val = f[:1], f[1:]
        if tag == "a":
            args.append(val)
        elif tag == "e":
            env.append(val)
        elif tag == "c":
            kw["cwd"] = val
        elif tag == "u":
            kw["uid"] = int(val)
        elif tag == "g":
            kw["gid"] = int(val)
        elif tag == "G":
            gids.append(int(val))
        elif tag == "t":
            kw["terminal"] = val == "1"
    return ProcessSpec(tuple(args), tuple(env), additional_gids=tuple(gids), **kw)  # type: ignore[arg-type]


def encode_file(path: str, content: bytes, mode: int = 0o644) -> bytes:
    return path.encode() + b"\0" + f"{mode:o}".encode() + b"\0" + content


def encode_share(tag: str, target: str, readonly: bool) -> bytes:
    return f"{tag}\0{target}\0{'ro' if readonly else 'rw'}".encode()


def encode_mount(fstype: str, source: str, target: str, options: tuple[str, ...] = ()) -> bytes:
    return f"{fstype}\0{source}\0{target}\0{','.join(options)}".encode()


def encode_env(env: Mapping[str, str] | Sequence[str]) -> tuple[str, ...]:
    if isinstance(env, Mapping):
        return tuple(f"{k}={v}" for k, v in env.items())
    return tuple(env)


class Decoder:
    """Feed bytes as they arrive; take whole frames out."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while len(self._buf) >= HEADER.size:
            t, _flags, id_, n = HEADER.unpack_from(self._buf)
            if n > MAX_PAYLOAD:
                raise ValueError(f"frame payload too large: {n} bytes")
            if len(self._buf) < HEADER.size + n:
                break
            payload = bytes(self._buf[HEADER.size : HEADER.size + n])
            del self._buf[: HEADER.size + n]
            out.append(Frame(chr(t), id_, payload))
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)
