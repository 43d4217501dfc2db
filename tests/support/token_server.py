"""A Docker-Hub-style token server on loopback for the reference registry's token auth.

It answers ``GET /token?service=..&scope=..`` with a JWT signed RS256 (by
``openssl``) whose ``x5c`` header carries the signing certificate, which the
registry trusts through ``rootcertbundle``.  Anonymous clients get ``pull``;
clients with the right Basic credentials get what they ask for; wrong
credentials get 401.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

SERVICE = "pallet-test-registry"
ISSUER = "pallet-test-issuer"


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@dataclass
class TokenServer:
    url: str  # realm
    cert: Path
    requests: list[dict[str, Any]] = field(default_factory=list)


def make_signing_cert(d: Path) -> tuple[Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    key, cert = d / "token.key", d / "token.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=pallet token issuer"],
                   check=True, capture_output=True)
    return key, cert


def _sign(key: Path, data: bytes) -> bytes:
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=data,
                          check=True, capture_output=True).stdout


@contextlib.contextmanager
def token_server(d: Path, port: int, user: str, password: str) -> Iterator[TokenServer]:
    key, cert = make_signing_cert(d)
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"],
                         check=True, capture_output=True).stdout
    header = _b64(json.dumps({"typ": "JWT", "alg": "RS256",
                              "x5c": [base64.b64encode(der).decode()]}).encode())
    good = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    srv_info = TokenServer(f"http://127.0.0.1:{port}/token", cert)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, status: int, obj: dict[str, Any]) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            q = parse_qs(urlparse(self.path).query)
            auth = self.headers.get("Authorization", "")
            srv_info.requests.append({"scope": q.get("scope", []), "auth": bool(auth)})
            if auth and auth != good:
                self._send(401, {"errors": [{"code": "UNAUTHORIZED",
                                             "message": "incorrect username or password"}]})
                return
            access = []
            for scope in q.get("scope", []):
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                want = [a for a in actions.split(",") if a]
                allowed = want if auth else [a for a in want if a == "pull"]
                access.append({"type": kind, "name": name, "actions": allowed})
            now = int(time.time())
            claims = {"iss": ISSUER, "sub": user if auth else "", "aud": SERVICE,
                      "exp": now + 300, "nbf": now - 10, "iat": now,
                      "jti": os.urandom(8).hex(), "access": access}
            signing_input = f"{header}.{_b64(json.dumps(claims).encode())}".encode()
            token = signing_input.decode() + "." + _b64(_sign(key, signing_input))
            self._send(200, {"token": token, "access_token": token, "expires_in": 300})

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv_info
    finally:
        srv.shutdown()
        srv.server_close()
