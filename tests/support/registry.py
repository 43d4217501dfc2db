"""A private reference registry (Debian's ``docker-registry``) on loopback.

Its storage, config, TLS material and htpasswd file live in a temporary
directory; it is stopped by its pid.  Used by the registry tests and bench.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

REGISTRY = "/usr/bin/docker-registry"
PORTS = range(52000, 52100)


def available() -> bool:
    return Path(REGISTRY).exists()


def free_port(ports: range = PORTS) -> int:
    for p in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    raise RuntimeError("no free port in 52000-52099")


class DirSink:
    """A minimal content store for client tests: verified ingest, then rename."""

    def __init__(self, d: Path) -> None:
        self.d = d
        d.mkdir(parents=True, exist_ok=True)

    def _p(self, digest: str) -> Path:
        return self.d / digest.split(":")[1]

    def has(self, digest: str) -> bool:
        return self._p(digest).exists()

    def open(self, digest: str) -> BinaryIO:
        return open(self._p(digest), "rb")

    def read(self, digest: str) -> bytes:
        return self._p(digest).read_bytes()

    def put(self, data: bytes) -> str:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        self._p(d).write_bytes(data)
        return d

    @contextlib.contextmanager
    def writer(self, digest: str | None = None, size: int | None = None) -> Iterator[Any]:
        from pallet.errors import DigestMismatch

        fd, name = tempfile.mkstemp(prefix="ingest-", dir=self.d)
        tmp = Path(name)
        h = hashlib.sha256()
        f = os.fdopen(fd, "wb")

        class W:
            digest = ""
            size = 0

            def write(self, b: bytes) -> None:
                h.update(b)
                self.size += len(b)
                f.write(b)

        w = W()
        try:
            yield w
            f.close()
            w.digest = "sha256:" + h.hexdigest()
            if digest is not None and w.digest != digest:
                raise DigestMismatch(digest, w.digest)
            os.rename(tmp, self._p(w.digest))
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class TLS:
    ca: Path
    cert: Path
    key: Path


def make_tls(d: Path, host: str = "127.0.0.1") -> TLS:
    """A self-signed CA and a server certificate for ``host`` (IP and DNS SANs), by openssl."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.crt", "server.key",
                                                  "server.csr", "server.crt"))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(ca_key), "-out", str(ca), "-subj", "/CN=pallet test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
        "-out", str(csr), "-subj", f"/CN={host}")
    ext = d / "san.ext"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return TLS(ca, cert, key)


@dataclass(frozen=True)
class RunningRegistry:
    host: str  # 127.0.0.1:PORT
    pid: int
    root: Path
    tls: TLS | None
    user: str
    password: str

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str = "/v2/") -> str:
        return f"{self.scheme}://{self.host}{path}"


@contextlib.contextmanager
def registry(tls: bool = False, auth: bool = False, base: Path | None = None,
             user: str = "tester", password: str = "s3cret-pw",
             token: bool = False) -> Iterator[RunningRegistry]:
    """``auth``: htpasswd (Basic); ``token``: Bearer tokens from a loopback token server."""
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="pallet-registry-", dir=str(base) if base else None))
        stack.callback(shutil.rmtree, tmp, True)
        port = free_port()
        tok = None
        if token:
            from tests.support.token_server import token_server

            tok = stack.enter_context(token_server(tmp / "token", free_port(range(port + 1, 52100)),
                                                   user, password))
        yield from _serve(tmp, port, tls, auth, user, password, tok)


def _serve(tmp: Path, port: int, tls: bool, auth: bool, user: str, password: str,
           tok: Any) -> Iterator[RunningRegistry]:
    host = f"127.0.0.1:{port}"
    lines = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {tmp / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {host}",
        "  secret: pallet-test-secret",
    ]
    t = make_tls(tmp / "tls") if tls else None
    if t:
        lines += ["  tls:", f"    certificate: {t.cert}", f"    key: {t.key}"]
    if auth:
        ht = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                            capture_output=True, text=True).stdout
        (tmp / "htpasswd").write_text(ht)
        lines += ["auth:", "  htpasswd:", "    realm: pallet-test", f"    path: {tmp / 'htpasswd'}"]
    elif tok is not None:
        from tests.support.token_server import ISSUER, SERVICE

        lines += ["auth:", "  token:", f"    realm: {tok.url}", f"    service: {SERVICE}",
                  f"    issuer: {ISSUER}", f"    rootcertbundle: {tok.cert}"]
    cfg = tmp / "config.yml"
    cfg.write_text("\n".join(lines) + "\n")
    log = open(tmp / "registry.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([REGISTRY, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"registry exited: {(tmp / 'registry.log').read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("registry did not come up")
            time.sleep(0.05)
        yield RunningRegistry(host, proc.pid, tmp, t, user if auth or tok else "",
                              password if auth or tok else "")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
