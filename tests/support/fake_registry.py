"""A tiny fake registry on loopback that serves crafted answers (faults on purpose).

It serves one image, ``test/img:v1`` (an OCI manifest, a config, one layer), and
misbehaves as a test asks: error statuses (optionally only the first N times),
a layer whose bytes do not match its digest, a body cut short, a missing blob,
an answer that never comes, or a Bearer token realm.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.registry import free_port


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


@dataclass
class Faults:
    manifest_status: int = 0  # answer manifests with this status...
    blob_status: int = 0  # ...or blobs
    fail_times: int = -1  # only the first N times (-1: always)
    challenge: str = ""  # WWW-Authenticate sent with a 401
    layer: str = ""  # "mismatch", "truncate", "truncate_once", "missing", "extra"
    hang: str = ""  # "manifest" or "blob": never answer
    bearer: bool = False  # require a token from /token
    user: str = ""  # with bearer: the token realm wants these Basic credentials
    password: str = ""
    retry_after: str = ""
    upload: str = ""  # "drop_once": the first blob upload is cut and its session lost
    manifest_put_status: int = 0  # answer manifest uploads with this status (fail_times)


@dataclass
class FakeRegistry:
    host: str
    faults: Faults
    layer: bytes
    config: bytes
    manifest: bytes
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    count: dict[str, int] = field(default_factory=dict)
    pushed: dict[str, bytes] = field(default_factory=dict)  # blobs and manifests received
    broken: set[str] = field(default_factory=set)  # upload sessions the registry lost

    @property
    def manifest_digest(self) -> str:
        return _digest(self.manifest)

    @property
    def layer_digest(self) -> str:
        return _digest(self.layer)


def _image() -> tuple[bytes, bytes, bytes]:
    layer = os.urandom(300_000)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
                         "config": {"Cmd": ["sh"]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer), "size": len(layer)}],
    }).encode()
    return layer, config, manifest


def _handler(reg: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    f = reg.faults
    token = "t0ken-" + os.urandom(4).hex()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  length: int | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _err(self, status: int, code: str, msg: str, extra: dict[str, str] | None = None
                 ) -> None:
            body = json.dumps({"errors": [{"code": code, "message": msg}]}).encode()
            self._send(status, body, {"Content-Type": "application/json", **(extra or {})})

        def _fault(self, key: str, status: int) -> bool:
            if not status:
                return False
            n = reg.count.get(key, 0)
            reg.count[key] = n + 1
            if f.fail_times >= 0 and n >= f.fail_times:
                return False
            extra = {}
            if status == 401 and f.challenge:
                extra["WWW-Authenticate"] = f.challenge
            if f.retry_after:
                extra["Retry-After"] = f.retry_after
            code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "MANIFEST_UNKNOWN",
                    429: "TOOMANYREQUESTS"}.get(status, "")
            msg = {401: "authentication required", 403: "requested access to the resource "
                   "is denied", 404: "manifest unknown", 429: "too many requests"}.get(status, "")
            if code:
                self._err(status, code, msg, extra)
            else:
                self._send(status, b"internal trouble", extra)
            return True

        def _hang(self) -> None:
            reg.stop.wait(60)

        def do_HEAD(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.startswith("/v2/push/"):
                reg.requests.append((self.command, self.path, dict(self.headers.items())))
                d = path.rsplit("/", 1)[1]
                if d in reg.pushed:
                    self._send(200, b"", {"Content-Length": str(len(reg.pushed[d]))})
                else:
                    self._send(404)
                return
            self.do_GET()

        def do_POST(self) -> None:
            reg.requests.append((self.command, self.path, dict(self.headers.items())))
            if self.path.split("?", 1)[0] == "/token":  # OAuth2 refresh-token grant
                from urllib.parse import parse_qs

                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if form.get("grant_type") != ["refresh_token"] or \
                        form.get("refresh_token") != [f.password]:
                    self._err(401, "UNAUTHORIZED", "invalid refresh token")
                    return
                reg.count["oauth"] = reg.count.get("oauth", 0) + 1
                self._send(200, json.dumps({"access_token": token}).encode(),
                           {"Content-Type": "application/json"})
                return
            n = reg.count.get("session", 0)
            reg.count["session"] = n + 1
            self._send(202, b"", {"Location": f"/upload/{n}"})

        def do_PUT(self) -> None:
            reg.requests.append((self.command, self.path, dict(self.headers.items())))
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            if path.startswith("/upload/"):
                session = path.rsplit("/", 1)[1]
                if session in reg.broken:
                    self.rfile.read(length)
                    self._err(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
                    return
                if f.upload == "drop_once" and not reg.count.get("dropped"):
                    reg.count["dropped"] = 1
                    reg.broken.add(session)
                    self.rfile.read(length // 2)
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                body = self.rfile.read(length)
                want = query.split("digest=", 1)[1].replace("%3A", ":")
                if _digest(body) != want:
                    self._err(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
                    return
                reg.pushed[want] = body
                self._send(201, b"", {"Docker-Content-Digest": want})
                return
            if path.startswith("/v2/push/img/manifests/"):
                body = self.rfile.read(length)
                if self._fault("manifest_put", f.manifest_put_status):
                    return
                d = _digest(body)
                reg.pushed[d] = body
                self._send(201, b"", {"Docker-Content-Digest": d})
                return
            self._err(404, "NAME_UNKNOWN", "repository name not known to registry")

        def do_GET(self) -> None:
            reg.requests.append((self.command, self.path, dict(self.headers.items())))
            path = self.path.split("?", 1)[0]
            if path == "/token":
                auth = self.headers.get("Authorization", "")
                if f.user:
                    want = "Basic " + base64.b64encode(f"{f.user}:{f.password}".encode()).decode()
                    if auth != want:
                        self._err(401, "UNAUTHORIZED", "authentication required")
                        return
                self._send(200, json.dumps({"token": token}).encode(),
                           {"Content-Type": "application/json"})
                return
            if f.bearer and self.headers.get("Authorization") != f"Bearer {token}":
                host = self.headers.get("Host")
                self._err(401, "UNAUTHORIZED", "authentication required", {
                    "WWW-Authenticate": f'Bearer realm="http://{host}/token",service="fake",'
                                        'scope="repository:test/img:pull"'})
                return
            if path == "/v2/":
                self._send(200, b"{}", {"Content-Type": "application/json"})
                return
            if path.startswith("/v2/test/img/manifests/"):
                if f.hang == "manifest":
                    self._hang()
                    return
                if self._fault("manifest", f.manifest_status):
                    return
                ref = path.rsplit("/", 1)[1]
                if ref not in ("v1", reg.manifest_digest):
                    self._err(404, "MANIFEST_UNKNOWN", "manifest unknown")
                    return
                self._send(200, reg.manifest, {
                    "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                    "Docker-Content-Digest": reg.manifest_digest})
                return
            if path.startswith("/v2/test/img/blobs/"):
                d = path.rsplit("/", 1)[1]
                if f.hang == "blob":
                    self._hang()
                    return
                if self._fault("blob", f.blob_status):
                    return
                if d == _digest(reg.config):
                    self._send(200, reg.config)
                    return
                if d != reg.layer_digest or f.layer == "missing":
                    self._err(404, "BLOB_UNKNOWN", "blob unknown to registry")
                    return
                body = reg.layer
                if f.layer == "mismatch":
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                rng = self.headers.get("Range", "")
                start = int(rng[len("bytes="):].split("-")[0]) if rng.startswith("bytes=") else 0
                n = reg.count.get("layer", 0)
                reg.count["layer"] = n + 1
                if f.layer == "truncate" or (f.layer == "truncate_once" and n == 0):
                    # announce the whole body, send half, drop the connection
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                if f.layer == "extra":
                    body = body + b"junk"
                if start:
                    self._send(206, body[start:], {
                        "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
                else:
                    self._send(200, body)
                return
            self._err(404, "NAME_UNKNOWN", "repository name not known to registry")

    return H


@contextlib.contextmanager
def fake_registry(faults: Faults | None = None) -> Iterator[FakeRegistry]:
    layer, config, manifest = _image()
    port = free_port()
    reg = FakeRegistry(f"127.0.0.1:{port}", faults or Faults(), layer, config, manifest)
    srv = ThreadingHTTPServer(("127.0.0.1", port), _handler(reg))
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield reg
    finally:
        reg.stop.set()
        srv.shutdown()
        srv.server_close()
