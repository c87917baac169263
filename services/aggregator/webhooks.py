"""Webhook delivery: each change matching a subscription is POSTed, signed, to its URL.

Subscriptions live on the compacted topic `webhooks.subscriptions.v1` (written by `radar
webhooks`); every worker follows it from the start with its own consumer (no group), so
every worker and every restart knows them all. The changes are read by a consumer group of
their own (`<app id>-webhooks`), so across workers each change is handled once, and apart
from the fold: a slow receiver never holds up the alliance view.

Per change and subscription: a POST of the `AllianceChange` JSON with

    X-Radar-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    X-Radar-Change-Id: <change_id>          (dedup: delivery is at least once)
    X-Radar-Subscription: <subscription_id>

A 2xx answer is a delivery; anything else (an error, a time-out, a redirect) is retried after
a random wait up to base * 2^(n-1) (exponential backoff, full jitter), and after
`RADAR_WEBHOOKS_MAX_ATTEMPTS` the change is dead-lettered on `alliances.changes.v1.dlq` with
the subscription id, the attempts and the last error. A target outside the address policy
(`shared/addresses.py`, the one feed fetching uses) is dead-lettered at once.

Each subscription has its own lane (a bounded queue and one task), so one slow receiver
delays only its own deliveries, until its lane is full. The group's offset of a change is
committed only once every subscription has had it delivered or dead-lettered: at least once.
A subscription created after a change was emitted does not get it (a new group starts at the
beginning of the topic).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import TopicPartition

from services.aggregator import metrics as agg_metrics
from services.aggregator.wiring import SERVICE, Aggregator
from shared.addresses import AddressRefused, checked_target
from shared.contracts import AllianceChange, WebhookSubscription
from shared.kafka import Rejected, decode, make_consumer, make_dead_letter, make_producer
from shared.settings import WebhookSettings
from shared.topics import dlq

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Radar-Signature"


# ------------------------------------------------------------------ pure parts


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Radar-Signature value of `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff_delay(attempt: int, base_s: float, max_s: float,
                  rng: random.Random | None = None) -> float:
    """Wait before attempt `attempt + 1`: full jitter over base * 2^(attempt-1), capped."""
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return (rng or random).uniform(0, ceiling)


class OffsetTracker:
    """Per partition, the offsets read and not yet done; the offset to commit is the
    lowest one not done (everything before it is delivered or dead-lettered)."""

    def __init__(self) -> None:
        self._open: dict[int, set[int]] = {}
        self._next: dict[int, int] = {}

    def add(self, partition: int, offset: int) -> None:
        self._open.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def done(self, partition: int, offset: int) -> None:
        self._open.get(partition, set()).discard(offset)

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._open.pop(p, None)
            self._next.pop(p, None)

    def committable(self) -> dict[int, int]:
        return {p: min(self._open[p]) if self._open.get(p) else nxt
                for p, nxt in self._next.items()}


class Subscriptions:
    """The subscriptions as the compacted topic says (latest per id; tombstone removes)."""

    def __init__(self) -> None:
        self.by_id: dict[str, WebhookSubscription] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self.by_id.pop(key.decode(errors="replace"), None)
            return
        sub = decode(WebhookSubscription, value)
        if isinstance(sub, Rejected):
            log.warning("webhooks: ignoring an unreadable subscription %r: %s", key,
                        sub.error)
            return
        self.by_id[sub.subscription_id] = sub

    def matching(self, change: AllianceChange) -> list[WebhookSubscription]:
        return [s for s in self.by_id.values()
                if s.matches(change) and change.emitted_at >= s.created_at]

    def current(self, sub: WebhookSubscription) -> bool:
        """Still subscribed, unchanged (a removed or replaced one gets nothing more)."""
        return self.by_id.get(sub.subscription_id) == sub


async def caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether `consumer` has read every partition up to the end offsets `ends`."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


# ------------------------------------------------------------------ delivery


@dataclass
class Delivery:
    change: AllianceChange
    body: bytes
    partition: int
    offset: int
    key: bytes | None
    subscription: WebhookSubscription


@dataclass
class Lane:
    queue: asyncio.Queue[Delivery]
    task: asyncio.Task[None] | None = None


@dataclass
class Dispatcher:
    agg: Aggregator
    settings: WebhookSettings
    subscriptions: Subscriptions = field(default_factory=Subscriptions)
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    pending: dict[tuple[int, int], int] = field(default_factory=dict)
    lanes: dict[str, Lane] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.settings.concurrency)
        self.allow = self.settings.allowed_networks
        self.ready = asyncio.Event()

    # -- subscriptions

    async def follow_subscriptions(self) -> None:
        """Read the subscription topic from the start, forever; `ready` once caught up
        with its end at start-up."""
        topic = self.agg.topics.webhooks
        consumer = make_consumer(self.agg.kafka, group_id=None,
                                 client_id="radar-webhook-subscriptions", background=True)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(self.agg.topics.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self.subscriptions.apply(record.key, record.value)
                agg_metrics.WEBHOOK_SUBSCRIPTIONS.set(len(self.subscriptions.by_id))
                if not self.ready.is_set() and await caught_up(consumer, ends):
                    log.info("webhooks: %d subscription(s) loaded",
                             len(self.subscriptions.by_id))
                    self.ready.set()
        finally:
            await consumer.stop()

    # -- changes

    async def run(self) -> None:
        follower = asyncio.create_task(self.follow_subscriptions(), name="webhook-subs")
        self.client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                        timeout=httpx.Timeout(self.settings.timeout_s),
                                        limits=httpx.Limits(max_keepalive_connections=0))
        self.producer = make_producer(self.agg.kafka, client_id="radar-webhook-dlq")
        await self.producer.start()
        consumer = make_consumer(self.agg.kafka, group_id=f"{self.agg.settings.app_id}"
                                 "-webhooks", client_id="radar-webhook-dispatcher")
        tracker = self.tracker

        class Revoked(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
                tracker.forget(tp.partition for tp in revoked)  # their new owner redelivers

            async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]
                                             ) -> None:
                return None

        try:
            loaded = asyncio.create_task(self.ready.wait())
            await asyncio.wait({loaded, follower}, return_when=asyncio.FIRST_COMPLETED)
            if not self.ready.is_set():
                loaded.cancel()
                follower.result()  # the follower failed before loading: say why
            await consumer.start()
            consumer.subscribe([self.agg.topics.changes], listener=Revoked())
            committed: dict[int, int] = {}
            while True:
                if follower.done():
                    follower.result()  # its failure stops delivery loudly
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for records in batches.values():
                    for record in records:
                        await self.dispatch(record.partition, record.offset, record.key,
                                            record.value)
                committed = await self.commit(consumer, committed)
        finally:
            follower.cancel()
            for lane in self.lanes.values():
                if lane.task is not None:
                    lane.task.cancel()
            with contextlib.suppress(Exception):
                await consumer.stop()
            await self.producer.stop()
            await self.client.aclose()

    async def dispatch(self, partition: int, offset: int, key: bytes | None,
                       value: bytes | None) -> None:
        self.tracker.add(partition, offset)
        change = decode(AllianceChange, value)
        targets = [] if isinstance(change, Rejected) else self.subscriptions.matching(change)
        if not targets:
            self.tracker.done(partition, offset)
            return
        assert isinstance(change, AllianceChange)
        body = change.model_dump_json().encode()
        self.pending[(partition, offset)] = len(targets)
        for sub in targets:
            # waits only when this subscription's lane is full
            await self.lane(sub.subscription_id).queue.put(
                Delivery(change, body, partition, offset, key, sub))

    def lane(self, subscription_id: str) -> Lane:
        lane = self.lanes.get(subscription_id)
        if lane is None:
            lane = self.lanes[subscription_id] = Lane(asyncio.Queue(self.settings.lane_size))
            lane.task = asyncio.create_task(self.drain(lane), name=f"webhook-{subscription_id}")
        return lane

    async def drain(self, lane: Lane) -> None:
        while True:
            delivery = await lane.queue.get()
            try:
                await self.deliver(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stall the lane: count it, go on
                log.exception("webhooks: delivery failed unexpectedly")
            finally:
                key = (delivery.partition, delivery.offset)
                self.pending[key] = self.pending.get(key, 1) - 1
                if self.pending[key] <= 0:
                    del self.pending[key]
                    self.tracker.done(*key)

    async def deliver(self, d: Delivery) -> None:
        sub, settings = d.subscription, self.settings
        labels = {"subscription": sub.subscription_id}
        error = ""
        attempt = 0
        while attempt < settings.max_attempts:
            if not self.subscriptions.current(sub):
                agg_metrics.WEBHOOK_DELIVERIES.labels(result="dropped", **labels).inc()
                return
            attempt += 1
            try:
                target = await checked_target(sub.url, self.allow)
            except AddressRefused as exc:
                error = f"{exc.reason}: {exc.message}"
                break  # no retry can change the policy's answer
            now = int(time.time())
            headers = target.headers | {
                "Content-Type": "application/json", SIGNATURE_HEADER: sign(sub.secret, d.body,
                                                                           now),
                "X-Radar-Change-Id": d.change.change_id,
                "X-Radar-Subscription": sub.subscription_id,
                "User-Agent": "AllianceRadar-Webhooks/1"}
            started = time.monotonic()
            try:
                async with self.slots:
                    resp = await self.client.post(target.url, content=d.body, headers=headers,
                                                  extensions=target.extensions)
                error = "" if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            agg_metrics.WEBHOOK_LATENCY.labels(**labels).observe(time.monotonic() - started)
            if not error:
                agg_metrics.WEBHOOK_DELIVERIES.labels(result="delivered", **labels).inc()
                return
            agg_metrics.WEBHOOK_DELIVERIES.labels(result="failed_attempt", **labels).inc()
            if attempt < settings.max_attempts:
                await asyncio.sleep(backoff_delay(attempt, settings.backoff_base_s,
                                                  settings.backoff_max_s))
        await self.dead_letter(d, attempt, error)

    async def dead_letter(self, d: Delivery, attempts: int, error: str) -> None:
        sub = d.subscription
        letter = make_dead_letter(
            SERVICE, topic=self.agg.topics.changes, partition=d.partition, offset=d.offset,
            key=d.key, value=d.body,
            rejected=Rejected("webhook_undeliverable", f"subscription {sub.subscription_id} "
                              f"({sub.url}): {attempts} attempt(s), last: {error}"))
        letter = letter.model_copy(update={"subscription_id": sub.subscription_id,
                                           "attempts": attempts})
        wait = 0.1
        while True:  # the offset waits for this record: retry until the broker has it
            try:
                await self.producer.send_and_wait(dlq(self.agg.topics.changes),
                                                  letter.to_bytes(), key=letter.key())
                break
            except KafkaError as exc:
                log.warning("webhooks: dead letter not written (%r); again in %.1fs", exc,
                            wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)
        agg_metrics.WEBHOOK_DELIVERIES.labels(result="dead_lettered",
                                              subscription=sub.subscription_id).inc()

    async def commit(self, consumer: AIOKafkaConsumer, committed: dict[int, int]
                     ) -> dict[int, int]:
        ready = {p: o for p, o in self.tracker.committable().items()
                 if committed.get(p) != o}
        if not ready:
            return committed
        topic = self.agg.topics.changes
        try:
            await consumer.commit({TopicPartition(topic, p): o for p, o in ready.items()})
        except (CommitFailedError, KafkaError) as exc:  # rebalancing: the next owner redoes
            log.info("webhooks: offsets not committed (%r)", exc)
            return committed
        return committed | ready


def register(agg: Aggregator) -> None:
    """Run the dispatcher in the worker, unless webhooks are off or publishing is (a
    replay must not deliver the past again)."""
    hooks = agg.webhooks
    if hooks is None or not hooks.enabled or not agg.settings.publish:
        return

    @agg.app.task
    async def dispatch_webhooks() -> None:
        # A failure (the broker away too long, a bug) restarts delivery from the committed
        # offsets: at least once, never silently stopped.
        while True:
            try:
                await Dispatcher(agg, hooks).run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhooks: the dispatcher failed; starting again in 5 s")
                agg_metrics.WEBHOOK_RESTARTS.inc()
                await asyncio.sleep(5)
