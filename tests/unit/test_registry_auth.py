"""Credentials files (Docker's config.json format), helpers, challenges, endpoints, errors."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from pallet.oci.manifest import Descriptor, Index, Platform
from pallet.registry import errors as rerr
from pallet.registry.auth import (
    DOCKER_HUB_AUTH_KEY,
    AuthStore,
    Credentials,
    default_auth_file,
    normalize_server,
    parse_challenge,
)
from pallet.registry.platform import host_platform, select
from pallet.registry.transport import Options, endpoint_host, is_insecure, is_loopback


def test_store_and_read_back(tmp_path: Path) -> None:
    store = AuthStore(tmp_path / "auth.json", tmp_path / "none.json")
    store.store("127.0.0.1:5000", Credentials("bob", "pw:with:colons"))
    store.store("docker.io", Credentials("alice", "x"))
    raw = json.loads((tmp_path / "auth.json").read_text())
    assert raw["auths"]["127.0.0.1:5000"]["auth"] == base64.b64encode(
        b"bob:pw:with:colons").decode()
    assert DOCKER_HUB_AUTH_KEY in raw["auths"]
    assert stat.S_IMODE(os.stat(tmp_path / "auth.json").st_mode) == 0o600
    assert store.get("127.0.0.1:5000") == Credentials("bob", "pw:with:colons")
    assert store.get("docker.io").username == "alice"
    assert store.get("other.example").empty
    assert store.remove("127.0.0.1:5000")
    assert not store.remove("127.0.0.1:5000")
    assert store.get("127.0.0.1:5000").empty


def test_docker_config_is_a_fallback(tmp_path: Path) -> None:
    docker = tmp_path / "docker.json"
    docker.write_text(json.dumps({"auths": {"https://reg.example:443/v1/": {
        "auth": base64.b64encode(b"u:p").decode()}}}))
    store = AuthStore(tmp_path / "pallet.json", docker)
    assert store.get("reg.example:443") == Credentials("u", "p")
    store.store("reg.example:443", Credentials("mine", "q"))
    assert store.get("reg.example:443") == Credentials("mine", "q")


def test_credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread server\n[ "$1" = get ] && '
                      'printf \'{"ServerURL":"%s","Username":"h","Secret":"s"}\' "$server"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
    docker = tmp_path / "docker.json"
    docker.write_text(json.dumps({"credHelpers": {"reg.example": "fake"}}))
    store = AuthStore(tmp_path / "pallet.json", docker)
    assert store.get("reg.example") == Credentials("h", "s")
    assert store.get("other.example").empty
    docker.write_text(json.dumps({"credsStore": "fake"}))
    assert store.get("other.example") == Credentials("h", "s")


def test_default_auth_file() -> None:
    assert default_auth_file({"PALLET_AUTH_FILE": "/x/a.json"}) == Path("/x/a.json")
    assert default_auth_file({"XDG_CONFIG_HOME": "/c", "HOME": "/h"}) == Path(
        "/c/pallet/config.json")
    assert default_auth_file({"HOME": "/h"}) == Path("/h/.config/pallet/config.json")


@pytest.mark.parametrize(("server", "want"), [
    ("https://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
    ("index.docker.io", "docker.io"),
    ("https://index.docker.io/v1/", "docker.io"),
    ("quay.io", "quay.io"),
])
def test_normalize_server(server: str, want: str) -> None:
    assert normalize_server(server) == want


def test_parse_challenge() -> None:
    ch = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'
                         ',scope="repository:library/busybox:pull"')
    assert ch is not None and ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                         "scope": "repository:library/busybox:pull"}
    basic = parse_challenge('Basic realm="pallet-test"')
    assert basic is not None and basic.scheme == "basic"
    assert parse_challenge("") is None


def test_endpoints_and_insecure() -> None:
    assert endpoint_host("docker.io") == "registry-1.docker.io"
    assert endpoint_host("quay.io") == "quay.io"
    for h in ("localhost:5000", "127.0.0.1:52000", "127.1.2.3", "[::1]:5000", "localhost"):
        assert is_loopback(h), h
    assert not is_loopback("10.0.0.1:5000")
    opts = Options(insecure_registries=("reg.lan:5000", "10.0.0.0/8"))
    assert is_insecure("reg.lan:5000", opts)
    assert is_insecure("10.1.2.3:443", opts)
    assert not is_insecure("quay.io", opts)
    assert is_insecure("quay.io", Options(tls_verify=False))
    env = Options.from_env({"PALLET_INSECURE_REGISTRIES": "a:1, b", "PALLET_REGISTRY_TIMEOUT": "3"})
    assert env.insecure_registries == ("a:1", "b") and env.timeout == 3.0


def test_error_wording() -> None:
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
    e = rerr.from_response(404, body.encode(), "reg/x:1")
    assert isinstance(e, rerr.RegistryNotFound)
    assert str(e) == "manifest for reg/x:1 not found: manifest unknown"
    e = rerr.from_response(401, b"")
    assert str(e) == "unauthorized: authentication required" and e.exit_code == 125
    e = rerr.from_response(403, b"")
    assert str(e).startswith("denied:")
    e = rerr.from_response(503, b"<html>\nbusy</html>")
    assert isinstance(e, rerr.RegistryUnavailable) and "\n" not in str(e)
    e = rerr.from_response(429, b"")
    assert "toomanyrequests" in str(e)


def _desc(n: int, plat: Platform) -> Descriptor:
    return Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + str(n) * 64, 1,
                      platform=plat)


def test_platform_selection() -> None:
    assert host_platform("x86_64") == Platform("amd64", "linux")
    assert host_platform("aarch64") == Platform("arm64", "linux", "v8")
    idx = Index("application/vnd.oci.image.index.v1+json", (
        _desc(1, Platform("arm", "linux", "v6")),
        _desc(2, Platform("arm", "linux", "v7")),
        _desc(3, Platform("amd64", "linux")),
        _desc(4, Platform("arm64", "linux")),
        _desc(5, Platform("unknown", "unknown")),
    ))
    assert select(idx, Platform("amd64", "linux")).digest.startswith("sha256:3")
    assert select(idx, Platform("arm", "linux", "v7")).digest.startswith("sha256:2")
    assert select(idx, Platform("arm64", "linux", "v8")).digest.startswith("sha256:4")
    with pytest.raises(Exception, match="no matching manifest for linux/s390x"):
        select(idx, Platform("s390x", "linux"))


def test_login_through_a_credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``credsStore`` in pallet's file, secrets go to the helper, not the file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    vault = tmp_path / "vault.json"
    helper = bindir / "docker-credential-vault"
    helper.write_text(f"""#!/bin/sh
case "$1" in
  store) cat > {vault} ;;
  get) read server; [ -f {vault} ] && cat {vault} || {{ echo "credentials not found"; exit 1; }} ;;
  erase) rm -f {vault} ;;
esac
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"credsStore": "vault"}))
    store = AuthStore(auth, tmp_path / "none.json")
    store.store("reg.example:5000", Credentials("u", "secret-pw"))
    saved = json.loads(auth.read_text())
    assert saved["auths"] == {"reg.example:5000": {}}
    assert "secret-pw" not in auth.read_text()
    assert json.loads(vault.read_text())["Secret"] == "secret-pw"
    assert store.get("reg.example:5000") == Credentials("u", "secret-pw")
    assert store.remove("reg.example:5000")
    assert not vault.exists()
