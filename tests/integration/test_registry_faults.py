"""The registry client against a fake registry that answers badly on purpose.

Each bad answer must give one clear error, retry only where retrying makes
sense (429, 5xx, a dropped connection: bounded, with backoff), and leave no
partial blob behind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pallet.errors import DigestMismatch
from pallet.oci.reference import parse
from pallet.registry.auth import Credentials
from pallet.registry.errors import (
    RegistryDenied,
    RegistryError,
    RegistryInvalidData,
    RegistryNotFound,
    RegistryUnauthorized,
    RegistryUnavailable,
)
from pallet.registry.pull import pull
from pallet.registry.transport import Options, Registry
from tests.support.fake_registry import Faults, fake_registry
from tests.support.registry import DirSink

FAST = Options(timeout=1.0, retries=2, backoff=0.01)
ANON = Credentials()


def _pull(host: str, tmp: Path, creds: Credentials = ANON,
          opts: Options = FAST, ref: str = "test/img:v1") -> tuple[Any, DirSink]:
    sink = DirSink(tmp / "blobs")
    with Registry(host, creds, opts) as reg:
        return pull(reg, parse(f"{host}/{ref}"), sink), sink


def _blob_files(sink: DirSink) -> list[str]:
    return sorted(p.name for p in sink.d.iterdir())


def test_pull_ok(tmp_path: Path) -> None:
    with fake_registry() as reg:
        got, sink = _pull(reg.host, tmp_path)
        assert got.manifest_digest == reg.manifest_digest
        assert sink.has(reg.layer_digest)
        # pulling again downloads nothing
        got2, _ = _pull(reg.host, tmp_path)
        assert got2.downloaded == ()


@pytest.mark.parametrize(
    ("status", "exc", "text"),
    [
        (401, RegistryUnauthorized, "unauthorized: authentication required"),
        (403, RegistryDenied, "denied: requested access to the resource is denied"),
        (404, RegistryNotFound, "manifest unknown"),
    ],
)
def test_pull_client_errors_are_not_retried(tmp_path: Path, status: int, exc: type,
                                            text: str) -> None:
    with fake_registry(Faults(manifest_status=status)) as reg:
        with pytest.raises(exc) as ei:
            _pull(reg.host, tmp_path)
        assert text in str(ei.value)
        assert "\n" not in str(ei.value)
        assert reg.count["manifest"] == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_pull_retries_transient_errors(tmp_path: Path, status: int) -> None:
    with fake_registry(Faults(manifest_status=status, fail_times=2)) as reg:
        got, _ = _pull(reg.host, tmp_path)
        assert got.manifest_digest == reg.manifest_digest
        assert reg.count["manifest"] == 3


@pytest.mark.parametrize(("status", "text"), [(429, "toomanyrequests"),
                                              (500, "received unexpected HTTP status: 500")])
def test_pull_gives_up_after_bounded_retries(tmp_path: Path, status: int, text: str) -> None:
    with fake_registry(Faults(manifest_status=status)) as reg:
        with pytest.raises(RegistryUnavailable) as ei:
            _pull(reg.host, tmp_path)
        assert text in str(ei.value)
        assert reg.count["manifest"] == FAST.retries + 1


def test_retry_after_is_honoured_but_capped(tmp_path: Path) -> None:
    waits: list[float] = []
    opts = Options(timeout=1.0, retries=2, backoff=0.01, sleep=waits.append)
    with fake_registry(Faults(manifest_status=429, fail_times=1, retry_after="2")) as reg:
        _pull(reg.host, tmp_path, opts=opts)
    assert waits == [2.0]


def test_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    with fake_registry(Faults(layer="mismatch")) as reg:
        with pytest.raises(DigestMismatch) as ei:
            _pull(reg.host, tmp_path)
        assert f"expected {reg.layer_digest}" in str(ei.value)
        sink = DirSink(tmp_path / "blobs")
        assert not sink.has(reg.layer_digest)
        assert not [n for n in _blob_files(sink) if n.startswith("ingest-")]


def test_dropped_connection_is_resumed_with_range(tmp_path: Path) -> None:
    with fake_registry(Faults(layer="truncate_once")) as reg:
        got, sink = _pull(reg.host, tmp_path)
        assert sink.has(reg.layer_digest)
        ranges = [h.get("Range") for m, p, h in reg.requests if reg.layer_digest in p]
        assert ranges[0] is None
        assert ranges[-1] == f"bytes={len(reg.layer) // 2}-"


def test_truncated_layer_fails_after_retries(tmp_path: Path) -> None:
    with fake_registry(Faults(layer="truncate")) as reg:
        with pytest.raises(RegistryError) as ei:
            _pull(reg.host, tmp_path)
        assert reg.layer_digest in str(ei.value)
        assert reg.count["layer"] == FAST.retries + 1
        sink = DirSink(tmp_path / "blobs")
        assert not sink.has(reg.layer_digest)
        assert not [n for n in _blob_files(sink) if n.startswith("ingest-")]


def test_longer_body_than_announced(tmp_path: Path) -> None:
    with fake_registry(Faults(layer="extra")) as reg:
        with pytest.raises((RegistryInvalidData, RegistryUnavailable, DigestMismatch)):
            _pull(reg.host, tmp_path)
        assert not DirSink(tmp_path / "blobs").has(reg.layer_digest)


def test_manifest_points_to_missing_blob(tmp_path: Path) -> None:
    with fake_registry(Faults(layer="missing")) as reg:
        with pytest.raises(RegistryNotFound) as ei:
            _pull(reg.host, tmp_path)
        assert str(ei.value).startswith(f"blob unknown: {reg.layer_digest}")


def test_hanging_registry_times_out(tmp_path: Path) -> None:
    opts = Options(timeout=0.5, retries=1, backoff=0.01)
    with fake_registry(Faults(hang="manifest")) as reg:
        t0 = time.monotonic()
        with pytest.raises(RegistryUnavailable) as ei:
            _pull(reg.host, tmp_path, opts=opts)
        assert "timeout" in str(ei.value)
        assert time.monotonic() - t0 < 10


def test_hanging_blob_download_times_out(tmp_path: Path) -> None:
    opts = Options(timeout=0.5, retries=1, backoff=0.01)
    with fake_registry(Faults(hang="blob")) as reg:
        with pytest.raises(RegistryUnavailable):
            _pull(reg.host, tmp_path, opts=opts)
        assert not [n for n in _blob_files(DirSink(tmp_path / "blobs"))]


def test_manifest_digest_checked(tmp_path: Path) -> None:
    with fake_registry() as reg:
        wrong = "sha256:" + "0" * 64
        with pytest.raises(RegistryNotFound):
            _pull(reg.host, tmp_path, ref=f"test/img@{wrong}")
        got, _ = _pull(reg.host, tmp_path, ref=f"test/img@{reg.manifest_digest}")
        assert got.manifest_digest == reg.manifest_digest


def test_bearer_token_anonymous(tmp_path: Path) -> None:
    with fake_registry(Faults(bearer=True)) as reg:
        got, _ = _pull(reg.host, tmp_path)
        assert got.manifest_digest == reg.manifest_digest
        tok = [p for m, p, h in reg.requests if p.startswith("/token")]
        assert tok and "scope=repository%3Atest%2Fimg%3Apull" in tok[0]
        assert "service=fake" in tok[0]


def test_bearer_token_with_credentials(tmp_path: Path) -> None:
    with fake_registry(Faults(bearer=True, user="u", password="p")) as reg:
        with pytest.raises(RegistryUnauthorized) as ei:
            _pull(reg.host, tmp_path)
        assert "authentication required" in str(ei.value)
        with pytest.raises(RegistryUnauthorized) as ei:
            _pull(reg.host, tmp_path, creds=Credentials("u", "wrong"))
        assert "incorrect username or password" in str(ei.value)
        got, _ = _pull(reg.host, tmp_path, creds=Credentials("u", "p"))
        assert got.manifest_digest == reg.manifest_digest


def test_connection_refused_is_quick(tmp_path: Path) -> None:
    from tests.support.registry import free_port

    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(RegistryUnavailable) as ei:
        _pull(f"127.0.0.1:{port}", tmp_path)
    assert "connection refused" in str(ei.value)
    assert time.monotonic() - t0 < 5


def _push_image(host: str, tmp: Path, opts: Options = FAST) -> tuple[Any, bytes, DirSink]:
    from pallet.registry.push import push
    from tests.support.fake_registry import _image

    layer, config, manifest = _image()
    src = DirSink(tmp / "src")
    for b in (layer, config):
        src.put(b)
    with Registry(host, options=opts) as reg:
        res = push(reg, parse(f"{host}/push/img:v1"), src, manifest,
                   "application/vnd.oci.image.manifest.v1+json")
    return res, manifest, src


def test_push_restarts_a_lost_upload_session(tmp_path: Path) -> None:
    with fake_registry(Faults(upload="drop_once")) as reg:
        res, manifest, src = _push_image(reg.host, tmp_path)
        assert res.digest.split(":")[1] and reg.pushed[res.digest] == manifest
        assert reg.count["session"] == 3  # config, layer, and a new session for the lost one
        for d in (res.uploaded):
            assert reg.pushed[d] == src.read(d)


def test_push_manifest_retried_after_5xx(tmp_path: Path) -> None:
    with fake_registry(Faults(manifest_put_status=503, fail_times=1)) as reg:
        res, manifest, _ = _push_image(reg.host, tmp_path)
        assert reg.pushed[res.digest] == manifest
        assert reg.count["manifest_put"] == 2


def test_push_manifest_refused(tmp_path: Path) -> None:
    with fake_registry(Faults(manifest_put_status=403)) as reg, pytest.raises(RegistryDenied):
        _push_image(reg.host, tmp_path)


def test_bearer_token_from_an_identity_token(tmp_path: Path) -> None:
    """Credentials saved as an identity (refresh) token use the OAuth2 POST flow."""
    with fake_registry(Faults(bearer=True, user="u", password="refresh-me")) as reg:
        got, _ = _pull(reg.host, tmp_path, creds=Credentials(identity_token="refresh-me"))
        assert got.manifest_digest == reg.manifest_digest
        assert reg.count["oauth"] >= 1
        with pytest.raises(RegistryUnauthorized):
            _pull(reg.host, tmp_path / "b", creds=Credentials(identity_token="stale"))
