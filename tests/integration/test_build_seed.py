"""The seed's Dockerfile, unchanged, on a python base image made by ``pallet image bootstrap``.

Needs mmdebstrap and a reachable Debian mirror and PyPI (skipped otherwise).  The
bootstrapped Debian image gets what the official python image has and Debian lacks:
a ``python`` command and pip allowed to install system-wide (no EXTERNALLY-MANAGED
marker); the host's CA bundle is copied in so that TLS through an intercepting proxy
works as on the host.
"""

from __future__ import annotations

import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.cli import Pallet

pytestmark = pytest.mark.slow

SEED_DOCKERFILE = """FROM python:3.9-slim
WORKDIR /app
COPY . /app
RUN pip install -r requirements.txt
EXPOSE 8000
CMD ["python", "app.py"]
"""

APP = """from flask import Flask
app = Flask(__name__)

@app.route("/")
def hello():
    return "Hello from pallet\\n"

if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
"""


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="needs mmdebstrap for the base image")
def test_seed_dockerfile_builds_and_serves(pallet: Pallet, tmp_path: Path) -> None:
    if not (_reachable("deb.debian.org") and _reachable("pypi.org")):
        pytest.skip("needs a Debian mirror and PyPI")
    pallet.ok("image", "bootstrap", "--suite", "bookworm", "--include", "python3,python3-pip",
              "python:bootstrap", timeout=900)
    base = tmp_path / "base"
    base.mkdir()
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    copy_ca = ""
    if ca.is_file():
        shutil.copy(ca, base / "ca.crt")
        copy_ca = "COPY ca.crt /etc/ssl/certs/ca-certificates.crt\n"
    (base / "Dockerfile").write_text(
        "FROM python:bootstrap\nRUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED && "
        "ln -sf python3 /usr/bin/python\n" + copy_ca)
    pallet.ok("build", "-q", "-t", "python:3.9-slim", str(base))
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(SEED_DOCKERFILE)
    (ctx / "requirements.txt").write_text("flask\n")
    (ctx / "app.py").write_text(APP)
    out = pallet.ok("build", "-t", "my-web-app", str(ctx), timeout=600)
    assert "Successfully tagged my-web-app:latest" in out
    assert "Successfully installed" in out
    again = pallet.ok("build", "-t", "my-web-app", str(ctx))
    assert again.count("Using cache") == 5
    assert pallet.ok("image", "inspect", "--format", "{{json .Config.Cmd}} {{json .Config.ExposedPorts}}",
                     "my-web-app").strip() == '["python","app.py"] {"8000/tcp":{}}'
    pallet.ok("run", "-d", "--name", "pbd-seed-web", "-p", "127.0.0.1:18731:8000", "my-web-app")
    try:
        body = ""
        for _ in range(50):
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        "http://127.0.0.1:18731/", timeout=2) as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert body == "Hello from pallet\n"
    finally:
        pallet("rm", "-f", "pbd-seed-web")
