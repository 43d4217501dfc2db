"""Image references, parsed and normalized as Docker does.

``busybox`` is ``docker.io/library/busybox:latest``; ``localhost:5000/app`` keeps its
registry; ``name@sha256:...`` names a manifest by digest.  The grammar follows the
distribution project's reference grammar.
"""

from __future__ import annotations

import re

from pallet.errors import InvalidReference
from pallet.oci.record import record

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


@record(frozen=True)
class Reference:
    """A normalized image reference.

    ``domain`` and ``path`` are always set (``docker.io``, ``library/busybox``);
    ``tag`` and ``digest`` may be empty.  ``str()`` gives the full form.
    """

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        """Full repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """The short form Docker shows: ``busybox``, ``user/app``, ``localhost:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_PREFIX) and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_PREFIX) :]
            return self.path
        return self.repository

    def familiar(self) -> str:
        """Short form with tag and digest: ``busybox:latest``."""
        return self._with(self.familiar_repository)

    def __str__(self) -> str:
        return self._with(self.repository)

    def _with(self, repo: str) -> str:
        s = repo
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, "")

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, "", digest)

    @property
    def is_tagged(self) -> bool:
        return bool(self.tag)


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = first, name[i + 1 :]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return domain, rest


def parse(ref: str, default_tag: bool = True) -> Reference:
    """Parse and normalize a reference; add ``:latest`` when it has neither tag nor digest.

    Raises :class:`InvalidReference` with Docker's wording.
    """
    if not ref:
        raise InvalidReference(ref, "invalid reference format")
    if _HEX64.match(ref):
        raise InvalidReference(
            ref,
            "invalid repository name, cannot specify 64-byte hexadecimal strings",
        )
    rest = ref
    digest = ""
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidReference(ref, "invalid reference format")
    tag = ""
    # a tag is after the last ':' that follows the last '/'
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference(ref, "invalid reference format")
    if not rest:
        raise InvalidReference(ref, "invalid reference format")
    domain, path = _split_domain(rest)
    if (domain != DEFAULT_DOMAIN or "/" in rest) and not _DOMAIN_RE.match(domain):
        raise InvalidReference(ref, "invalid reference format")
    if path.lower() != path:
        raise InvalidReference(ref, "invalid reference format: repository name must be lowercase")
    if not _PATH_RE.match(path):
        raise InvalidReference(ref, "invalid reference format")
    if len(domain) + 1 + len(path) > NAME_MAX:
        raise InvalidReference(ref, "repository name must not be more than 255 characters")
    if default_tag and not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def try_parse(ref: str) -> Reference | None:
    try:
        return parse(ref)
    except InvalidReference:
        return None
