"""HTTP to one registry: endpoint and TLS choice, auth challenges, bounded retries.

One :class:`Registry` talks to one registry host.  It finds the endpoint
(``docker.io`` is served by ``registry-1.docker.io``), speaks HTTPS with the
system's CAs plus any ``ca.crt``/``*.crt`` in ``certs.d/<host>/`` (Docker's
layout), and for insecure registries (``--tls-verify=false``, the
insecure-registries setting, and loopback hosts like Docker) tries HTTPS without
verification and then plain HTTP.  It answers 401 challenges (Bearer token
realm/service/scope, or Basic) and retries what is worth retrying: a dropped
connection, 408/429/5xx, with exponential backoff and a bounded number of
attempts.  httpx is imported here only, when a registry is first contacted.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet import __version__
from pallet.oci.reference import DEFAULT_DOMAIN
from pallet.registry.auth import ANONYMOUS, Challenge, Credentials, parse_challenge
from pallet.registry.errors import (
    RETRYABLE_STATUS,
    RegistryError,
    RegistryTLSError,
    RegistryUnauthorized,
    RegistryUnavailable,
    from_response,
)

if TYPE_CHECKING:
    import httpx

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
DEFAULT_CERTS_DIRS = (Path("/etc/pallet/certs.d"), Path("/etc/docker/certs.d"))


@dataclass(frozen=True)
class Options:
    """How to reach registries; built by the engine from flags and settings."""

    tls_verify: bool = True
    insecure_registries: tuple[str, ...] = ()
    certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS
    timeout: float = 30.0  # connect / read timeout, seconds
    retries: int = 4  # attempts after the first, for retryable failures
    backoff: float = 0.5  # first wait; doubles each retry
    max_workers: int = 3  # parallel blob transfers
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **kw: Any) -> Options:
        """Settings from the environment (``PALLET_INSECURE_REGISTRIES``, ``PALLET_CERTS_D``,
        ``PALLET_REGISTRY_TIMEOUT``, ``PALLET_REGISTRY_RETRIES``); keywords win."""
        env = dict(os.environ) if env is None else env
        opts: dict[str, Any] = {}
        if env.get("PALLET_INSECURE_REGISTRIES"):
            opts["insecure_registries"] = tuple(
                s.strip() for s in env["PALLET_INSECURE_REGISTRIES"].split(",") if s.strip()
            )
        if env.get("PALLET_CERTS_D"):
            opts["certs_dirs"] = (Path(env["PALLET_CERTS_D"]), *DEFAULT_CERTS_DIRS)
        if env.get("PALLET_REGISTRY_TIMEOUT"):
            opts["timeout"] = float(env["PALLET_REGISTRY_TIMEOUT"])
        if env.get("PALLET_REGISTRY_RETRIES"):
            opts["retries"] = int(env["PALLET_REGISTRY_RETRIES"])
        if env.get("PALLET_REGISTRY_BACKOFF"):
            opts["backoff"] = float(env["PALLET_REGISTRY_BACKOFF"])
        opts.update(kw)
        return cls(**opts)


def endpoint_host(domain: str) -> str:
    return DOCKER_HUB_ENDPOINT if domain == DEFAULT_DOMAIN else domain


def is_loopback(domain: str) -> bool:
    host = domain
    if host.startswith("["):
        host = host[1 : host.index("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_insecure(domain: str, opts: Options) -> bool:
    """Plain HTTP / unverified TLS allowed (Docker: loopback and listed registries)."""
    if not opts.tls_verify or is_loopback(domain):
        return True
    host = domain.split(":", 1)[0]
    for item in opts.insecure_registries:
        if item in (domain, host):
            return True
        if "/" in item:
            try:
                net = ipaddress.ip_network(item, strict=False)
                if ipaddress.ip_address(host) in net:
                    return True
            except ValueError:
                continue
    return False


def ssl_context(domain: str, opts: Options) -> ssl.SSLContext:
    """System CAs (honouring SSL_CERT_FILE/SSL_CERT_DIR) plus the registry's certs.d CAs."""
    ctx = ssl.create_default_context()
    for base in opts.certs_dirs:
        d = base / domain
        if d.is_dir():
            for crt in sorted(d.glob("*.crt")):
                ctx.load_verify_locations(cafile=str(crt))
            cert, key = d / "client.cert", d / "client.key"
            if cert.is_file() and key.is_file():
                ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA loading: nothing is verified
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


Body = Callable[[], "bytes | Iterable[bytes]"]


class Registry:
    """A session with one registry host: ``request`` and ``stream`` with auth and retries."""

    def __init__(self, domain: str, credentials: Credentials = ANONYMOUS,
                 options: Options | None = None) -> None:
        self.domain = domain
        self.host = endpoint_host(domain)
        self.credentials = credentials
        self.options = options or Options()
        self.insecure = is_insecure(domain, self.options)
        self._base: str | None = None
        self._client: httpx.Client | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_client(self, verify: ssl.SSLContext | bool) -> httpx.Client:
        import httpx

        t = self.options.timeout
        return httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(t, connect=min(t, 30.0)),
            follow_redirects=True,
            headers={"User-Agent": f"pallet/{__version__}"},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            trust_env=False,
        )

    def base(self) -> str:
        """``https://host`` or ``http://host``, found by pinging ``/v2/`` once."""
        with self._lock:
            if self._base is not None:
                return self._base
            self._base = self._ping()
            return self._base

    def _ping(self) -> str:
        import httpx

        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            verify: ssl.SSLContext | bool
            if scheme == "https":
                verify = _unverified_context() if self.insecure else ssl_context(
                    self.domain, self.options
                )
            else:
                verify = False
            client = self._make_client(verify)
            url = f"{scheme}://{self.host}/v2/"
            try:
                resp = self._with_retries(_getter(client, url), "GET", url)
            except RegistryError as e:
                client.close()
                last = e
                if isinstance(e, RegistryTLSError) or (
                    isinstance(e, RegistryUnavailable) and e.status == 0
                ):
                    continue
                raise
            except httpx.HTTPError as e:  # pragma: no cover - defensive
                client.close()
                last = e
                continue
            if resp.status_code == 401:
                self._challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
            elif resp.status_code >= 400 and resp.status_code != 404:
                client.close()
                raise from_response(resp.status_code, resp.content)
            self._client = client
            return f"{scheme}://{self.host}"
        assert last is not None
        raise last

    # -- retries ---------------------------------------------------------------------
    def _with_retries(self, send: Callable[[], httpx.Response], method: str,
                      url: str) -> httpx.Response:
        """Send, retrying dropped connections and 408/429/5xx with backoff (bounded)."""
        import httpx

        delay = self.options.backoff
        attempt = timeouts = 0
        while True:
            try:
                resp = send()
            except httpx.TimeoutException:
                err: RegistryError = RegistryUnavailable(
                    f'{method.capitalize()} "{url}": timeout: no answer within '
                    f"{self.options.timeout:g}s"
                )
                timeouts += 1
                if timeouts > 1:  # a registry that hangs twice will hang again
                    raise err from None
            except httpx.ConnectError as e:
                text = str(e)
                if "CERTIFICATE" in text.upper() or "SSL" in text.upper() or "TLS" in text.upper():
                    raise RegistryTLSError(
                        f'{method.capitalize()} "{url}": tls: {_short(text)}'
                    ) from None
                # refused / no route / unknown host: retrying will not change the answer
                raise RegistryUnavailable(
                    f'{method.capitalize()} "{url}": {_short(text)}'
                ) from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
                err = RegistryUnavailable(
                    f'{method.capitalize()} "{url}": connection dropped: {_short(str(e))}'
                )
            else:
                if resp.status_code not in RETRYABLE_STATUS or attempt >= self.options.retries:
                    return resp
                wait = _retry_after(resp, delay)
                resp.close()
                attempt += 1
                self.options.sleep(wait)
                delay *= 2
                continue
            if attempt >= self.options.retries:
                raise err
            attempt += 1
            self.options.sleep(delay)
            delay *= 2

    # -- auth ------------------------------------------------------------------------
    def _auth_header(self, scope: str) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return None if self.credentials.empty else self.credentials.basic()
        if ch.scheme == "bearer":
            tok = self._tokens.get(scope)
            return f"Bearer {tok}" if tok else None
        return None

    def _authenticate(self, resp: httpx.Response, scope: str) -> bool:
        """React to a 401; True when a retry with new credentials makes sense."""
        ch = parse_challenge(resp.headers.get("www-authenticate", "")) or self._challenge
        if ch is None:
            return False
        self._challenge = ch
        if ch.scheme == "basic":
            return not self.credentials.empty
        if ch.scheme != "bearer" or "realm" not in ch.params:
            return False
        token = self._fetch_token(ch, scope)
        if not token or self._tokens.get(scope) == token:
            return False
        self._tokens[scope] = token
        return True

    def _fetch_token(self, ch: Challenge, scope: str) -> str:
        assert self._client is not None
        realm = ch.params["realm"]
        params: list[tuple[str, Any]] = []
        if ch.params.get("service"):
            params.append(("service", ch.params["service"]))
        for s in scope.split(" ") if scope else ([ch.params["scope"]] if "scope" in ch.params
                                                  else []):
            params.append(("scope", s))
        creds = self.credentials
        if creds.identity_token:
            form = {k: v for k, v in params if k != "scope"}
            scopes = [v for k, v in params if k == "scope"]
            if scopes:  # OAuth: one space-separated scope parameter
                form["scope"] = " ".join(scopes)
            form.update(grant_type="refresh_token", refresh_token=creds.identity_token,
                        client_id="pallet")
            resp = self._with_retries(
                lambda: self._client.post(realm, data=form),  # type: ignore[union-attr]
                "POST", realm,
            )
        else:
            headers = {} if creds.empty else {"Authorization": creds.basic()}
            resp = self._with_retries(
                lambda: self._client.get(realm, params=params, headers=headers),  # type: ignore[union-attr]
                "GET", realm,
            )
        if resp.status_code in (401, 403):
            raise RegistryUnauthorized(
                "unauthorized: incorrect username or password"
                if not creds.empty else "unauthorized: authentication required",
                resp.status_code, "UNAUTHORIZED",
            )
        if resp.status_code != 200:
            raise from_response(resp.status_code, resp.content)
        try:
            obj = resp.json()
        except ValueError:
            raise RegistryError(f"invalid token answer from {realm}") from None
        return str(obj.get("token") or obj.get("access_token") or "")

    def login(self) -> None:
        """Check the credentials against the registry (``pallet login``)."""
        base = self.base()
        ch = self._challenge
        if ch is None:
            return  # the registry asks for no authentication
        if ch.scheme == "bearer":
            self._fetch_token(ch, "")
            return
        assert self._client is not None
        if self.credentials.empty:
            raise RegistryUnauthorized("unauthorized: authentication required", 401)
        resp = self._client.get(base + "/v2/", headers={"Authorization": self.credentials.basic()})
        if resp.status_code == 401:
            raise RegistryUnauthorized(
                f"login attempt to {base}/v2/ failed with status: 401 Unauthorized", 401
            )
        if resp.status_code >= 400:
            raise from_response(resp.status_code, resp.content)

    # -- requests --------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base() + path

    def send(self, method: str, path: str, *, scope: str = "",
             headers: dict[str, str] | None = None, body: Body | None = None,
             params: dict[str, str] | None = None, stream: bool = False) -> httpx.Response:
        """One API call with auth and retries.  The caller closes a streamed response.

        ``body`` is a factory so that a retry can send the body again.
        """
        url = self.url(path)
        assert self._client is not None
        client = self._client
        tried_auth = False
        while True:
            h = dict(headers or {})
            auth = self._auth_header(scope)
            if auth:
                h["Authorization"] = auth

            def once(h: dict[str, str] = h) -> httpx.Response:
                content = body() if body is not None else None
                req = client.build_request(method, url, headers=h, content=content, params=params)
                return client.send(req, stream=stream)

            resp = self._with_retries(once, method, url)
            if resp.status_code == 401 and not tried_auth:
                if stream:
                    resp.read()
                tried_auth = True
                if self._authenticate(resp, scope):
                    resp.close()
                    continue
            return resp

    def request(self, method: str, path: str, *, scope: str = "", what: str = "",
                ok: tuple[int, ...] = (200,), **kw: Any) -> httpx.Response:
        """``send`` that raises the registry's error for a status not in ``ok``."""
        resp = self.send(method, path, scope=scope, **kw)
        if resp.status_code not in ok:
            if kw.get("stream"):
                resp.read()
            body = resp.content if method != "HEAD" else b""
            raise from_response(resp.status_code, body, what)
        return resp

    @contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[httpx.Response]:
        resp = self.request(method, path, stream=True, **kw)
        try:
            yield resp
        finally:
            resp.close()


def _getter(client: httpx.Client, url: str) -> Callable[[], httpx.Response]:
    return lambda: client.get(url)


def _retry_after(resp: httpx.Response, default: float) -> float:
    v = resp.headers.get("retry-after", "")
    try:
        return min(max(float(v), 0.0), 30.0)
    except ValueError:
        return default


def _short(text: str) -> str:
    text = text.strip().replace("\n", " ")
    for needle, out in (
        ("Connection refused", "connect: connection refused"),
        ("Name or service not known", "no such host"),
        ("CERTIFICATE_VERIFY_FAILED", "failed to verify certificate: certificate signed by "
                                      "unknown authority"),
    ):
        if needle in text:
            return out
    return text[:200] or "connection failed"
