"""Kafka wiring written once: clients per profile and security settings, topic creation,
decoding, dead letters and the at-least-once consume -> process -> produce -> commit loop the
plain-aiokafka services use.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from shared import metrics
from shared.contracts import Contract, DeadLetter
from shared.progress import ProgressWatch
from shared.settings import KafkaSettings, SettingsError, TopicSettings
from shared.waiting import wait_until

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Contract)


# --------------------------------------------------------------------------- security


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """The TLS context every client uses: the CA file (else the system's CAs), the client
    certificate for mutual TLS, hostname checking as configured. A file that cannot be read
    stops the service at start with the variable's name."""
    def read(variable: str, action: Any) -> None:
        try:
            action()
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"invalid configuration in KafkaSettings:\n  {variable}: "
                                f"{exc}") from None

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if kafka.kafka_ssl_ca_file is not None:
        read("RADAR_KAFKA_SSL_CA_FILE",
             lambda: context.load_verify_locations(cafile=str(kafka.kafka_ssl_ca_file)))
    if kafka.kafka_ssl_cert_file is not None:
        password = kafka.kafka_ssl_key_password
        read("RADAR_KAFKA_SSL_CERT_FILE / RADAR_KAFKA_SSL_KEY_FILE",
             lambda: context.load_cert_chain(
                 str(kafka.kafka_ssl_cert_file), str(kafka.kafka_ssl_key_file),
                 password.get_secret_value() if password is not None else None))
    # Chain verification stays on whatever the hostname setting says.
    context.check_hostname = kafka.kafka_ssl_check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def security_options(kafka: KafkaSettings) -> dict[str, Any]:
    """TLS and SASL keyword arguments of every aiokafka client (producer, consumer, admin,
    bare client). Faust gets the same through `shared.faust_app.faust_credentials`."""
    protocol = kafka.kafka_security_protocol
    opts: dict[str, Any] = {"security_protocol": protocol.value}
    if protocol.tls:
        opts["ssl_context"] = ssl_context(kafka)
    if protocol.sasl:
        assert kafka.kafka_sasl_mechanism and kafka.kafka_sasl_password  # settings checked
        opts |= {"sasl_mechanism": kafka.kafka_sasl_mechanism.value,
                 "sasl_plain_username": kafka.kafka_sasl_username,
                 "sasl_plain_password": kafka.kafka_sasl_password.get_secret_value()}
    return opts


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """What every client shares: where the brokers are, how long to wait, how to connect."""
    return {"bootstrap_servers": kafka.bootstrap_servers,
            "request_timeout_ms": kafka.request_timeout_ms, **security_options(kafka)}


# --------------------------------------------------------------------------- clients


def producer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Producer settings per profile.

    Tansu answers ListOffsets(latest) with the start of the last batch + 1, so on the embedded
    broker every batch holds one record (`max_batch_size=1`): end offsets, lag and
    `auto_offset_reset="latest"` stay right. Neither broker profile uses idempotence or
    transactions (Tansu rejects InitProducerId); consumers are idempotent instead.
    """
    opts: dict[str, Any] = {
        **client_options(kafka),
        "acks": "all",
        "enable_idempotence": False,
    }
    if kafka.embedded:
        opts.update(max_batch_size=1, linger_ms=0)
    else:
        opts.update(linger_ms=5, compression_type="gzip")
    return opts


def consumer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Consumer settings per profile.

    Tansu holds every JoinGroup reply for half the session timeout, so the embedded profile
    keeps sessions short (6 s -> 3 s joins) while Apache Kafka gets its usual defaults.
    """
    return {
        **client_options(kafka),
        "session_timeout_ms": kafka.session_timeout,
        "heartbeat_interval_ms": kafka.heartbeat_interval,
        "fetch_max_wait_ms": kafka.fetch_max_wait,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_uncommitted",
    }


def make_producer(kafka: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(client_id=client_id, **producer_options(kafka))


#: Fetch wait of consumers off the news path (the document inbox, followers of the seen and
#: webhook-subscription topics, the change fence's reader). Tansu answers an empty fetch
#: only when its wait runs out, so every consumer polls the broker 1000/wait times a second
#: even when idle (idle stack, CPU of all processes: 7.7 % of one core with every consumer at
#: 100 ms, 43 % at 10 ms, 28 % with the news path at 20 ms). Only the news path needs the
#: short wait.
BACKGROUND_FETCH_MAX_WAIT_MS = 100


def make_consumer(kafka: KafkaSettings, *topics: str, group_id: str | None,
                  client_id: str, background: bool = False,
                  **overrides: Any) -> AIOKafkaConsumer:
    """`background`: a consumer nothing waits on within a second (see
    BACKGROUND_FETCH_MAX_WAIT_MS)."""
    opts = consumer_options(kafka) | overrides
    if background:
        opts["fetch_max_wait_ms"] = max(opts["fetch_max_wait_ms"], BACKGROUND_FETCH_MAX_WAIT_MS)
    return AIOKafkaConsumer(*topics, group_id=group_id, client_id=client_id, **opts)


def make_admin(kafka: KafkaSettings, client_id: str = "radar-admin") -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(client_id=client_id, **client_options(kafka))


def make_client(kafka: KafkaSettings, client_id: str = "radar-probe",
                **overrides: Any) -> AIOKafkaClient:
    """A bare client (metadata only): readiness probes."""
    return AIOKafkaClient(client_id=client_id, **(client_options(kafka) | overrides))


async def ensure_topics(kafka: KafkaSettings, topics: TopicSettings,
                        names: Sequence[str], compacted: Sequence[str] | None = None) -> None:
    """Create missing topics (idempotent; racing creators are fine), compacted as the topic
    registry says (or as `compacted` lists). A service passes `topics.created_by(service)`.
    Waits for the broker first: a service (re)started while the broker is briefly
    unreachable waits for it instead of exiting (found by the chaos suite: a restart during
    a broker outage)."""
    compact = topics.compacted() if compacted is None else frozenset(compacted)
    deadline = time.monotonic() + 120.0
    while True:
        await wait_for_broker(kafka, timeout=max(1.0, deadline - time.monotonic()))
        try:
            await _create_missing(kafka, topics, names, compact)
            return
        except KafkaError as exc:
            # The broker answered the probe and went away before the admin request (found
            # by the chaos suite: a link cut right after a restart): wait for it again.
            if isinstance(exc, TopicAlreadyExistsError) or time.monotonic() > deadline:
                raise
            log.warning("creating topics failed (%s); waiting for the broker again", exc)


async def _create_missing(kafka: KafkaSettings, topics: TopicSettings, names: Sequence[str],
                          compact: frozenset[str]) -> None:
    admin = make_admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if not missing:
            return
        new = [NewTopic(n, topics.partitions, topics.replication,
                        topic_configs={"cleanup.policy": "compact"} if n in compact else {})
               for n in missing]
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
    finally:
        await admin.close()


async def wait_for_broker(bootstrap_servers: str | KafkaSettings,
                          timeout: float = 30.0) -> None:
    """Return once the broker answers a metadata request, else raise TimeoutError. Given
    settings, it connects as the services do (TLS, SASL); given an address, in plain TCP
    whatever the environment says (the embedded broker's own listener)."""
    kafka = bootstrap_servers if isinstance(bootstrap_servers, KafkaSettings) else \
        KafkaSettings.model_construct(bootstrap_servers=bootstrap_servers)

    async def answers() -> bool:
        client = make_client(kafka, request_timeout_ms=2000)
        try:
            await client.bootstrap()
            await client.fetch_all_metadata()
            return True
        finally:
            await client.close()

    # Refused connections are expected while the broker starts; don't log each one.
    quiet = logging.getLogger("aiokafka")
    saved = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        await wait_until(answers, timeout=timeout, interval=0.1, retry_on=(KafkaError, OSError),
                         message=lambda last: f"no Kafka broker answered at "
                         f"{kafka.bootstrap_servers}: {last}")
    finally:
        quiet.setLevel(saved)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, *, timeout: float,
                           message: str | None = None) -> list[TopicPartition]:
    """Every partition of `topic`, once the consumer's metadata has it (a topic another
    service is still creating has none yet); TimeoutError after `timeout`."""
    async def partitions() -> set[int] | None:
        await consumer.topics()
        return consumer.partitions_for_topic(topic)

    found = await wait_until(partitions, timeout=timeout, interval=0.2,
                             message=message or f"topic {topic} has no partitions")
    return [TopicPartition(topic, p) for p in sorted(found)]


async def assigned_consumer(kafka: KafkaSettings, topic: str, *, from_beginning: bool,
                            client_id: str, timeout: float = 30.0) -> AIOKafkaConsumer:
    """A started, group-less consumer assigned every partition of `topic` (no join wait, no
    offsets), at the beginning or the end. TimeoutError when the topic does not appear."""
    consumer = make_consumer(kafka, group_id=None, client_id=client_id)
    try:
        await consumer.start()
        tps = await topic_partitions(consumer, topic, timeout=timeout,
                                     message=f"topic {topic} does not exist yet; is the "
                                     "stack running?")
    except BaseException:
        await consumer.stop()
        raise
    consumer.assign(tps)
    if from_beginning:
        await consumer.seek_to_beginning(*tps)
    else:
        await consumer.seek_to_end(*tps)
    return consumer


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Rejected:
    """Why a record cannot be processed: the reason label and a readable message."""

    reason: str
    error: str


def decode(model: type[M], raw: bytes | None) -> M | Rejected:
    """Bytes -> contract model, or a `Rejected` naming what is wrong (never raises)."""
    if raw is None:
        return Rejected("empty_record", "record has no value")
    try:
        return model.model_validate_json(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return Rejected("invalid_json", f"not valid JSON: {first['msg']}")
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        return Rejected("schema_violation", f"{model.__name__}: {where}: {first['msg']} "
                        f"({exc.error_count()} error(s))")


#: Raw bytes kept in a dead letter. Base64 makes a value 4/3 larger, so an input record near
#: the broker's 1 MB message limit gave a dead letter over it: the send failed and took the
#: service down (found by fuzzing). The original stays on its topic at the recorded offset.
MAX_DEAD_LETTER_BYTES = 256 * 1024


def make_dead_letter(service: str, *, topic: str, partition: int | None, offset: int | None,
                     key: bytes | None, value: bytes | None, rejected: Rejected) -> DeadLetter:
    """The dead letter of one record a service cannot process (logged and counted here, so
    every service reports its dead letters alike)."""
    log.warning("%s: dead-lettering %s[%s]@%s: %s", service, topic, partition, offset,
                rejected.error)
    metrics.PIPELINE.dlq.labels(service, topic, rejected.reason).inc()
    error = rejected.error[:2000]
    cut = [f"{name} cut to its first {MAX_DEAD_LETTER_BYTES} of {len(raw)} bytes"
           for name, raw in (("key", key), ("value", value))
           if raw is not None and len(raw) > MAX_DEAD_LETTER_BYTES]
    if cut:
        error += f" [record {'; '.join(cut)}]"
    return DeadLetter(service=service, topic_name=topic, partition=partition, offset=offset,
                      record_key=key[:MAX_DEAD_LETTER_BYTES] if key is not None else None,
                      record_value=value[:MAX_DEAD_LETTER_BYTES] if value is not None else None,
                      reason=rejected.reason, error=error)


def dead_letter(service: str, record: ConsumerRecord, rejected: Rejected) -> DeadLetter:
    return make_dead_letter(service, topic=record.topic, partition=record.partition,
                            offset=record.offset, key=record.key, value=record.value,
                            rejected=rejected)


# --------------------------------------------------------------------------- the loop


@dataclass
class Outgoing:
    topic: str
    message: Contract


@dataclass
class Processed:
    """What processing one input record produced: its outputs, or why it is rejected."""

    outputs: list[Outgoing] = field(default_factory=list)
    rejected: Rejected | None = None


BatchHandler = Callable[[list[Contract]], Awaitable[list[Processed]]]


@dataclass
class _Chunk:
    """One poll's records on their way: the offsets to commit once it and every chunk polled
    before it are published."""

    offsets: dict[TopicPartition, int]
    published: bool = False
    task: asyncio.Task[None] | None = None


class StreamProcessor:
    """consume -> decode -> handle -> produce -> commit, at least once.

    Offsets are committed only after every output and dead letter of a batch is acknowledged,
    so a crash re-delivers rather than loses; downstream dedups on deterministic ids. A record
    that does not decode, or whose processing raises, becomes a dead letter on
    `<input>.dlq`, and the loop goes on.

    Up to `concurrency` polls are handled at once (the extractor: one per worker process),
    so a record that arrives while a batch is being parsed goes to an idle worker at once
    instead of waiting for the whole batch, and its outputs are published as soon as it is
    done. Offsets are still committed in poll order: a poll's offsets once it and every poll
    before it are acknowledged. (Outputs of one partition may so leave in another order than
    their inputs came; the consumers fold by publication time, not arrival.)
    """

    #: Polls taken but not yet committed, at most this many per handling slot (a stuck
    #: acknowledgement stops the polling instead of filling memory).
    MAX_UNCOMMITTED_PER_SLOT = 4

    def __init__(self, *, service: str, kafka: KafkaSettings, input_topic: str,
                 model: type[Contract], group_id: str, handler: BatchHandler,
                 batch_size: int = 32, concurrency: int = 1,
                 background: bool = False) -> None:
        self.service = service
        self.input_topic = input_topic
        self.dlq_topic = TopicSettings.dlq(input_topic)
        self.model = model
        self.handler = handler
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self.consumer = make_consumer(kafka, input_topic, group_id=group_id,
                                      client_id=f"radar-{service}", background=background)
        self.producer = make_producer(kafka, client_id=f"radar-{service}")
        self._started = False
        self._lag_refreshed = 0.0
        self.progress = ProgressWatch(kafka.stall_after_s)
        self._committed: dict[TopicPartition, int | None] = {}

    @property
    def ready(self) -> bool:
        """Started, assigned, and no assigned partition stalled (behind its end with a
        committed offset that has not moved for RADAR_STALL_AFTER_S)."""
        return (self._started and bool(self.consumer.assignment())
                and not self.progress.stalls(time.monotonic()))

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.producer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll while a handling slot is free; each poll is handled, published and
        committed by its own task. On `stop`, what was polled is finished first; a failed
        send or commit ends the loop with its error (the service restarts and reads again
        from the last commit)."""
        self._slots = asyncio.Semaphore(self.concurrency)
        self._room = asyncio.Semaphore(self.MAX_UNCOMMITTED_PER_SLOT * self.concurrency)
        self._pending: collections.deque[_Chunk] = collections.deque()
        self._commit_lock = asyncio.Lock()
        self._failure: BaseException | None = None
        try:
            while not stop.is_set() and self._failure is None:
                await self._room.acquire()
                await self._slots.acquire()
                # Whatever is waiting, over every assigned partition, up to batch_size: a
                # short queue is processed at once, a long one in capped batches.
                batches = await self.consumer.getmany(timeout_ms=500,
                                                      max_records=self.batch_size)
                records = [r for rs in batches.values() for r in rs]
                if not records or self._failure is not None:
                    self._slots.release()
                    self._room.release()
                else:
                    chunk = _Chunk({tp: rs[-1].offset + 1 for tp, rs in batches.items() if rs})
                    self._pending.append(chunk)
                    chunk.task = asyncio.create_task(self._complete(chunk, records))
                await self._refresh_lag()
            tasks = [c.task for c in self._pending if c.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
        except BaseException:
            for chunk in self._pending:
                if chunk.task is not None:
                    chunk.task.cancel()
            raise
        if self._failure is not None:
            raise self._failure

    async def _complete(self, chunk: _Chunk, records: list[ConsumerRecord]) -> None:
        """Handle one poll (holding a slot), publish what it caused, commit what is done."""
        try:
            try:
                outcomes = await self._compute(records)
            finally:
                self._slots.release()
            await self._publish(outcomes)
            chunk.published = True
            await self._commit_published()
        except asyncio.CancelledError:
            raise  # the loop is going down anyway: this poll is read again after a restart
        except Exception as exc:
            if self._failure is None:
                self._failure = exc
                log.error("%s: publishing or committing failed: %r", self.service, exc)
            # Wake the polling loop wherever it waits, so that it ends.
            self._slots.release()
            self._room.release()
            raise

    async def _commit_published(self) -> None:
        """Commit the offsets of the published polls at the head (in poll order)."""
        async with self._commit_lock:
            offsets: dict[TopicPartition, int] = {}
            while self._pending and self._pending[0].published:
                offsets |= self._pending.popleft().offsets
                self._room.release()
            # A partition taken away by a rebalance meanwhile is not ours to commit: its new
            # owner reads it again from the last commit (at least once).
            assigned = self.consumer.assignment()
            offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
            if offsets:
                await self.consumer.commit(offsets)
                self._committed.update(offsets)

    async def _compute(self, records: list[ConsumerRecord]
                       ) -> list[tuple[ConsumerRecord, Processed]]:
        """Decode and handle: what each record causes, nothing sent yet."""
        m = metrics.PIPELINE
        m.consumed.labels(self.service, self.input_topic).inc(len(records))
        out: list[tuple[ConsumerRecord, Processed]] = []
        decoded: list[tuple[ConsumerRecord, Contract]] = []
        for record in records:
            result = decode(self.model, record.value)
            if isinstance(result, Rejected):
                out.append((record, Processed(rejected=result)))
            else:
                decoded.append((record, result))
        with m.processing_seconds.labels(self.service).time():
            outcomes = await self._handle([msg for _, msg in decoded])
        out += [(record, outcome)
                for (record, _), outcome in zip(decoded, outcomes, strict=True)]
        # Dead letters and outputs go out in input order.
        position = {id(record): i for i, record in enumerate(records)}
        return sorted(out, key=lambda pair: position[id(pair[0])])

    async def _publish(self, outcomes: list[tuple[ConsumerRecord, Processed]]) -> None:
        m = metrics.PIPELINE
        futures: list[asyncio.Future[Any]] = []
        for record, outcome in outcomes:
            if outcome.rejected is not None:
                futures.append(await self._send_dead(record, outcome.rejected))
            for out in outcome.outputs:
                futures.append(await self.producer.send(out.topic, out.message.to_bytes(),
                                                        key=out.message.key()))
                m.produced.labels(self.service, out.topic).inc()
        if futures:
            await asyncio.gather(*futures)

    async def _handle(self, messages: list[Contract]) -> list[Processed]:
        if not messages:
            return []
        try:
            return await self.handler(messages)
        except Exception:
            if len(messages) == 1:
                log.exception("%s: processing failed", self.service)
                return [Processed(rejected=Rejected("processing_error",
                                                  "processing raised; see service log"))]
            # Isolate the poison record: process one by one.
            return [(await self._handle([msg]))[0] for msg in messages]

    async def _send_dead(self, record: ConsumerRecord, rejected: Rejected) -> asyncio.Future:
        letter = dead_letter(self.service, record, rejected)
        return await self.producer.send(self.dlq_topic, letter.to_bytes(), key=letter.key())

    async def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_refreshed < 1.0:
            return
        self._lag_refreshed = now
        assigned = self.consumer.assignment()
        self.progress.keep_only({(tp.topic, tp.partition) for tp in assigned})
        for tp in set(self._committed) - assigned:
            del self._committed[tp]
        for tp in assigned:
            position = await record_lag(self.service, self.consumer, tp)
            if tp not in self._committed:  # newly assigned: what the group committed
                with contextlib.suppress(KafkaError):
                    self._committed[tp] = await self.consumer.committed(tp)
            self.progress.observe(tp.topic, tp.partition, self._committed.get(tp),
                                  self.consumer.highwater(tp), now, position)
        metrics.PIPELINE.stalled.labels(self.service).set(len(self.progress.stalls(now)))


async def record_lag(service: str, consumer: AIOKafkaConsumer, tp: TopicPartition
                     ) -> int | None:
    """Lag = high watermark - position, per partition (right on Tansu thanks to batch size 1).
    Returns the position (None when unknown)."""
    highwater = consumer.highwater(tp)
    if highwater is None:
        return None
    with contextlib.suppress(KafkaError, AssertionError):
        position = await consumer.position(tp)
        metrics.PIPELINE.lag.labels(service, tp.topic, str(tp.partition)).set(
            max(0, highwater - position))
        return position
    return None
