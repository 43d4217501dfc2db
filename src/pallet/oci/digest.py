"""Content digests (``sha256:<64 hex>``) and helpers to compute them."""

from __future__ import annotations

import re

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import BinaryIO

_DIGEST_RE = re.compile(r"^(sha256):([a-f0-9]{64})$|^(sha512):([a-f0-9]{128})$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


def validate(digest: str) -> str:
    """Return ``digest`` if it is a well-formed digest, else raise InvalidArgument."""
    if not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest: {digest!r}")
    return digest


def is_digest(s: str) -> bool:
    return bool(_DIGEST_RE.match(s))


def is_hex_id(s: str) -> bool:
    """True for a full 64-hex-digit ID (image or container)."""
    return bool(_HEX64.match(s))


def algorithm(digest: str) -> str:
    return digest.split(":", 1)[0]


def encoded(digest: str) -> str:
    """The hex part of a digest."""
    return digest.split(":", 1)[1]


def of_bytes(data: bytes) -> str:
    import hashlib  # on first use: hashlib loads OpenSSL, which a lookup does not need

    return "sha256:" + hashlib.sha256(data).hexdigest()


def of_file(f: BinaryIO, bufsize: int = 1 << 20) -> tuple[str, int]:
    """Digest and size of everything readable from ``f``."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    while True:
        chunk = f.read(bufsize)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return "sha256:" + h.hexdigest(), n


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainIDs for a stack of layer DiffIDs.

    ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
    """
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append(of_bytes(f"{out[-1]} {d}".encode()))
    return out
