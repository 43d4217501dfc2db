"""Registry credentials, in Docker's ``config.json`` format, and auth challenges.

pallet keeps its own credentials file, ``$PALLET_AUTH_FILE`` or
``$XDG_CONFIG_HOME/pallet/config.json`` (``~/.config/pallet/config.json``), in
the format of Docker's ``~/.docker/config.json``: ``{"auths": {"server":
{"auth": base64("user:password")}}}``.  Lookups fall back to Docker's own file
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``) and to the
credential helpers it names (``credsStore``, ``credHelpers``: a
``docker-credential-<name>`` program speaking JSON on stdin/stdout).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pallet.errors import InvalidArgument, InvalidData
from pallet.oci.reference import DEFAULT_DOMAIN

# Docker files Docker Hub's credentials under its legacy v1 index URL.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token (username "<token>" in helpers)

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


ANONYMOUS = Credentials()


def auth_key(domain: str) -> str:
    """The key a registry's entry has in ``auths``."""
    return DOCKER_HUB_AUTH_KEY if domain in (DEFAULT_DOMAIN, "index.docker.io") else domain


def normalize_server(server: str) -> str:
    """``https://host:port/v2/`` -> ``host:port`` (Docker Hub's URL stays its key)."""
    s = server.strip()
    if not s:
        raise InvalidArgument("Server address cannot be empty")
    s = re.sub(r"^https?://", "", s).rstrip("/")
    s = s.split("/", 1)[0]
    if s in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return DEFAULT_DOMAIN
    return s


def default_auth_file(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    if env.get("PALLET_AUTH_FILE"):
        return Path(env["PALLET_AUTH_FILE"])
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or "~").expanduser() / ".config")
    return Path(base) / "pallet" / "config.json"


def docker_config_file(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return Path(env.get("HOME") or "~").expanduser() / ".docker" / "config.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    if not data.strip():
        return {}
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise InvalidData(f"{path}: invalid JSON: {e}") from None
    return obj if isinstance(obj, dict) else {}


def _decode_entry(entry: dict[str, Any]) -> Credentials:
    user = str(entry.get("username") or "")
    pw = str(entry.get("password") or "")
    if entry.get("auth"):
        try:
            raw = base64.b64decode(str(entry["auth"])).decode()
        except (ValueError, UnicodeDecodeError):
            raw = ""
        if ":" in raw:
            user, pw = raw.split(":", 1)
    return Credentials(user, pw, str(entry.get("identitytoken") or ""))


def _match_entry(auths: dict[str, Any], domain: str) -> dict[str, Any] | None:
    key = auth_key(domain)
    if isinstance(auths.get(key), dict):
        return auths[key]
    for k, v in auths.items():
        if isinstance(v, dict) and normalize_server(k) == domain:
            return v
    return None


def helper_get(helper: str, server: str, timeout: float = 30) -> Credentials:
    """Ask ``docker-credential-<helper>`` for a server's credentials."""
    prog = shutil.which(f"docker-credential-{helper}")
    if prog is None:
        return ANONYMOUS
    try:
        p = subprocess.run(
            [prog, "get"], input=server.encode(), capture_output=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return ANONYMOUS
    if p.returncode != 0:
        return ANONYMOUS
    try:
        obj = json.loads(p.stdout)
    except ValueError:
        return ANONYMOUS
    user, secret = str(obj.get("Username") or ""), str(obj.get("Secret") or "")
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(user, secret)


def helper_run(helper: str, action: str, data: str, timeout: float = 30) -> None:
    """``docker-credential-<helper> store|erase`` with ``data`` on stdin."""
    from pallet.errors import Unavailable

    prog = shutil.which(f"docker-credential-{helper}")
    if prog is None:
        raise Unavailable(f"docker-credential-{helper}: executable file not found in $PATH")
    try:
        p = subprocess.run([prog, action], input=data.encode(), capture_output=True,
                           timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"docker-credential-{helper} {action}: {e}") from None
    if p.returncode != 0:
        out = (p.stdout or p.stderr).decode(errors="replace").strip().splitlines()
        raise Unavailable(f"docker-credential-{helper} {action}: "
                          f"{out[0] if out else f'exit status {p.returncode}'}")


class AuthStore:
    """Reads and writes credentials; pallet's file first, then Docker's."""

    def __init__(self, path: Path | None = None, docker_path: Path | None = None) -> None:
        self.path = path or default_auth_file()
        self.docker_path = docker_path if docker_path is not None else docker_config_file()

    def get(self, domain: str) -> Credentials:
        for path in (self.path, self.docker_path):
            cfg = _read_json(path)
            helper = (cfg.get("credHelpers") or {}).get(domain) or (
                cfg.get("credHelpers") or {}
            ).get(auth_key(domain))
            if helper:
                creds = helper_get(str(helper), auth_key(domain))
                if not creds.empty:
                    return creds
            entry = _match_entry(cfg.get("auths") or {}, domain)
            if entry is not None:
                creds = _decode_entry(entry)
                if not creds.empty:
                    return creds
            if cfg.get("credsStore"):
                creds = helper_get(str(cfg["credsStore"]), auth_key(domain))
                if not creds.empty:
                    return creds
        return ANONYMOUS

    def _helper_for(self, cfg: dict[str, Any], domain: str) -> str:
        helpers = cfg.get("credHelpers") or {}
        return str(helpers.get(domain) or helpers.get(auth_key(domain)) or cfg.get("credsStore")
                   or "")

    def store(self, domain: str, creds: Credentials) -> None:
        """Save credentials: through the credential helper pallet's file names (an empty
        ``auths`` entry marks the server, as Docker does), else base64 in the file."""
        cfg = _read_json(self.path)
        auths = cfg.setdefault("auths", {})
        helper = self._helper_for(cfg, domain)
        if helper:
            user = "<token>" if creds.identity_token else creds.username
            secret = creds.identity_token or creds.password
            helper_run(helper, "store", json.dumps(
                {"ServerURL": auth_key(domain), "Username": user, "Secret": secret}))
            auths[auth_key(domain)] = {}
            self._write(cfg)
            return
        entry: dict[str, Any] = {
            "auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        }
        if creds.identity_token:
            entry = {"identitytoken": creds.identity_token}
        auths[auth_key(domain)] = entry
        self._write(cfg)

    def remove(self, domain: str) -> bool:
        """Forget a server; False when pallet's file had nothing for it."""
        cfg = _read_json(self.path)
        auths = cfg.get("auths") or {}
        keys = [k for k in auths if k == auth_key(domain) or normalize_server(k) == domain]
        helper = self._helper_for(cfg, domain)
        if helper and keys:
            helper_run(helper, "erase", auth_key(domain))
        for k in keys:
            del auths[k]
        if keys:
            self._write(cfg)
        return bool(keys)

    def _write(self, cfg: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(cfg, f, indent="\t")
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# -- challenges -----------------------------------------------------------------------

_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic" (lower case)
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse one ``WWW-Authenticate`` value: ``Bearer realm="...",service="...",scope="..."``."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3) or "").replace(
            '\\"', '"'
        )
        for m in _PARAM_RE.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def scope_for(path: str, push: bool = False) -> str:
    return f"repository:{path}:{'pull,push' if push else 'pull'}"
