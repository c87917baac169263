"""Faust app factory with the broker profile and the Kafka security settings applied in one
place."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import monotonic
from typing import Any

import faust
from aiokafka.errors import KafkaConnectionError
from faust.transport.drivers import aiokafka as faust_aiokafka

from shared.kafka import ssl_context
from shared.metrics import SEND_RETRIES
from shared.settings import KafkaSettings, TopicSettings
from shared.waiting import wait_until

log = logging.getLogger(__name__)


#: How long a starting Kafka client of the Faust app keeps trying to reach the broker (as
#: long as `ensure_topics` waits for it).
BROKER_START_TIMEOUT_S = 120.0


async def start_when_broker_answers(start: Callable[[], Awaitable[Any]],
                                    stop: Callable[[], Awaitable[Any]], *, what: str) -> None:
    """Start a fresh aiokafka client with `start` until its bootstrap reaches the broker.

    aiokafka's `start()` tries each bootstrap address once and raises when none answers, and
    Faust lets that end the worker. A service restarted during a short broker outage would
    then exit, although `ensure_topics` had just seen the broker (found by the chaos suite's
    short form: the outage began between the two). Each failed attempt's client is stopped
    before the next is built."""

    async def attempt() -> bool:
        try:
            await start()
        except KafkaConnectionError as exc:
            log.warning("%s: broker not reachable yet (%s); retrying", what, exc)
            await stop()
            raise
        return True

    await wait_until(attempt, timeout=BROKER_START_TIMEOUT_S, interval=1.0,
                     message=f"{what} could not reach the broker",
                     retry_on=(KafkaConnectionError,))


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait from settings, a start that waits for the
    broker, and the seek fix below."""

    async def on_start(self) -> None:
        async def start() -> None:
            self._consumer = self._create_consumer(loop=self.thread_loop)
            self.time_started = monotonic()
            await self._consumer.start()

        async def stop() -> None:
            if self._consumer is not None:
                await self._consumer.stop()

        await start_when_broker_answers(start, stop, what="Faust consumer")

    def _create_worker_consumer(self, transport: Any) -> Any:
        """The fetch-wait workaround, all of it: Faust hard-codes `fetch_max_wait_ms=1500`
        when it builds the worker's aiokafka consumer, and a fetch that waits that long for
        more records is most of an event's latency through the aggregator. aiokafka reads
        the value when it builds its fetcher at start(), after this, and has no public
        setter; so the private attribute is set here to RADAR_FETCH_MAX_WAIT_MS (per
        profile, `KafkaSettings.fetch_max_wait`), which `RadarApp` carries."""
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        return consumer

    async def seek_to_committed(self) -> Any:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Any:
        """aiokafka's `seek_to_committed` leaves a partition without a committed offset
        where its fetch position happens to be (it seeks only to offsets > 0), so records
        fetched and dropped before (see `_Consumer._getmany`) are never read again. Such a
        stream partition has had nothing committed: it starts from the beginning."""
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        never = [tp for tp, offset in committed.items()
                 if not offset and tp.topic not in changelogs]
        if never:
            await consumer.seek_to_beginning(*never)
        return committed


class _Consumer(faust_aiokafka.Consumer):
    """Faust's consumer, with the two defects that left a partition stuck behind its
    committed offset after a rebalance (found with the chaos suite, see README "Failure
    model") fixed:

    1. Faust hands its *live* set of active partitions to the consumer thread. A rebalance
       pauses partitions by emptying that very set, and aiokafka's `fetched_records` takes an
       empty set to mean every partition: it returns (and moves the position past) records of
       paused partitions, which Faust's `getmany` then skips because they are not active.
       Those records never reach an agent; the position is at the end, so they are not
       fetched again. We pass a copy, and fetch nothing when nothing is active.
    2. `_new_offset` commits past a single unacknowledged offset at the head (it waits only
       when the first acked offset is more than one past the committed one), so a record
       that never reached the agent could be skipped for good. We wait until the record at
       the committed offset itself is acked.
    """

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        if active_partitions is not None:
            active_partitions = set(active_partitions)
            if not active_partitions:
                return {}
        return await super()._getmany(active_partitions, timeout)

    def _new_offset(self, tp: Any) -> Any:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None:
            head = min(acked)
            if head > committed and not self._gap[tp].overlaps(committed, head):
                return None  # the record at `committed` is not done yet
        return super()._new_offset(tp)


class _Producer(faust_aiokafka.Producer):
    """Faust's producer, with a start that waits for the broker (see
    `start_when_broker_answers`)."""

    async def on_start(self) -> None:
        # faust_aiokafka.Producer.on_start, with the client's start retried.
        await super(faust_aiokafka.Producer, self).on_start()

        async def start() -> None:
            self._producer = self._new_producer()
            await self._producer.start()

        async def stop() -> None:
            if self._producer is not None:
                await self._producer.stop()

        await start_when_broker_answers(start, stop, what="Faust producer")
        self.beacon.add(self._producer)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


class RadarApp(faust.App):
    """faust.App on the fixed transport above, with the consumer's fetch wait (ms)."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **options: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **options)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def faust_credentials(kafka: KafkaSettings) -> faust.auth.Credentials | None:
    """The same TLS and SASL settings the plain aiokafka clients get
    (`shared.kafka.security_options`), in Faust's terms: Faust hands them to its producer,
    its consumer and the client that creates its topics."""
    protocol = kafka.kafka_security_protocol
    context = ssl_context(kafka) if protocol.tls else None
    if protocol.sasl:
        assert kafka.kafka_sasl_mechanism and kafka.kafka_sasl_password  # settings checked
        return faust.SASLCredentials(username=kafka.kafka_sasl_username,
                                     password=kafka.kafka_sasl_password.get_secret_value(),
                                     mechanism=kafka.kafka_sasl_mechanism.value,
                                     ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def faust_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Faust settings per profile.

    Embedded (Tansu): one record per producer batch, or changelog restore stops short
    (Tansu's end offset ignores all but the first record of a batch: a table of 100 updates
    came back as 80); a 6 s session, because Tansu holds JoinGroup for half of it (Faust's
    60 s default means a 30 s stall at every start and rebalance). No transactions anywhere:
    at-least-once plus idempotent state.
    """
    opts: dict[str, Any] = {
        "processing_guarantee": "at_least_once",
        "producer_acks": -1,
        "broker_request_timeout": kafka.request_timeout_ms / 1000,
        "broker_credentials": faust_credentials(kafka),
        "broker_session_timeout": kafka.session_timeout / 1000,
        "broker_heartbeat_interval": kafka.heartbeat_interval / 1000,
        # Tansu's end offsets are unreliable for batches; avoid `latest` resets (and on
        # Apache Kafka a new group reads what is retained, as the plain consumers do).
        "consumer_auto_offset_reset": "earliest",
    }
    if kafka.embedded:
        opts |= {"producer_max_batch_size": 1, "producer_linger_ms": 0}
    return opts


def make_app(app_id: str, *, kafka: KafkaSettings, topics: TopicSettings, host: str,
             port: int, data_dir: Path, advertised_host: str | None = None,
             **extra: Any) -> faust.App:
    if advertised_host is None:
        advertised_host = socket.gethostname() if host in ("0.0.0.0", "::") else host
    servers = ";".join(f"kafka://{s.strip()}" for s in kafka.bootstrap_servers.split(","))
    app = RadarApp(
        app_id,
        fetch_max_wait_ms=kafka.fetch_max_wait,
        broker=servers,
        store="memory://",  # tables are rebuilt from their changelog topics on start
        datadir=str(data_dir),
        topic_partitions=topics.partitions,
        topic_replication_factor=topics.replication,
        web_enabled=True,
        web_bind=host,
        web_host=advertised_host,
        web_port=port,
        canonical_url=f"http://{advertised_host}:{port}",
        web_in_thread=False,
        autodiscover=False,
        **faust_options(kafka) | extra,
    )
    return app


# --------------------------------------------------------------------------- acknowledged writes
#
# Faust commits an input offset once its event is acked, and acks it when the agent moves on.
# Its own sends do not hold that back: `topic.send()` returns once the record is queued, and a
# table write (`table[key] = v`) only puts the changelog record into the producer's buffer.
# Before committing, Faust flushes that buffer with `ProducerBuffer.flush()`, which gives up
# as soon as one record takes longer than 0.1 s to hand over, and `asyncio.wait`s the rest
# without looking at failures. So under load, a slow broker or a cut connection, an offset is
# committed while the records it caused are still queued: a SIGKILL then loses them for good
# (the event is never redelivered). The agents below own that ordering instead: every record
# an event causes is acknowledged by the broker before the event is acked.

SEND_RETRY_MAX_S = 5.0


async def deliver(sends: list[Callable[[], Awaitable[Awaitable[Any]]]], *, what: str) -> None:
    """Run each send and wait until the broker has acknowledged its record; a send that
    fails (connection lost, timeout) is made again, with backoff, until it is acknowledged.
    A failed send may still have been written (its answer lost): at least once."""
    pending = list(sends)
    backoff = 0.1
    while pending:
        started: list[tuple[Callable[[], Awaitable[Awaitable[Any]]], Any]] = []
        for send in pending:
            try:
                started.append((send, await send()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # queued nothing: send again
                started.append((send, exc))
        results = await asyncio.gather(
            *(_acknowledged(f) for _, f in started), return_exceptions=True)
        pending = [send for (send, _), result in zip(started, results, strict=True)
                   if isinstance(result, BaseException)]
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
        if pending:
            errors = {repr(r) for r in results if isinstance(r, BaseException)}
            log.warning("%s: %d record(s) not acknowledged (%s); sending again in %.1fs",
                        what, len(pending), "; ".join(sorted(errors))[:300], backoff)
            SEND_RETRIES.labels(what).inc(len(pending))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, SEND_RETRY_MAX_S)


async def _acknowledged(sent: Any) -> Any:
    if isinstance(sent, BaseException):
        raise sent
    return await sent


def record_send(topic: faust.TopicT, key: bytes, value: bytes, partition: int | None = None,
                headers: dict[str, bytes] | None = None
                ) -> Callable[[], Awaitable[Awaitable[Any]]]:
    """A send of one record to `topic`, for `deliver`."""
    return lambda: topic.send(key=key, value=value, partition=partition, headers=headers)


def changelog_send(table: faust.Table, key: Any, value: Any, partition: int
                   ) -> Callable[[], Awaitable[Awaitable[Any]]]:
    """A send of the changelog record of `table[key] = value`, for `deliver`: what Faust's
    `on_key_set` queues, but sent now so that its acknowledgement can be awaited."""
    return lambda: table.changelog_topic.send(
        key=key, value=value, partition=partition, key_serializer=table.key_serializer,
        value_serializer=table.value_serializer, callback=table._on_changelog_sent)


def ack(app: faust.App, stream: faust.StreamT, event: faust.EventT, time_in: float) -> None:
    """Ack an event of a `noack()` stream, with the sensor calls Faust makes when it acks
    one itself (event runtime, active events and messages), so its metrics stay whole."""
    message = event.message
    # The sensor delegate hands each sensor its own state, as on_stream_event_in made it.
    state = {sensor: {"time_in": time_in, "time_out": None, "time_total": None}
             for sensor in app.sensors}
    last = event.ack()
    app.sensors.on_stream_event_out(message.tp, message.offset, stream, event, state)
    if last:
        app.sensors.on_message_out(message.tp, message.offset, message)


async def put_acknowledged(table: faust.Table, key: Any, value: Any, partition: int) -> None:
    """`table[key] = value` whose changelog record the broker has acknowledged when this
    returns; the local copy changes only then, so what a worker answers is what a restarted
    worker restores."""
    await deliver([changelog_send(table, key, value, partition)], what=f"{table.name} changelog")
    table.data[key] = value
    table._sensor_on_set(table, key, value)  # Faust's table metrics, as on_key_set does
