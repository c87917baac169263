"""Fetch a URL without letting the URL's owner aim us at our own network.

The ingestor fetches addresses that strangers choose (feed URLs, links in feeds, inbox
requests), so every hop is checked:

- only http and https;
- the host is resolved here, and every address it resolves to must be public (not loopback,
  private, link-local, shared, multicast, reserved, unspecified; IPv4 inside IPv6 too) unless
  a network in `allow_networks` covers it;
- the request then goes to that checked address (Host header and TLS SNI carry the name), so
  a DNS answer that changes between check and connect (rebinding) cannot move it; no
  connection is reused across hosts;
- redirects are followed by hand, each hop checked again, at most `max_redirects`;
- the whole fetch has one deadline, and the body (after gzip/deflate, decoded in bounded
  steps so a compression bomb cannot expand) is capped at `max_bytes`.

Refusals raise `FetchError` with a machine-readable reason (a metrics label).
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

import httpx

from services.ingestor import metrics as in_metrics
from shared.addresses import (  # the one address policy, shared with webhook delivery
    AddressRefused,
    IPAddress,
    Network,
    Resolver,
    address_refusal,
    check_address,
    checked_target,
    system_resolve,
)
from shared.settings import IngestorSettings

__all__ = ["FetchError", "FetchPolicy", "Fetched", "IPAddress", "SafeFetcher",
           "address_refusal", "check_address"]
REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """A fetch that was refused or failed; `reason` is a short label."""

    def __init__(self, reason: str, message: str, url: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.url = url

    def __str__(self) -> str:
        return f"{self.url}: {self.message}" if self.url else self.message


@dataclass(frozen=True)
class Fetched:
    url: str  # final URL, after redirects
    status: int  # 200-299, or 304 for a conditional GET that found nothing new
    body: bytes
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    redirects: tuple[str, ...] = ()
    downloaded_bytes: int = 0  # on the wire (compressed)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float = 15.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    allow_networks: tuple[Network, ...] = ()
    user_agent: str = "AllianceRadar/0.1 (news ingestor)"

    @classmethod
    def from_settings(cls, settings: IngestorSettings) -> FetchPolicy:
        return cls(timeout_s=settings.fetch_timeout_s, max_bytes=settings.fetch_max_bytes,
                   max_redirects=settings.fetch_max_redirects,
                   allow_networks=settings.allowed_networks, user_agent=settings.user_agent)


class SafeFetcher:
    """GET with the checks above. One instance per service; `aclose()` at the end."""

    def __init__(self, policy: FetchPolicy, *, resolve: Resolver = system_resolve,
                 verify: bool | object = True) -> None:
        self.policy = policy
        self.resolve = resolve
        self.client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, verify=verify,  # type: ignore[arg-type]
            timeout=httpx.Timeout(policy.timeout_s),
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": policy.user_agent, "Accept-Encoding": "gzip, deflate"})

    async def aclose(self) -> None:
        await self.client.aclose()

    async def fetch(self, url: str, *, etag: str | None = None,
                    last_modified: str | None = None, accept: str | None = None,
                    channel: str = "page") -> Fetched:
        """The document at `url`; 304 when `etag`/`last_modified` say nothing changed.
        `channel` labels the metrics (page, feed, inbox, cli)."""
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await self._follow(url, etag, last_modified, accept, channel)
        except TimeoutError:
            error = FetchError("timeout", f"no complete answer within "
                               f"{self.policy.timeout_s:g}s", url)
        except httpx.TimeoutException as exc:
            error = FetchError("timeout", f"timed out: {exc!r}", url)
        except httpx.HTTPError as exc:
            error = FetchError("connect_error", f"{type(exc).__name__}: {exc}", url)
        except FetchError as exc:
            error = exc
        in_metrics.FETCH_ERRORS.labels(channel, error.reason).inc()
        raise error

    async def _follow(self, url: str, etag: str | None, last_modified: str | None,
                      accept: str | None, channel: str) -> Fetched:
        redirects: list[str] = []
        current = url
        downloaded = 0
        while True:
            request = await self._checked_request(current)
            if etag:
                request.headers["If-None-Match"] = etag
            if last_modified:
                request.headers["If-Modified-Since"] = last_modified
            if accept:
                request.headers["Accept"] = accept
            response = await self.client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECTS and location:
                    if len(redirects) >= self.policy.max_redirects:
                        raise FetchError("too_many_redirects", f"more than "
                                         f"{self.policy.max_redirects} redirects", url)
                    current = str(httpx.URL(current).join(location))
                    redirects.append(current)
                    continue
                if response.status_code == 304:
                    return Fetched(current, 304, b"", etag=etag, last_modified=last_modified,
                                   redirects=tuple(redirects), downloaded_bytes=downloaded)
                if not 200 <= response.status_code < 300:
                    raise FetchError("http_status", f"HTTP {response.status_code}", current)
                body, wire = await self._read_capped(response, current)
                downloaded += wire
                return Fetched(current, response.status_code, body,
                               content_type=response.headers.get("content-type", ""),
                               etag=response.headers.get("etag"),
                               last_modified=response.headers.get("last-modified"),
                               redirects=tuple(redirects), downloaded_bytes=downloaded)
            finally:
                in_metrics.FETCHED_BYTES.labels(channel).inc(response.num_bytes_downloaded)
                await response.aclose()

    async def _checked_request(self, url: str) -> httpx.Request:
        try:
            checked = await checked_target(url, self.policy.allow_networks, self.resolve)
        except AddressRefused as exc:
            raise FetchError(exc.reason, exc.message, url) from None
        target, headers, extensions = checked.url, checked.headers, checked.extensions
        return self.client.build_request("GET", target, headers=headers,
                                         extensions=extensions)

    async def _read_capped(self, response: httpx.Response, url: str) -> tuple[bytes, int]:
        """The decoded body, never more than max_bytes of it in memory; and wire bytes."""
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError("too_large", f"declared {declared} bytes, limit {limit}", url)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            decoder = zlib.decompressobj(47 if encoding != "deflate" else 15)
        elif encoding in ("", "identity"):
            decoder = None
        else:
            raise FetchError("unsupported_encoding", f"content-encoding {encoding!r}", url)
        body = bytearray()
        wire = 0
        async for chunk in response.aiter_raw():
            wire += len(chunk)
            data = chunk
            while data:
                if decoder is None:
                    piece, data = data, b""
                else:
                    try:
                        piece = decoder.decompress(data, limit - len(body) + 1)
                    except zlib.error as exc:
                        raise FetchError("bad_encoding", f"corrupt {encoding} body: {exc}",
                                         url) from None
                    data = decoder.unconsumed_tail
                body += piece
                if len(body) > limit:
                    raise FetchError("too_large", f"more than {limit} bytes", url)
                if decoder is not None and not piece:
                    break
        if decoder is not None:
            body += decoder.flush()
            if len(body) > limit:
                raise FetchError("too_large", f"more than {limit} bytes", url)
        return bytes(body), wire
