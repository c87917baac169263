"""URL fetching against a local server: only http(s), only public addresses unless allowed,
every redirect re-checked, size and time capped. `LocalSite` is reused by the other ingest
tests (feeds, service)."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from ipaddress import ip_network

import pytest
from aiohttp import web

from services.ingestor.fetch import (
    FetchError,
    FetchPolicy,
    SafeFetcher,
    address_refusal,
    check_address,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOOPBACK = (ip_network("127.0.0.0/8"),)


class LocalSite:
    """An aiohttp server on 127.0.0.1 and a free port, serving scripted routes; it records
    the hits and request headers of every path."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.headers: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def route(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def serve(self, path: str, body: bytes | str, content_type: str = "application/xml",
              headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body

        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=data, content_type=content_type, headers=headers)

        self.route(path, handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.headers[request.path].append(dict(request.headers))
        handler = self.handlers.get(request.path)
        if handler is None:
            return web.Response(status=404, text="not here")
        return await handler(request)

    async def __aenter__(self) -> LocalSite:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def redirect(to: str, status: int = 302) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": to})

    return handler


def fetcher(allow: tuple = LOOPBACK, **policy: object) -> SafeFetcher:
    return SafeFetcher(FetchPolicy(allow_networks=allow, **policy))  # type: ignore[arg-type]


@pytest.fixture
async def site():
    async with LocalSite() as s:
        yield s


# ------------------------------------------------------------------ address rules


@pytest.mark.parametrize(("address", "refusal"), [
    ("93.184.216.34", None), ("2606:4700::1111", None),
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
    ("172.16.0.9", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "link_local"),
    ("fe80::1", "link_local"), ("100.64.0.1", "shared"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"), ("fc00::1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("2002:0a00:0001::1", "private"),  # 6to4 wrapping 10.0.0.1
])
def test_address_rules(address: str, refusal: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == refusal


def test_allow_networks_lets_only_those_through() -> None:
    assert check_address(ipaddress.ip_address("127.0.0.1"), LOOPBACK) is None
    assert check_address(ipaddress.ip_address("10.0.0.1"), LOOPBACK) == "private"
    assert check_address(ipaddress.ip_address("::1"), LOOPBACK) == "loopback"


# ------------------------------------------------------------------ fetching


async def test_fetch_returns_body_validators_and_counts_bytes(site: LocalSite) -> None:
    site.serve("/feed.xml", "<rss/>", headers={"ETag": '"v1"',
                                              "Last-Modified": "Tue, 05 Mar 2024 08:00:00 GMT"})
    f = fetcher()
    try:
        got = await f.fetch(site.url("/feed.xml"))
    finally:
        await f.aclose()
    assert (got.status, got.body, got.etag) == (200, b"<rss/>", '"v1"')
    assert got.last_modified == "Tue, 05 Mar 2024 08:00:00 GMT"
    assert got.downloaded_bytes == len(b"<rss/>")
    assert site.headers["/feed.xml"][0]["User-Agent"].startswith("AllianceRadar")


async def test_loopback_is_refused_unless_allowed_and_nothing_is_sent(site: LocalSite) -> None:
    site.serve("/x", "secret")
    f = fetcher(allow=())
    try:
        with pytest.raises(FetchError) as caught:
            await f.fetch(site.url("/x"))
    finally:
        await f.aclose()
    assert caught.value.reason == "forbidden_address" and "loopback" in str(caught.value)
    assert site.hits["/x"] == 0


@pytest.mark.parametrize("target", ["http://10.1.2.3/admin", "http://169.254.169.254/latest/",
                                    "http://[::ffff:192.168.0.1]/", "http://0.0.0.0:22/"])
async def test_redirect_to_a_private_address_is_refused_before_connecting(
        site: LocalSite, target: str) -> None:
    site.route("/go", redirect(target))
    f = fetcher()
    try:
        with pytest.raises(FetchError) as caught:
            await f.fetch(site.url("/go"))
    finally:
        await f.aclose()
    assert caught.value.reason == "forbidden_address"
    assert site.hits["/go"] == 1


async def test_redirects_are_followed_hop_by_hop_and_capped(site: LocalSite) -> None:
    site.route("/a", redirect("/b", 301))
    site.route("/b", redirect(site.url("/c"), 307))
    site.serve("/c", "done")
    site.route("/loop", redirect("/loop"))
    f = fetcher(max_redirects=3)
    try:
        got = await f.fetch(site.url("/a"))
        assert got.body == b"done" and got.url == site.url("/c")
        assert got.redirects == (site.url("/b"), site.url("/c"))
        with pytest.raises(FetchError) as caught:
            await f.fetch(site.url("/loop"))
    finally:
        await f.aclose()
    assert caught.value.reason == "too_many_redirects"
    assert site.hits["/loop"] == 4  # the first request and three redirects


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x",
                                 "gopher://127.0.0.1:70/", "javascript:alert(1)", "/relative"])
async def test_only_http_and_https(url: str) -> None:
    f = fetcher()
    try:
        with pytest.raises(FetchError) as caught:
            await f.fetch(url)
    finally:
        await f.aclose()
    assert caught.value.reason in ("bad_scheme", "bad_url")


async def test_redirect_to_another_scheme_is_refused(site: LocalSite) -> None:
    site.route("/go", redirect("file:///etc/passwd"))
    f = fetcher()
    try:
        with pytest.raises(FetchError) as caught:
            await f.fetch(site.url("/go"))
    finally:
        await f.aclose()
    assert caught.value.reason == "bad_scheme"


async def test_size_cap_declared_streamed_and_compressed(site: LocalSite) -> None:
    site.serve("/declared", b"x" * 5000)

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(50):
            await resp.write(b"y" * 1000)
        return resp

    site.route("/chunked", chunked)
    bomb = gzip.compress(b"\0" * 20_000_000)  # 20 MB of zeros in ~20 KB
    site.serve("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    site.serve("/small.gz", gzip.compress(b"hello " * 100), headers={"Content-Encoding": "gzip"})
    f = fetcher(max_bytes=4096)
    try:
        for path in ("/declared", "/chunked", "/bomb"):
            with pytest.raises(FetchError) as caught:
                await f.fetch(site.url(path))
            assert caught.value.reason == "too_large", path
        small = await f.fetch(site.url("/small.gz"))
    finally:
        await f.aclose()
    assert small.body == b"hello " * 100
    assert len(bomb) < 30_000


async def test_slow_server_hits_the_deadline(site: LocalSite) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b".")
            await asyncio.sleep(0.05)  # a server that drips: the slowness under test
        return resp

    site.route("/drip", drip)
    f = fetcher(timeout_s=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(FetchError) as caught:
            await f.fetch(site.url("/drip"))
    finally:
        await f.aclose()
    assert caught.value.reason == "timeout"
    assert loop.time() - started < 2.0


async def test_http_errors_and_conditional_get(site: LocalSite) -> None:
    async def conditional(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v2"':
            return web.Response(status=304)
        return web.Response(body=b"<rss/>", headers={"ETag": '"v2"'})

    site.route("/c", conditional)
    f = fetcher()
    try:
        first = await f.fetch(site.url("/c"))
        again = await f.fetch(site.url("/c"), etag=first.etag)
        with pytest.raises(FetchError) as caught:
            await f.fetch(site.url("/missing"))
    finally:
        await f.aclose()
    assert (first.status, again.status, again.not_modified) == (200, 304, True)
    assert caught.value.reason == "http_status" and "404" in str(caught.value)


async def test_names_are_resolved_once_and_the_checked_address_is_used(site: LocalSite) -> None:
    """DNS rebinding: the request goes to the address that was checked, with the name in
    the Host header; a name with any non-public address is refused."""
    site.serve("/page", "ok")
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return {"news.test": ["127.0.0.1"], "mixed.test": ["127.0.0.1", "10.0.0.7"]}[host]

    f = SafeFetcher(FetchPolicy(allow_networks=LOOPBACK), resolve=resolve)
    try:
        got = await f.fetch(f"http://news.test:{site.port}/page")
        with pytest.raises(FetchError) as caught:
            await f.fetch(f"http://mixed.test:{site.port}/page")
    finally:
        await f.aclose()
    assert got.body == b"ok" and got.url == f"http://news.test:{site.port}/page"
    assert site.headers["/page"][0]["Host"] == f"news.test:{site.port}"
    assert caught.value.reason == "forbidden_address" and "10.0.0.7" in str(caught.value)
    assert asked == ["news.test", "mixed.test"] and site.hits["/page"] == 1


async def test_unresolvable_name() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    f = SafeFetcher(FetchPolicy(), resolve=resolve)
    try:
        with pytest.raises(FetchError) as caught:
            await f.fetch("http://nowhere.invalid/")
    finally:
        await f.aclose()
    assert caught.value.reason == "dns_error"
