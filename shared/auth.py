"""Bearer tokens on the HTTP APIs: who may write (ingestor) and who may read (query API).

One aiohttp middleware for both services (the ingestor's own aiohttp app and the Faust web
server, which is aiohttp too). With no token configured every request passes, as before
(`make run` binds loopback only); with one, every path except the listed open ones (/metrics
for Prometheus, /health for orchestrators) needs `Authorization: Bearer <token>`, else 401
before the body is read. The comparison is constant-time over bytes.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from pydantic import SecretStr

from shared.metrics import UNAUTHORIZED

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_headers(token: SecretStr | None) -> dict[str, str]:
    """Headers a client sends to a service configured with `token` (none without one)."""
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}


def check_bearer(header: str | None, token: SecretStr) -> str | None:
    """Why `header` does not carry `token` (missing, malformed, wrong), or None when it
    does. Constant-time in the token's content; bytes, so any header value compares."""
    if not header:
        return "missing"
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return "malformed"
    # aiohttp decodes header bytes as UTF-8 with surrogateescape: encode back the same way,
    # so a stranger's non-ASCII header is compared (and refused), never an exception.
    given = credentials.strip().encode("utf-8", "surrogateescape")
    expected = token.get_secret_value().encode()
    return None if hmac.compare_digest(given, expected) else "wrong"


def token_middleware(service: str, token: SecretStr | None, open_paths: Iterable[str],
                     realm: str) -> Callable[[web.Request, Handler], Awaitable[
                         web.StreamResponse]]:
    """aiohttp middleware: 401 unless the request carries `token` or its path is open."""
    open_paths = frozenset(open_paths)
    challenge = f'Bearer realm="{realm}"'

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None or request.path in open_paths:
            return await handler(request)
        refusal = check_bearer(request.headers.get("Authorization"), token)
        if refusal is None:
            return await handler(request)
        UNAUTHORIZED.labels(service, refusal).inc()
        error = "this endpoint needs a bearer token: Authorization: Bearer <token>" \
            if refusal == "missing" else "bearer token refused"
        header = challenge if refusal == "missing" else f'{challenge}, error="invalid_token"'
        return web.json_response({"error": error, "reason": "unauthorized"}, status=401,
                                 headers={"WWW-Authenticate": header})

    return require_token


def warn_if_exposed(service: str, host: str, token: SecretStr | None, variable: str) -> None:
    """Binding beyond loopback without a token lets anyone who reaches the port in."""
    if token is not None:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        log.warning("%s listens on %s without %s: anyone who can reach the port may call it; "
                    "set %s (see README, Security)", service, host, variable, variable)
