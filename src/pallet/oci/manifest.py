"""Descriptors, image manifests and indexes (OCI and Docker schema2), as frozen dataclasses.

JSON is parsed once into these types; ``to_json()`` gives the canonical bytes
pallet writes (the digest of a manifest is the digest of those exact bytes, so
manifests received from elsewhere are stored as received, never re-serialized).
"""

from __future__ import annotations

import json

from pallet.errors import InvalidData
from pallet.oci import mediatypes as mt
from pallet.oci.digest import validate
from pallet.oci.record import field, record

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any


@record(frozen=True)
class Platform:
    architecture: str
    os: str
    variant: str = ""
    os_version: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Platform:
        return cls(
            architecture=str(d.get("architecture", "")),
            os=str(d.get("os", "")),
            variant=str(d.get("variant", "")),
            os_version=str(d.get("os.version", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        if self.os_version:
            d["os.version"] = self.os_version
        return d

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s

    @classmethod
    def parse(cls, s: str) -> Platform:
        parts = s.split("/")
        if len(parts) < 2 or len(parts) > 3 or not all(parts):
            raise InvalidData(f"invalid platform: {s!r} (want os/arch[/variant])")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else "")


@record(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Descriptor:
        try:
            digest = validate(str(d["digest"]))
            size = int(d["size"])
            media_type = str(d.get("mediaType", ""))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidData(f"invalid descriptor: {e}") from None
        if size < 0:
            raise InvalidData("invalid descriptor: negative size")
        plat = d.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=dict(d.get("annotations") or {}),
            platform=Platform.from_dict(plat) if isinstance(plat, dict) else None,
            urls=tuple(d.get("urls") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        if self.urls:
            d["urls"] = list(self.urls)
        return d


def _loads(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidData(f"invalid {what}: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidData(f"invalid {what}: not a JSON object")
    return obj


@record(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker schema2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    schema_version: int = 2

    @classmethod
    def from_json(cls, data: bytes | str, media_type: str = "") -> Manifest:
        d = _loads(data, "manifest")
        mtype = str(d.get("mediaType") or media_type or mt.OCI_MANIFEST)
        if mtype not in mt.MANIFESTS:
            raise InvalidData(f"unsupported manifest media type: {mtype}")
        if "config" not in d or not isinstance(d.get("layers", []), list):
            raise InvalidData("invalid manifest: missing config or layers")
        return cls(
            media_type=mtype,
            config=Descriptor.from_dict(d["config"]),
            layers=tuple(Descriptor.from_dict(x) for x in d.get("layers") or []),
            annotations=dict(d.get("annotations") or {}),
            schema_version=int(d.get("schemaVersion", 2)),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [x.to_dict() for x in self.layers],
        }
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


@record(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    schema_version: int = 2

    @classmethod
    def from_json(cls, data: bytes | str, media_type: str = "") -> Index:
        d = _loads(data, "index")
        mtype = str(d.get("mediaType") or media_type or mt.OCI_INDEX)
        if mtype not in mt.INDEXES:
            raise InvalidData(f"unsupported index media type: {mtype}")
        return cls(
            media_type=mtype,
            manifests=tuple(Descriptor.from_dict(x) for x in d.get("manifests") or []),
            annotations=dict(d.get("annotations") or {}),
            schema_version=int(d.get("schemaVersion", 2)),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "manifests": [x.to_dict() for x in self.manifests],
        }
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


def sniff_media_type(data: bytes) -> str:
    """Media type of a manifest or index from its own fields."""
    d = _loads(data, "manifest")
    if d.get("mediaType"):
        return str(d["mediaType"])
    if "manifests" in d:
        return mt.OCI_INDEX
    if "config" in d:
        return mt.OCI_MANIFEST
    raise InvalidData("cannot tell the manifest's media type")


def canonical_json(obj: Any) -> bytes:
    """Compact, key-sorted JSON: the bytes pallet writes for documents it creates."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
