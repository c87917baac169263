"""Standing RSS/Atom feeds: the feeds file, and the poller that reads them on an interval.

The feeds file (TOML, `RADAR_INGESTOR_FEEDS_FILE`) is what `radar feeds add|list|remove`
edits and what the ingestor re-reads whenever it changes:

    [[feeds]]
    url = "https://example.com/business.rss"
    name = "Example business"      # optional; metrics label and default source
    interval_s = 600                # optional; else RADAR_INGESTOR_FEED_INTERVAL_S
    full_text = true                # optional; fetch each new item's page (fulltext.py)

Each feed is fetched with a conditional GET (ETag / Last-Modified), parsed with feedparser
after defusedxml has refused entity tricks, and its items go through the same intake as
every other input (dedup drops the items seen at the previous poll). A failing feed waits
twice as long after each consecutive failure, up to RADAR_INGESTOR_FEED_MAX_BACKOFF_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.ingestor import metrics as in_metrics
from services.ingestor.fetch import FetchError, SafeFetcher
from services.ingestor.sources import InputError, Parsed, looks_like_feed, parse_feed

log = logging.getLogger(__name__)
FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


class FeedsFileError(ValueError):
    """The feeds file cannot be read; the message names the file and the problem."""


class FeedConfig(BaseModel):
    """One `[[feeds]]` table of the feeds file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http(s) URL of an RSS 0.9x/1.0/2.0 or Atom feed.")
    name: str | None = Field(None, min_length=1, max_length=80,
                             description="Label in metrics and logs; default source of items.")
    interval_s: float | None = Field(None, gt=0, description="Poll interval of this feed.")
    full_text: bool = Field(False, description="Fetch each new item's page for its full "
                            "text (summary-only feeds; see fulltext.py).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url

    @property
    def label(self) -> str:
        return self.name or urlsplit(self.url).hostname or self.url


class FeedsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feeds: list[FeedConfig] = Field(default_factory=list)


def load_feeds(path: Path) -> list[FeedConfig]:
    """The feeds in `path`; none when the file does not exist."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FeedsFileError(f"{path}: {exc}") from None
    try:
        feeds = FeedsFile.model_validate(data).feeds
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise FeedsFileError(f"{path}: {where}: {err['msg']}") from None
    urls = [f.url for f in feeds]
    if len(set(urls)) != len(urls):
        raise FeedsFileError(f"{path}: a feed URL is listed twice")
    return feeds


def add_feed(path: Path, feed: FeedConfig) -> None:
    """Append a feed, keeping the file's comments and layout (tomlkit)."""
    import tomlkit
    from tomlkit.items import AoT

    existing = load_feeds(path)
    if any(f.url == feed.url for f in existing):
        raise FeedsFileError(f"{path}: {feed.url} is already a feed")
    if feed.name and any(f.name == feed.name for f in existing):
        raise FeedsFileError(f"{path}: a feed is already named {feed.name!r}")
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else \
        tomlkit.document()
    if not path.exists():
        doc.add(tomlkit.comment("Feeds polled by the Alliance Radar ingestor "
                                "(RADAR_INGESTOR_FEEDS_FILE); edit here or with `radar feeds`."))
    table = tomlkit.table()
    for key, value in feed.model_dump(exclude_defaults=True).items():
        table.add(key, value)
    feeds = doc.get("feeds")
    if not isinstance(feeds, AoT):
        # `feeds = []` or `feeds = [{url = ...}]` (an inline array) becomes [[feeds]] tables:
        # appending a table to an inline array writes a file TOML cannot read back.
        tables = tomlkit.aot()
        for inline in feeds or []:
            kept = tomlkit.table()
            kept.update(inline)
            tables.append(kept)
        if feeds is not None:
            del doc["feeds"]
        doc.add("feeds", tables)
        feeds = tables
    feeds.append(table)
    _write(path, tomlkit.dumps(doc).replace("\n[[feeds]]", "\n\n[[feeds]]").replace(
        "\n\n\n[[feeds]]", "\n\n[[feeds]]"))


def remove_feed(path: Path, url_or_name: str) -> FeedConfig:
    """Remove the feed with this URL, name or label (host); returns it."""
    import tomlkit

    feeds = load_feeds(path)
    gone = next((f for f in feeds if url_or_name in (f.url, f.name)), None) or next(
        (f for f in feeds if f.label == url_or_name), None)
    if gone is None:
        raise FeedsFileError(f"{path}: no feed with URL or name {url_or_name!r}")
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    tables = doc["feeds"]
    index = next(i for i, t in enumerate(tables) if str(t.get("url", "")).strip() == gone.url)
    del tables[index]
    _write(path, tomlkit.dumps(doc))
    return gone


def _write(path: Path, text: str) -> None:
    """Write atomically, so the polling ingestor never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    tmp.replace(path)


def backoff_delay(interval: float, failures: int, max_backoff: float) -> float:
    """Wait before the next poll: the interval, doubled per consecutive failure, capped."""
    if failures <= 0:
        return interval
    return min(max_backoff, interval * 2 ** min(failures, 32))


@dataclass
class FeedState:
    """What the poller remembers about one feed between polls."""

    feed: FeedConfig
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0
    next_due: float = 0.0
    polls: int = 0
    last_result: str | None = None
    last_error: str | None = None


OnItems = Callable[[list[Parsed], FeedConfig], Awaitable[int]]


class FeedError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class FeedPoller:
    """Polls every feed of the feeds file when due; `on_items` publishes a poll's items and
    returns how many were new."""

    path: Path
    fetcher: SafeFetcher
    on_items: OnItems
    default_interval: float = 300.0
    max_backoff: float = 3600.0
    concurrency: int = 4
    clock: Callable[[], float] = time.monotonic
    states: dict[str, FeedState] = field(default_factory=dict)
    _mtime: float | None = None

    def reload(self) -> bool:
        """Re-read the feeds file if it changed; keeps the state of feeds still listed."""
        try:
            mtime: float | None = self.path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if mtime == self._mtime and (mtime is not None or not self.states):
            return False
        try:
            feeds = load_feeds(self.path)
        except FeedsFileError as exc:
            log.error("feeds file not reloaded: %s", exc)
            self._mtime = mtime
            return False
        self._mtime = mtime
        old = self.states
        self.states = {}
        for feed in feeds:
            state = old.get(feed.url)
            if state is None:
                state = FeedState(feed, next_due=self.clock())
            else:
                state.feed = feed
            self.states[feed.url] = state
        in_metrics.FEEDS.set(len(self.states))
        log.info("feeds file %s: %d feed(s)", self.path, len(self.states))
        return True

    def interval(self, feed: FeedConfig) -> float:
        return feed.interval_s or self.default_interval

    async def poll(self, state: FeedState) -> str:
        """One conditional GET and parse; returns new | unchanged | not_modified | error."""
        feed = state.feed
        started = time.perf_counter()
        try:
            result = await self._poll(state)
        except Exception as exc:  # any failure backs off; none ends polling
            reason = exc.reason if isinstance(exc, FeedError) else "publish_error"
            if not isinstance(exc, FeedError):
                log.exception("feed %s: publishing failed", feed.label)
            state.failures += 1
            state.last_error = f"{reason}: {exc}"
            in_metrics.FEED_ERRORS.labels(feed.label, reason).inc()
            log.warning("feed %s: %s (failure %d, next try in %.0fs)", feed.label, exc,
                        state.failures, backoff_delay(self.interval(feed), state.failures,
                                                      self.max_backoff))
            result = "error"
        else:
            state.failures = 0
            state.last_error = None
        in_metrics.FEED_POLL_SECONDS.labels(feed.label).observe(time.perf_counter() - started)
        in_metrics.FEED_POLLS.labels(feed.label, result).inc()
        in_metrics.FEED_FAILURES.labels(feed.label).set(state.failures)
        state.polls += 1
        state.last_result = result
        state.next_due = self.clock() + backoff_delay(self.interval(feed), state.failures,
                                                      self.max_backoff)
        return result

    async def _poll(self, state: FeedState) -> str:
        feed = state.feed
        try:
            fetched = await self.fetcher.fetch(feed.url, etag=state.etag,
                                               last_modified=state.last_modified,
                                               accept=FEED_ACCEPT, channel="feed")
        except FetchError as exc:
            raise FeedError(exc.reason, exc.message) from None
        if fetched.not_modified:
            return "not_modified"
        if not looks_like_feed(fetched.body):
            raise FeedError("not_a_feed", f"{fetched.url} is not RSS or Atom "
                            f"({fetched.content_type or 'no content type'})")
        items = list(parse_feed(fetched.body, name=feed.label, default_source=feed.label))
        if len(items) == 1 and isinstance(items[0], InputError) and \
                items[0].where == feed.label:
            if items[0].reason == "empty_feed":
                items = []
            else:  # the whole document is bad: malformed, or an entity bomb
                raise FeedError(items[0].reason, items[0].message)
        new = await self.on_items(items, feed) if items else 0
        # Remember validators only once the items are safely published.
        state.etag, state.last_modified = fetched.etag, fetched.last_modified
        return "new" if new else "unchanged"

    def next_wakeup(self) -> float:
        return min((s.next_due for s in self.states.values()), default=float("inf"))

    async def run_once(self) -> list[str]:
        """Poll every feed that is due now (at most `concurrency` at a time)."""
        self.reload()
        now = self.clock()
        due = [s for s in self.states.values() if s.next_due <= now]
        limit = asyncio.Semaphore(self.concurrency)

        async def guarded(state: FeedState) -> str:
            async with limit:
                return await self.poll(state)

        return list(await asyncio.gather(*(guarded(s) for s in due)))

    async def run(self, stop: asyncio.Event, reload_every: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a bug in one poll must not end polling
                log.exception("feed polling round failed")
            wait = max(0.05, min(reload_every, self.next_wakeup() - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
