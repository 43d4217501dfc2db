"""The registry client against Debian's reference registry (docker-registry), with and
without TLS and htpasswd auth, and skopeo reading what pallet pushed."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.digest import of_bytes
from pallet.oci.manifest import Descriptor, Index, Manifest, Platform
from pallet.oci.reference import parse
from pallet.registry.auth import Credentials
from pallet.registry.errors import RegistryTLSError, RegistryUnauthorized
from pallet.registry.platform import host_platform
from pallet.registry.pull import get_manifest, pull
from pallet.registry.push import push, push_manifest, push_raw
from pallet.registry.transport import Options, Registry
from tests.support import registry as regsupport
from tests.support.registry import DirSink, RunningRegistry

pytestmark = pytest.mark.skipif(not regsupport.available(), reason="needs docker-registry")


@pytest.fixture(scope="module")
def plain() -> Iterator[RunningRegistry]:
    with regsupport.registry() as r:
        yield r


@pytest.fixture(scope="module")
def secure() -> Iterator[RunningRegistry]:
    with regsupport.registry(tls=True, auth=True) as r:
        yield r


def _layer(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tf.addfile(info, io.BytesIO(content))
    return gzip.compress(buf.getvalue(), mtime=0)


def make_image(sink: DirSink, tag: str = "x", arch: str = "amd64",
               media: str = mt.OCI_MANIFEST) -> tuple[bytes, str]:
    """An image of two gzip layers in ``sink``; returns (manifest bytes, media type)."""
    layers = [_layer(f"f{i}", f"{tag}-{arch}-{i}".encode() * 5000) for i in range(2)]
    for b in layers:
        sink.put(b)
    diff_ids = [of_bytes(gzip.decompress(b)) for b in layers]
    config = json.dumps({"architecture": arch, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "config": {"Cmd": ["sh"]}}).encode()
    sink.put(config)
    oci = media == mt.OCI_MANIFEST
    m = Manifest(media, Descriptor(mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
                                   of_bytes(config), len(config)),
                 tuple(Descriptor(mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER_GZIP,
                                  of_bytes(b), len(b)) for b in layers))
    return m.to_json(), media


def test_push_pull_round_trip(plain: RunningRegistry, tmp_path: Path) -> None:
    src = DirSink(tmp_path / "src")
    data, media = make_image(src, "rt", media=mt.DOCKER_MANIFEST)
    ref = parse(f"{plain.host}/rt/img:v1")
    with Registry(plain.host) as reg:
        res = push(reg, ref, src, data, media)
        assert res.digest == of_bytes(data)
        assert len(res.uploaded) == 3
        again = push(reg, ref, src, data, media)
        assert again.uploaded == () and len(again.existing) == 3
        other = push(reg, parse(f"{plain.host}/rt/other:v1"), src, data, media,
                     mount_candidates=lambda d: ("rt/img",))
        assert len(other.mounted) == 3 and other.uploaded == ()
    dst = DirSink(tmp_path / "dst")
    with Registry(plain.host) as reg:
        got = pull(reg, ref, dst)
    assert got.manifest_bytes == data
    assert got.media_type == mt.DOCKER_MANIFEST
    man = Manifest.from_json(data)
    for d in (man.config, *man.layers):
        assert dst.read(d.digest) == src.read(d.digest)


def test_chunked_upload(plain: RunningRegistry, tmp_path: Path) -> None:
    src = DirSink(tmp_path / "src")
    data, media = make_image(src, "chunk")
    ref = parse(f"{plain.host}/chunk/img:v1")
    with Registry(plain.host) as reg:
        res = push(reg, ref, src, data, media, chunk_size=4096)
        assert len(res.uploaded) == 3
    dst = DirSink(tmp_path / "dst")
    with Registry(plain.host) as reg:
        got = pull(reg, ref, dst)
    for d in got.manifest.layers:
        assert dst.read(d.digest) == src.read(d.digest)


def test_tls_and_basic_auth(secure: RunningRegistry, tmp_path: Path) -> None:
    assert secure.tls is not None
    certs = tmp_path / "certs.d" / secure.host
    certs.mkdir(parents=True)
    shutil.copy(secure.tls.ca, certs / "ca.crt")
    opts = Options(certs_dirs=(tmp_path / "certs.d",), retries=1, backoff=0.01)
    src = DirSink(tmp_path / "src")
    data, media = make_image(src, "sec")
    ref = parse(f"{secure.host}/sec/img:v1")
    # loopback registries are tried over unverified TLS by default, like Docker;
    # strict verification needs the CA, and fails without it
    strict = Options(certs_dirs=(), retries=0)
    with Registry("localhost:" + secure.host.split(":")[1], options=strict) as reg:
        reg.insecure = False
        with pytest.raises(RegistryTLSError) as ei:
            reg.base()
        assert "certificate" in str(ei.value)
    with Registry(secure.host, options=opts) as reg:
        reg.insecure = False
        with pytest.raises(RegistryUnauthorized) as ei2:
            push(reg, ref, src, data, media)
        assert "authentication required" in str(ei2.value)
    with Registry(secure.host, Credentials(secure.user, "wrong"), opts) as reg:
        reg.insecure = False
        with pytest.raises(RegistryUnauthorized):
            reg.login()
    with Registry(secure.host, Credentials(secure.user, secure.password), opts) as reg:
        reg.insecure = False
        reg.login()
        res = push(reg, ref, src, data, media)
        assert reg.base().startswith("https://")
    dst = DirSink(tmp_path / "dst")
    with Registry(secure.host, Credentials(secure.user, secure.password), opts) as reg:
        got = pull(reg, ref, dst)
    assert got.manifest_digest == res.digest


def test_multi_platform_index(plain: RunningRegistry, tmp_path: Path) -> None:
    src = DirSink(tmp_path / "src")
    host = host_platform()
    other = Platform(architecture="arm64" if host.architecture != "arm64" else "amd64",
                     os="linux", variant="v8" if host.architecture != "arm64" else "")
    path = "multi/img"
    descs = []
    with Registry(plain.host) as reg:
        for plat in (other, host):
            data, media = make_image(src, "multi", arch=plat.architecture)
            push(reg, parse(f"{plain.host}/{path}:tmp"), src, data, media)
            d = push_manifest(reg, path, of_bytes(data), data, media)
            descs.append(Descriptor(media, d, len(data), platform=plat))
        index = Index(mt.OCI_INDEX, tuple(descs)).to_json()
        push_manifest(reg, path, "v1", index, mt.OCI_INDEX)
    dst = DirSink(tmp_path / "dst")
    with Registry(plain.host) as reg:
        got = pull(reg, parse(f"{plain.host}/{path}:v1"), dst)
        assert got.repo_digest == of_bytes(index)
        assert got.manifest_digest == descs[1].digest
        cfg = json.loads(dst.read(got.manifest.config.digest))
        assert cfg["architecture"] == host.architecture
        got2 = pull(reg, parse(f"{plain.host}/{path}:v1"), dst, platform=other)
        assert got2.manifest_digest == descs[0].digest
        top = get_manifest(reg, path, "v1")
        assert top.media_type == mt.OCI_INDEX


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")
def test_skopeo_reads_what_pallet_pushed(plain: RunningRegistry, tmp_path: Path) -> None:
    src = DirSink(tmp_path / "src")
    data, media = make_image(src, "sk")
    with Registry(plain.host) as reg:
        res = push(reg, parse(f"{plain.host}/sk/img:v1"), src, data, media)
        cfg = push_raw(reg, "sk/img", b"{}")
        assert cfg.digest == of_bytes(b"{}")
    url = f"docker://{plain.host}/sk/img:v1"
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", url],
                         capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert info["Digest"] == res.digest
    assert info["Architecture"] == "amd64"
    dest = tmp_path / "skopeo-dir"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", url, f"dir:{dest}"],
                   capture_output=True, check=True)
    man = Manifest.from_json((dest / "manifest.json").read_bytes())
    for d in man.layers:
        assert (dest / d.digest.split(":")[1]).read_bytes() == src.read(d.digest)


def test_bearer_token_auth(tmp_path: Path) -> None:
    """Docker Hub's flow against the reference registry: tokens from a realm, per scope."""
    with regsupport.registry(token=True) as r:
        src = DirSink(tmp_path / "src")
        data, media = make_image(src, "tok")
        ref = parse(f"{r.host}/tok/img:v1")
        with Registry(r.host) as reg:  # anonymous: the realm grants pull only
            with pytest.raises(RegistryUnauthorized) as ei:
                push(reg, ref, src, data, media)
            assert "authentication required" in str(ei.value)
        with Registry(r.host, Credentials(r.user, "wrong")) as reg:
            with pytest.raises(RegistryUnauthorized) as ei:
                reg.login()
            assert "incorrect username or password" in str(ei.value)
        with Registry(r.host, Credentials(r.user, r.password)) as reg:
            reg.login()
            assert push(reg, ref, src, data, media).digest == of_bytes(data)
            other = push(reg, parse(f"{r.host}/tok/other:v1"), src, data, media,
                         mount_candidates=lambda d: ("tok/img",))
            assert len(other.mounted) == 3
        with Registry(r.host) as reg:  # anonymous pull is allowed
            got = pull(reg, ref, DirSink(tmp_path / "dst"))
            assert got.manifest_digest == of_bytes(data)


def test_single_platform_image_must_match_platform(plain: RunningRegistry, tmp_path: Path) -> None:
    src = DirSink(tmp_path / "src")
    data, media = make_image(src, "plat", arch="amd64")
    ref = parse(f"{plain.host}/plat/img:v1")
    with Registry(plain.host) as reg:
        push(reg, ref, src, data, media)
        dst = DirSink(tmp_path / "dst")
        with pytest.raises(Exception, match="does not match the specified platform: wanted "
                                            "linux/arm64/v8, actual: linux/amd64"):
            pull(reg, ref, dst, platform=Platform("arm64", "linux", "v8"))
        man = Manifest.from_json(data)
        assert not any(dst.has(d.digest) for d in man.layers)  # stopped before the layers
        got = pull(reg, ref, dst, platform=Platform("amd64", "linux"))
        assert got.manifest_digest == of_bytes(data)
