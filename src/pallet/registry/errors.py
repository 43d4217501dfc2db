"""Errors a registry answers with, mapped to pallet's categories with Docker's wording.

The distribution API answers errors as ``{"errors": [{"code": "MANIFEST_UNKNOWN",
"message": "manifest unknown", ...}]}``; Docker prints them as ``code: message``
in lower case (``manifest unknown: manifest unknown``,
``unauthorized: authentication required``).  :func:`from_response` turns one
answer into the matching exception.
"""

from __future__ import annotations

import json
from typing import Any

from pallet.errors import (
    InvalidData,
    NotFound,
    PalletError,
    Unauthorized,
    Unavailable,
)


class RegistryError(PalletError):
    """An error answered by, or talking to, a registry."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RegistryUnauthorized(RegistryError, Unauthorized):
    """401: no or wrong credentials."""


class RegistryDenied(RegistryError, Unauthorized):
    """403: the credentials are valid but lack the right."""


class RegistryNotFound(RegistryError, NotFound):
    """404: no such repository, manifest or blob."""


class RegistryUnavailable(RegistryError, Unavailable):
    """Connection refused, timed out, 429 or 5xx after the retries."""


class RegistryInvalidData(RegistryError, InvalidData):
    """The registry sent something malformed: a bad digest, a truncated blob."""


class RegistryTLSError(RegistryError, Unavailable):
    """TLS handshake or certificate verification failed."""


# Retrying these makes sense: the server said "later" or broke down.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _errors_of(body: bytes) -> list[dict[str, Any]]:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    if isinstance(obj, dict) and isinstance(obj.get("errors"), list):
        return [e for e in obj["errors"] if isinstance(e, dict)]
    return []


def describe(status: int, body: bytes, default: str = "") -> tuple[str, str]:
    """``(code, message)`` of an error answer, as Docker prints them."""
    errs = _errors_of(body)
    if errs:
        first = errs[0]
        code = str(first.get("code") or "").upper()
        msg = str(first.get("message") or "").strip()
        text = code.lower().replace("_", " ")
        if msg and msg.lower() != text:
            text = f"{text}: {msg}" if text else msg
        return code, text or default
    if status == 401:
        return "UNAUTHORIZED", "unauthorized: authentication required"
    if status == 403:
        return "DENIED", "denied: requested access to the resource is denied"
    if status == 404:
        return "NOT_FOUND", default or "not found"
    if status == 429:
        return "TOOMANYREQUESTS", "toomanyrequests: too many requests"
    snippet = body[:200].decode("utf-8", "replace").strip().replace("\n", " ")
    reason = f"received unexpected HTTP status: {status}"
    return "", f"{reason} {snippet}".strip() if status >= 500 and snippet else reason


def from_response(status: int, body: bytes, what: str = "") -> RegistryError:
    """The exception for an error answer; ``what`` names the object asked for."""
    code, text = describe(status, body, default=f"{what} not found" if what else "")
    if status == 401:
        if code in ("", "UNAUTHORIZED") and "authentication required" not in text:
            text = text or "unauthorized: authentication required"
        return RegistryUnauthorized(text, status, code or "UNAUTHORIZED")
    if status == 403:
        return RegistryDenied(text, status, code or "DENIED")
    if status == 404:
        if code == "MANIFEST_UNKNOWN" and what:
            return RegistryNotFound(f"manifest for {what} not found: {text}", status, code)
        return RegistryNotFound(text, status, code or "NOT_FOUND")
    if status in RETRYABLE_STATUS:
        return RegistryUnavailable(text, status, code)
    return RegistryError(text, status, code)
