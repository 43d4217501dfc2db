"""``pallet pull/push/login/logout/save/load`` as a user runs them, against the
reference registry (with and without TLS and htpasswd auth), a crafted fake
registry, skopeo and Docker."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.digest import of_bytes
from pallet.oci.manifest import Descriptor, Index, Manifest, Platform
from pallet.oci.reference import parse
from pallet.registry.platform import host_platform
from pallet.registry.push import push, push_manifest
from pallet.registry.transport import Registry
from pallet.store import archive
from tests.compat.test_archive_docker_roundtrip import _image as busybox_item
from tests.compat.test_registry_reference import make_image
from tests.support import registry as regsupport
from tests.support.cli import Pallet
from tests.support.fake_registry import Faults, fake_registry
from tests.support.images import busybox_available
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


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Credentials in the test's own file; Docker's file out of the way; fast retries."""
    return {"PALLET_AUTH_FILE": str(tmp_path / "auth.json"), "DOCKER_CONFIG": str(tmp_path / "d"),
            "PALLET_REGISTRY_TIMEOUT": "2", "PALLET_REGISTRY_RETRIES": "2",
            "PALLET_REGISTRY_BACKOFF": "0.01"}


def _seed(host: str, repo: str, tmp: Path) -> str:
    """Put a small two-layer image in the registry with the client API; returns its ref."""
    src = DirSink(tmp / f"seed-{repo.replace('/', '-')}")
    data, media = make_image(src, repo)
    with Registry(host) as reg:
        push(reg, parse(f"{host}/{repo}:v1"), src, data, media)
    return f"{host}/{repo}:v1"


def _store_state(root: Path) -> tuple[list[Any], list[str]]:
    index = root / "store" / "index.json"
    entries = json.loads(index.read_text())["manifests"] if index.exists() else []
    ingest = root / "store" / "ingest"
    return entries, sorted(p.name for p in ingest.iterdir()) if ingest.exists() else []


def test_pull_push_mount(plain: RunningRegistry, pallet: Pallet, tmp_path: Path,
                         env: dict[str, str]) -> None:
    ref = _seed(plain.host, "cli/pp", tmp_path)
    r = pallet("pull", ref, env=env)
    assert r.rc == 0, r
    assert "Status: Downloaded newer image for" in r.out and r.out.splitlines()[-1] == ref, r
    r = pallet("pull", ref, env=env)
    assert "Already exists" in r.out and "Image is up to date" in r.out, r
    other = f"{plain.host}/cli/pp-copy:v2"
    from pallet.config import Config
    from pallet.engine.distribution import stores

    _, images = stores(Config(root=pallet.root))
    images.tag(ref, parse(other))
    r = pallet("push", other, env=env)
    assert r.rc == 0, r
    assert "Mounted from cli/pp" in r.out, r
    assert r.out.splitlines()[-1].startswith("v2: digest: sha256:")


def test_login_push_pull_with_tls_and_auth(secure: RunningRegistry, pallet: Pallet,
                                           tmp_path: Path, env: dict[str, str]) -> None:
    assert secure.tls is not None
    certs = tmp_path / "certs.d" / secure.host
    certs.mkdir(parents=True)
    shutil.copy(secure.tls.ca, certs / "ca.crt")
    env = {**env, "PALLET_CERTS_D": str(tmp_path / "certs.d")}
    src = DirSink(tmp_path / "src")
    data, media = make_image(src, "auth")
    item = archive.SaveItem(Manifest.from_json(data), data, media, (f"{secure.host}/a/img:v1",))
    with open(tmp_path / "img.tar", "wb") as f:
        archive.write_oci_archive(f, [item], src)
    assert pallet("load", "-i", str(tmp_path / "img.tar")).rc == 0
    r = pallet("push", f"{secure.host}/a/img:v1", env=env)
    assert r.rc == 125 and r.err.strip() == "Error: unauthorized: authentication required", r
    r = pallet("login", "-u", secure.user, "--password-stdin", secure.host, input="nope\n",
               env=env)
    assert r.rc == 125 and "401 Unauthorized" in r.err and r.err.count("\n") == 1, r
    assert not (tmp_path / "auth.json").exists()
    r = pallet("login", "-u", secure.user, "--password-stdin", secure.host,
               input=secure.password + "\n", env=env)
    assert r.rc == 0 and r.out.strip() == "Login Succeeded", r
    saved = json.loads((tmp_path / "auth.json").read_text())
    assert secure.host in saved["auths"]
    r = pallet("push", f"{secure.host}/a/img:v1", env=env)
    assert r.rc == 0, r
    assert r.out.count(": Pushed") == 2
    r = pallet("pull", f"{secure.host}/a/img:v1", env=env)
    assert r.rc == 0, r
    r = pallet("logout", secure.host, env=env)
    assert r.out.strip() == f"Removing login credentials for {secure.host}"
    r = pallet("pull", f"{secure.host}/a/img:v1", env=env)
    assert r.rc == 125 and "unauthorized: authentication required" in r.err
    r = pallet("logout", secure.host, env=env)
    assert r.out.strip() == f"Not logged in to {secure.host}"


@pytest.mark.skipif(not busybox_available(), reason="needs busybox-static")
@pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")
def test_uncompressed_layers_pushed_as_gzip(plain: RunningRegistry, pallet: Pallet,
                                            tmp_path: Path, env: dict[str, str]) -> None:
    """A Docker-archive image (uncompressed layers) is pushed with gzip layers that
    skopeo reads back to the same DiffIDs; the second push reuses the gzip blobs."""
    sink = DirSink(tmp_path / "src")
    item = busybox_item(tmp_path, sink, compress=False)
    name = f"{plain.host}/gz/busybox:v1"
    item = archive.SaveItem(item.manifest, item.manifest_bytes, item.media_type, (name,))
    with open(tmp_path / "d.tar", "wb") as f:
        archive.write_docker_archive(f, [item], sink, tmp_path)
    assert pallet("load", "-i", str(tmp_path / "d.tar")).rc == 0
    r = pallet("push", name, env=env)
    assert r.rc == 0, r
    digest = r.out.splitlines()[-1].split("digest: ")[1].split()[0]
    comp = list((pallet.root / "distribution" / "compressed").iterdir())
    assert len(comp) == 2
    r2 = pallet("push", f"{plain.host}/gz/busybox:v2", env=env)
    assert r2.rc == 125  # no such local name yet
    from pallet.config import Config
    from pallet.engine.distribution import stores

    _, images = stores(Config(root=pallet.root))
    images.tag(name, parse(f"{plain.host}/gz/busybox:v2"))
    r2 = pallet("push", f"{plain.host}/gz/busybox:v2", env=env)
    assert r2.rc == 0 and r2.out.count("Layer already exists") == 2, r2
    assert r2.out.splitlines()[-1].split("digest: ")[1].split()[0] == digest
    dest = tmp_path / "sk"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{name}",
                    f"dir:{dest}"], check=True, capture_output=True)
    man = Manifest.from_json((dest / "manifest.json").read_bytes())
    assert all(d.media_type == mt.DOCKER_LAYER_GZIP for d in man.layers)
    cfg = json.loads((dest / man.config.digest.split(":")[1]).read_bytes())
    diff_ids = [of_bytes(gzip.decompress((dest / d.digest.split(":")[1]).read_bytes()))
                for d in man.layers]
    assert diff_ids == cfg["rootfs"]["diff_ids"]


def test_pull_multi_platform_index(plain: RunningRegistry, pallet: Pallet, tmp_path: Path,
                                   env: dict[str, str]) -> None:
    src = DirSink(tmp_path / "src")
    host = host_platform()
    other = Platform("arm64" if host.architecture != "arm64" else "amd64", "linux")
    descs = []
    with Registry(plain.host) as reg:
        for plat in (other, host):
            data, media = make_image(src, "mp-cli", arch=plat.architecture)
            push(reg, parse(f"{plain.host}/cli/multi:tmp"), src, data, media)
            push_manifest(reg, "cli/multi", of_bytes(data), data, media)
            descs.append(Descriptor(media, of_bytes(data), len(data), platform=plat))
        index = Index(mt.OCI_INDEX, tuple(descs)).to_json()
        push_manifest(reg, "cli/multi", "v1", index, mt.OCI_INDEX)
    ref = f"{plain.host}/cli/multi:v1"
    r = pallet("pull", ref, env=env)
    assert r.rc == 0 and f"Digest: {of_bytes(index)}" in r.out, r
    from pallet.config import Config
    from pallet.engine.distribution import stores

    _, images = stores(Config(root=pallet.root))
    img = images.get(ref)
    assert img.manifest_digest == descs[1].digest
    r = pallet("pull", "--platform", f"linux/{other.architecture}", ref, env=env)
    assert r.rc == 0, r
    assert images.get(ref).manifest_digest == descs[0].digest
    r = pallet("pull", "--platform", "linux/s390x", ref, env=env)
    assert r.rc == 125 and "no matching manifest for linux/s390x" in r.err


@pytest.mark.parametrize(("faults", "text"), [
    (Faults(layer="mismatch"), "digest mismatch"),
    (Faults(layer="truncate"), "unexpected EOF"),
    (Faults(layer="missing"), "blob unknown"),
    (Faults(manifest_status=401), "unauthorized: authentication required"),
    (Faults(manifest_status=403), "denied: requested access to the resource is denied"),
    (Faults(manifest_status=404), "manifest unknown"),
    (Faults(manifest_status=429), "toomanyrequests"),
    (Faults(manifest_status=500), "received unexpected HTTP status: 500"),
    (Faults(hang="blob"), "timeout"),
])
def test_bad_answers_leave_nothing(pallet: Pallet, env: dict[str, str], faults: Faults,
                                   text: str) -> None:
    with fake_registry(faults) as reg:
        r = pallet("pull", f"{reg.host}/test/img:v1", env={**env, "PALLET_REGISTRY_TIMEOUT": "1"})
    assert r.rc == 125, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], r
    assert "Traceback" not in r.err
    entries, ingest = _store_state(pallet.root)
    assert entries == [] and ingest == []


def test_retry_then_success(pallet: Pallet, env: dict[str, str]) -> None:
    with fake_registry(Faults(manifest_status=503, fail_times=2)) as reg:
        r = pallet("pull", "-q", f"{reg.host}/test/img:v1", env=env)
        assert r.rc == 0, r
        assert reg.count["manifest"] == 3
    with fake_registry(Faults(layer="truncate_once")) as reg:
        r = pallet("pull", "-q", f"{reg.host}/test/img:v1", env=env)
        assert r.rc == 0, r


def test_save_load_errors(pallet: Pallet, tmp_path: Path) -> None:
    r = pallet("save", "-o", str(tmp_path / "x.tar"), "nosuch:image")
    assert r.rc == 125 and "No such image: nosuch:image" in r.err
    assert not (tmp_path / "x.tar").exists()
    assert not list(tmp_path.glob(".x.tar.*"))
    (tmp_path / "junk.tar").write_bytes(b"junk" * 1000)
    r = pallet("load", "-i", str(tmp_path / "junk.tar"))
    assert r.rc == 125 and r.err.count("\n") == 1, r
    r = pallet("load", "-i", str(tmp_path / "missing.tar"))
    assert r.rc == 125 and "no such file" in r.err


@pytest.mark.skipif(not busybox_available(), reason="needs busybox-static")
def test_cli_save_load_through_docker(dockerd: Any, pallet: Pallet, tmp_path: Path) -> None:
    """pallet load (Docker's archive) -> pallet save -> docker load/run, and back."""
    sink = DirSink(tmp_path / "src")
    item = busybox_item(tmp_path, sink, compress=True)
    with open(tmp_path / "oci.tar", "wb") as f:
        archive.write_oci_archive(f, [item], sink)
    r = pallet("load", "-i", str(tmp_path / "oci.tar"))
    assert r.out.strip() == "Loaded image: pallet-saved:v1", r
    r = pallet("save", "-o", str(tmp_path / "out.tar"), "pallet-saved:v1")
    assert r.rc == 0, r
    with tarfile.open(tmp_path / "out.tar") as tf:
        assert "manifest.json" in tf.getnames() and "repositories" in tf.getnames()
    out = dockerd.docker("load", "-i", str(tmp_path / "out.tar")).stdout.decode()
    assert "Loaded image: pallet-saved:v1" in out
    try:
        run = dockerd.docker("run", "--rm", "--network", "none", "pallet-saved:v1")
        assert run.stdout == b"saved by pallet\n"
        dockerd.docker("tag", "pallet-saved:v1", "from-docker:v1")
        dockerd.docker("save", "-o", str(tmp_path / "back.tar"), "from-docker:v1")
    finally:
        dockerd.docker("rmi", "-f", "pallet-saved:v1", "from-docker:v1", check=False)
    # stdin works too, gzip-compressed
    gz = gzip.compress((tmp_path / "back.tar").read_bytes(), compresslevel=1)
    r = pallet("load", input=gz)
    assert r.rc == 0 and r.out.strip() == "Loaded image: from-docker:v1", r
    from pallet.config import Config
    from pallet.engine.distribution import stores

    _, images = stores(Config(root=pallet.root))
    img = images.get("from-docker:v1")
    assert img.id == item.manifest.config.digest
    assert img.config.config.cmd == ("sh", "-c", "cat /etc/pallet-marker")


def _runner(root: Path) -> Pallet:
    """pallet with runc as the low-level runtime where runc exists (the run path is not
    what these tests are about)."""
    return Pallet(root, runtime="runc" if shutil.which("runc") else None)


@pytest.mark.skipif(not busybox_available(), reason="needs busybox-static")
def test_docker_pulls_and_runs_what_pallet_pushed(dockerd: Any, plain: RunningRegistry,
                                                  pallet: Pallet, tmp_path: Path,
                                                  env: dict[str, str]) -> None:
    sink = DirSink(tmp_path / "src")
    item = busybox_item(tmp_path, sink, compress=False)
    name = f"{plain.host}/interop/from-pallet:v1"
    item = archive.SaveItem(item.manifest, item.manifest_bytes, item.media_type, (name,))
    with open(tmp_path / "d.tar", "wb") as f:
        archive.write_docker_archive(f, [item], sink, tmp_path)
    assert pallet("load", "-i", str(tmp_path / "d.tar")).rc == 0
    r = pallet("push", name, env=env)
    assert r.rc == 0, r
    try:
        dockerd.docker("pull", name)
        run = dockerd.docker("run", "--rm", "--network", "none", name)
        assert run.stdout == b"saved by pallet\n"
    finally:
        dockerd.docker("rmi", "-f", name, check=False)


@pytest.mark.skipif(not busybox_available(), reason="needs busybox-static")
def test_pallet_pulls_and_runs_what_docker_pushed(dockerd: Any, plain: RunningRegistry,
                                                  pallet_root: Path, tmp_path: Path,
                                                  env: dict[str, str]) -> None:
    from tests.support.images import make_busybox_tar

    base = make_busybox_tar(tmp_path / "busybox.tar")
    name = f"{plain.host}/interop/from-docker:v1"
    dockerd.docker("import", "--change", 'CMD ["sh"]', str(base), "interop-base:v1")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM interop-base:v1\nRUN echo pushed-by-docker > /etc/marker\nENV GREETING=hello\n"
        'CMD ["sh", "-c", "cat /etc/marker; echo $GREETING"]\n')
    try:
        dockerd.docker("build", "-q", "-t", name, str(ctx), timeout=300)
        dockerd.docker("push", name, timeout=300)
    finally:
        dockerd.docker("rmi", "-f", name, "interop-base:v1", check=False)
    p = _runner(pallet_root)
    r = p("pull", name, env=env)
    assert r.rc == 0, r
    r = p("run", "--rm", name, timeout=120)
    assert r.rc == 0 and r.out == "pushed-by-docker\nhello\n", r


def test_push_all_tags(plain: RunningRegistry, pallet: Pallet, tmp_path: Path,
                       env: dict[str, str]) -> None:
    ref = _seed(plain.host, "cli/alltags", tmp_path)
    assert pallet("pull", "-q", ref, env=env).rc == 0
    from pallet.config import Config
    from pallet.engine.distribution import stores

    _, images = stores(Config(root=pallet.root))
    repo = f"{plain.host}/cli/alltags-copy"
    for tag in ("a", "b"):
        images.tag(ref, parse(f"{repo}:{tag}"))
    r = pallet("push", "-a", "-q", repo, env=env)
    assert r.rc == 0 and len(r.out.split()) == 2, r
    from pallet.registry.pull import get_manifest

    with Registry(plain.host) as reg:
        assert get_manifest(reg, "cli/alltags-copy", "a").digest == r.out.split()[0]
        assert get_manifest(reg, "cli/alltags-copy", "b").digest == r.out.split()[1]
    r = pallet("push", "-a", f"{repo}:a", env=env)
    assert r.rc == 125 and "tag can't be used with --all-tags" in r.err


@pytest.mark.skipif(not busybox_available(), reason="needs busybox-static")
def test_imported_image_pushed_and_run_by_docker(dockerd: Any, plain: RunningRegistry,
                                                 pallet_root: Path, tmp_path: Path,
                                                 env: dict[str, str]) -> None:
    """``pallet import`` keeps the layer uncompressed; the push sends it as gzip."""
    from tests.support.images import make_busybox_tar

    p = _runner(pallet_root)
    name = f"{plain.host}/interop/imported:v1"
    p.ok("import", "--change", 'CMD ["sh", "-c", "echo imported $((1+1))"]',
         str(make_busybox_tar(tmp_path / "bb.tar")), name)
    r = p("push", name, env=env)
    assert r.rc == 0, r
    try:
        dockerd.docker("pull", name)
        assert dockerd.docker("run", "--rm", "--network", "none", name).stdout == b"imported 2\n"
    finally:
        dockerd.docker("rmi", "-f", name, check=False)


@pytest.mark.skipif(not busybox_available(), reason="needs busybox-static")
def test_save_repository_without_tag_saves_all_its_tags(pallet: Pallet, tmp_path: Path) -> None:
    from tests.support.images import make_busybox_tar

    tar = str(make_busybox_tar(tmp_path / "bb.tar"))
    iid = pallet.ok("import", tar, "repo-a:1").strip()
    pallet.ok("tag", "repo-a:1", "repo-a:2")
    pallet.ok("import", "--change", "ENV X=1", tar, "repo-b:1")
    out = tmp_path / "a.tar"
    assert pallet("save", "-o", str(out), "repo-a").rc == 0
    with tarfile.open(out) as tf:
        f = tf.extractfile("manifest.json")
        assert f is not None
        manifest = json.loads(f.read())
    assert [m["RepoTags"] for m in manifest] == [["repo-a:1", "repo-a:2"]]
    assert manifest[0]["Config"] == iid.split(":")[1] + ".json"


def test_pull_all_tags(plain: RunningRegistry, pallet: Pallet, tmp_path: Path,
                       env: dict[str, str]) -> None:
    from pallet.registry.pull import list_tags

    src = DirSink(tmp_path / "src")
    data, media = make_image(src, "tags")
    with Registry(plain.host) as reg:
        for tag in ("t1", "t2", "t3"):
            push(reg, parse(f"{plain.host}/cli/tags:{tag}"), src, data, media)
        assert sorted(list_tags(reg, "cli/tags", page=1)) == ["t1", "t2", "t3"]  # Link pages
    r = pallet("pull", "-a", "-q", f"{plain.host}/cli/tags", env=env)
    assert r.rc == 0 and r.out.split() == [f"{plain.host}/cli/tags:{t}" for t in
                                           ("t1", "t2", "t3")], r
    r = pallet("pull", "-a", f"{plain.host}/cli/tags:t1", env=env)
    assert r.rc == 125 and "tag can't be used with --all-tags" in r.err
