"""The builder's caches, kept in its state directory: the step cache (step key -> config blob
and layers, one small file per step so a lookup reads only its own entry however large the
cache grows, and concurrent builds never overwrite each other's; ``--cache-from`` images
matched with Docker's rule), and the parser's output by Dockerfile content (a rebuild does
not load the parser)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pallet.oci.image import ContainerConfig, ImageConfig
from pallet.oci.manifest import Descriptor
from pallet.oci.record import replace

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from typing import Any

    from pallet.store import BlobStore, Image


class StepCache:
    def __init__(self, work_dir: Path, blobs: BlobStore) -> None:
        self.work = work_dir
        self.dir = work_dir / "steps"  # <key's hex>.json: {"config": digest, "layers": [descriptors]}
        self.legacy = work_dir / "cache.json"  # the single index of earlier versions
        self.blobs = blobs
        self.sources: list[Image] = []
        self._new: dict[str, dict[str, object]] = {}
        self._checked_legacy = False

    def _file(self, key: str) -> Path:
        return self.dir / (key.rpartition(":")[2] + ".json")

    def entry(self, key: str) -> dict[str, object] | None:
        """The raw entry of a step key, if any."""
        if key in self._new:
            return self._new[key]
        try:
            ent = json.loads(self._file(key).read_bytes())
        except FileNotFoundError:
            if self._checked_legacy or not self._split_legacy():
                return None
            return self.entry(key)
        except (OSError, ValueError):
            return None
        return ent if isinstance(ent, dict) else None

    def _split_legacy(self) -> bool:
        """Move the entries of an earlier version's single index into their own files, once."""
        self._checked_legacy = True
        if not self.legacy.exists():
            return False
        import fcntl

        with open(self.work / "cache.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                old = json.loads(self.legacy.read_bytes())
            except (OSError, ValueError):
                old = {}
            for key, ent in (old.items() if isinstance(old, dict) else ()):
                if not self._file(key).exists():
                    self._write(key, ent)
            self.legacy.unlink(missing_ok=True)
        return True

    def _write(self, key: str, ent: object) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._file(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(ent))
        os.replace(tmp, path)  # not synced: a lost entry is a cache miss

    def step_keys(self) -> list[str]:
        """Every step key the cache holds (for ``builder prune``)."""
        self._split_legacy()
        try:
            return ["sha256:" + n[:-5] for n in os.listdir(self.dir) if n.endswith(".json") and n[0] != "."]
        except FileNotFoundError:
            return []

    def get(self, key: str) -> tuple[ImageConfig, list[Descriptor], str] | None:
        """The cached result of a step, if its blobs are all still in the store."""
        ent = self.entry(key)
        if not ent:
            return None
        try:
            cfg_digest = str(ent["config"])
            layers = [Descriptor.from_dict(d) for d in ent["layers"]]  # type: ignore[attr-defined]
        except (KeyError, TypeError, ValueError):
            return None
        if not self.blobs.has(cfg_digest) or not all(self.blobs.has(d.digest) for d in layers):
            return None
        return ImageConfig.from_json(self.blobs.read(cfg_digest)), layers, cfg_digest

    def put(self, key: str, cfg_digest: str, layers: list[Descriptor]) -> None:
        entry: dict[str, object] = {"config": cfg_digest, "layers": [d.to_dict() for d in layers]}
        self._new[key] = entry

    def save(self) -> None:
        """Write this build's entries (each in its own file: concurrent builds keep theirs)."""
        for key, ent in self._new.items():
            self._write(key, ent)
        self._new = {}

    def from_sources(self, state: ImageConfig, state_layers: list[Descriptor], cc: ContainerConfig,
                     created_by: str) -> tuple[ImageConfig, list[Descriptor]] | None:
        """``--cache-from``: a step of an image whose history and layers continue ``state``.

        Docker's rule: the step takes the image's history record and layer with the
        configuration computed here; the image's last step gives the image itself when
        the configurations agree (so a rebuild from the same sources keeps its ID).
        """
        n, k = len(state.history), len(state.diff_ids)
        mine = [(h.created_by, h.empty_layer) for h in state.history]
        for img in self.sources:
            hist = img.config.history
            if len(hist) <= n or [(h.created_by, h.empty_layer) for h in hist[:n]] != mine:
                continue
            if tuple(img.config.diff_ids[:k]) != tuple(state.diff_ids):
                continue
            nxt = hist[n]
            if nxt.created_by != created_by:
                continue
            if n == len(hist) - 1:
                if img.config.config.to_dict() != cc.to_dict():
                    continue
                return img.config, list(img.manifest.layers)
            diff_ids = list(state.diff_ids)
            layers = list(state_layers)
            if not nxt.empty_layer:
                if len(img.manifest.layers) <= k:
                    continue
                layers.append(img.manifest.layers[k])
                diff_ids.append(img.config.diff_ids[k])
            cfg = replace(state, config=cc, created=nxt.created, diff_ids=tuple(diff_ids),
                          history=(*state.history, nxt))
            return cfg, layers
        return None


class ParseCache:
    """buildkit's parse of the Dockerfiles built lately, by content and parser version."""

    KEEP = 64
    FORMAT = "1"  # of the records (pallet.build.parser.go_parse)

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / "parsed.json"

    def records(self, text: str, filename: str) -> list[dict[str, Any]]:
        """The parser's records of ``text``: kept ones, else parsed now (errors are not kept)."""
        from pallet.build.parser import go_parse

        key = _parser_key(text)
        try:
            data = json.loads(self.path.read_bytes())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        hit = data.get(key)
        if isinstance(hit, list) and all(isinstance(r, dict) and r.keys() == _FIELDS for r in hit):
            return hit
        recs = go_parse(text, filename)
        data.pop(key, None)
        data[key] = recs
        kept = dict(list(data.items())[-self.KEEP:])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".parsed.json.{os.getpid()}")
            tmp.write_text(json.dumps(kept))
            os.replace(tmp, self.path)  # not synced: a lost file costs one parse
        except OSError:
            pass
        return recs


_FIELDS = {"cmd", "sub_cmd", "json", "original", "line", "flags", "value", "heredocs"}


def _parser_key(text: str) -> str:
    import hashlib
    from importlib.machinery import PathFinder  # lighter than importlib.util

    spec = PathFinder.find_spec("dockerfile")
    ident = ""
    if spec is not None and spec.origin:
        try:
            st = os.stat(spec.origin)
            ident = f"{spec.origin}:{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            pass
    return hashlib.sha256(f"{ParseCache.FORMAT}\0{ident}\0{text}".encode()).hexdigest()
