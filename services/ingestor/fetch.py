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
import ipaddress
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import httpx

from services.ingestor import metrics as in_metrics
from shared.settings import IngestorSettings

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
REDIRECTS = (301, 302, 303, 307, 308)
_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT


class FetchError(Exception):
    """A fetch that was refused or failed; `reason` is a short label."""

    def __init__(self, reason: str, message: str, url: str = "",
                 status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.url = url
        self.status = status  # the HTTP status, for reason http_status

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


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` is not a public internet address, or None when it is."""
    if isinstance(ip, IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return address_refusal(embedded)
    checks = (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
              ("link_local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("reserved", ip.is_reserved),
              ("shared", isinstance(ip, IPv4Address) and ip in _SHARED),
              ("private", ip.is_private),
              ("not_global", not ip.is_global))
    return next((name for name, hit in checks if hit), None)


def check_address(ip: IPAddress, allow: tuple[Network, ...]) -> str | None:
    refusal = address_refusal(ip)
    if refusal is None or any(ip.version == net.version and ip in net for net in allow):
        return None
    return refusal


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


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
                    raise FetchError("http_status", f"HTTP {response.status_code}", current,
                                     status=response.status_code)
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
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchError("bad_url", f"not a URL: {exc}", url) from None
        if parsed.scheme not in ("http", "https"):
            raise FetchError("bad_scheme", f"only http and https may be fetched, not "
                             f"{parsed.scheme or 'a relative URL'!r}", url)
        host = parsed.host
        if not host:
            raise FetchError("bad_url", "URL has no host", url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self.resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise FetchError("dns_error", f"cannot resolve {host}: {exc}", url) from None
            if not addresses:
                raise FetchError("dns_error", f"{host} has no address", url)
        for address in addresses:
            refusal = check_address(ipaddress.ip_address(address), self.policy.allow_networks)
            if refusal is not None:
                where = host if literal is not None else f"{host} resolves to {address}, which"
                raise FetchError("forbidden_address", f"{where} is a {refusal} address; "
                                 "refused", url)
        target = parsed.copy_with(host=addresses[0])
        host_header = host if parsed.port is None else f"{host}:{parsed.port}"
        if literal is None or literal.version == 4:
            headers = {"Host": host_header}
        else:
            headers = {"Host": f"[{host}]" if parsed.port is None else f"[{host}]:{port}"}
        extensions = {"sni_hostname": host} if parsed.scheme == "https" and literal is None \
            else {}
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
