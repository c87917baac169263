"""Full text for summary-only feeds (`full_text = true` on a feed of the feeds file).

Many feeds carry a line or two per item, too little for the extractor. For such a feed, each
*new* item's link (one the seen-set does not know yet) is fetched through the ingestor's
`SafeFetcher` (same address checks, time and size limits) and its article read by trafilatura
(`pages.extract_page`); the item keeps the feed's id, title, link, date and source and takes
the page's text. Politely:

- at most one request per host per `RADAR_INGESTOR_FULL_TEXT_HOST_INTERVAL_S` (robots.txt
  included), by reserving each host's next slot;
- robots.txt (RFC 9309) is read through the same fetcher, kept for at most 24 hours, and
  obeyed for our User-Agent: a 4xx answer means no rules (allowed), a 5xx or no answer means
  everything is disallowed until it can be read;

Any failure keeps the summary: the item is published as the feed gave it. Each item's result
is counted in `radar_ingestor_full_text_total{feed,result}`: `full_text`, `robots_disallowed`,
`no_link`, `no_article_text`, `not_longer` (the page said less than the summary),
`invalid_html`, or the fetch's refusal reason (`timeout`, `http_status`, `forbidden_address`,
`too_large`, ...).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from services.ingestor import metrics as in_metrics
from services.ingestor.dedup import Fingerprint
from services.ingestor.fetch import FetchError, SafeFetcher
from services.ingestor.pages import extract_page
from services.ingestor.publish import Judge
from services.ingestor.sources import InputError, Parsed
from shared.contracts import ArticleEvent

#: RFC 9309 section 2.4: a cached robots.txt should not be used for more than 24 hours.
ROBOTS_TTL_S = 24 * 3600.0
CHANNEL = "full_text"


class HostPacer:
    """At most one request per host per `interval` seconds: each caller reserves the host's
    next free slot, then sleeps until it."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._next: dict[str, float] = {}

    async def wait(self, host: str) -> None:
        now = self.clock()
        slot = max(now, self._next.get(host, now))
        self._next[host] = slot + self.interval
        if slot > now:
            await self.sleep(slot - now)


def robots_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/robots.txt"


def robots_rules(body: bytes | None, status: int | None = None) -> RobotFileParser:
    """The rules of one host (RFC 9309 2.3.1): the file when it was read; when it was not,
    "unavailable" (a 4xx other than 429) allows everything, "unreachable" (429, 5xx, no
    answer) disallows everything."""
    rules = RobotFileParser()
    if body is not None:
        rules.parse(body.decode("utf-8", errors="replace").splitlines())
    elif status is not None and 400 <= status < 500 and status != 429:
        rules.allow_all = True
    else:
        rules.disallow_all = True
    return rules


class FullText:
    """Fetches the pages of new feed items (see the module docstring)."""

    def __init__(self, fetcher: SafeFetcher, pacer: HostPacer, *,
                 clock: Callable[[], float] = time.monotonic, remembered: int = 1000) -> None:
        self.fetcher = fetcher
        self.pacer = pacer
        self.clock = clock
        self.user_agent = fetcher.policy.user_agent
        self._robots: dict[str, tuple[float, RobotFileParser]] = {}
        self._reading: dict[str, asyncio.Lock] = {}
        #: The text each recent item got, by article id: an item whose page turned out to
        #: be a copy of a story already published stays unseen, and must not be fetched
        #: again at every poll (it gets the same text, so the same verdict).
        self._texts: OrderedDict[str, str] = OrderedDict()
        self.remembered = remembered

    async def allowed(self, url: str) -> bool:
        where = robots_url(url)
        # One read per host at a time: the items of one poll ask together.
        async with self._reading.setdefault(where, asyncio.Lock()):
            kept = self._robots.get(where)
            if kept is None or self.clock() - kept[0] > ROBOTS_TTL_S:
                await self.pacer.wait(urlsplit(url).netloc)
                try:
                    fetched = await self.fetcher.fetch(where, channel=CHANNEL)
                    rules = robots_rules(fetched.body)
                except FetchError as exc:
                    rules = robots_rules(None, exc.status)
                kept = (self.clock(), rules)
                self._robots[where] = kept
        return kept[1].can_fetch(self.user_agent, url)

    async def fetch_text(self, item: ArticleEvent) -> tuple[str, ArticleEvent]:
        """(result, the item with the page's text, or as it was)."""
        if not item.url:
            return "no_link", item
        try:
            if not await self.allowed(item.url):
                return "robots_disallowed", item
            await self.pacer.wait(urlsplit(item.url).netloc)
            fetched = await self.fetcher.fetch(item.url, channel=CHANNEL)
        except FetchError as exc:
            return exc.reason, item
        page = await asyncio.to_thread(extract_page, fetched.body, name=item.url,
                                       default_source=item.source, url=fetched.url)
        if isinstance(page, InputError):
            return page.reason, item
        if len(page.text) <= len(item.text):
            return "not_longer", item
        return "full_text", item.model_copy(update={"text": page.text})

    async def enrich(self, items: list[Parsed], feed: str, judge: Judge) -> list[Parsed]:
        """`items` with the full text of each new article (hosts in parallel, each paced);
        items the seen-set knows are left alone: they will be duplicates."""

        async def one(item: Parsed) -> Parsed:
            if not isinstance(item, ArticleEvent) or judge.index.check(
                    Fingerprint.of(item, judge.min_words), judge.clock()) is not None:
                return item
            text = self._texts.get(item.article_id)
            if text is not None:
                self._texts.move_to_end(item.article_id)
                return item.model_copy(update={"text": text})
            result, enriched = await self.fetch_text(item)
            in_metrics.FULL_TEXT.labels(feed, result).inc()
            self._texts[item.article_id] = enriched.text
            while len(self._texts) > self.remembered:
                self._texts.popitem(last=False)
            return enriched

        return list(await asyncio.gather(*(one(item) for item in items)))
