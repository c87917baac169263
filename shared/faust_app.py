"""Faust app factory with the broker profile and the Kafka security settings applied in one
place."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from shared.kafka import ssl_context
from shared.settings import KafkaSettings, TopicSettings


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust hard-codes `fetch_max_wait_ms=1500`; a fetch that waits that long for more
    records is most of an event's latency through the aggregator. Take it from settings."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when it builds its fetcher at start(); no public setter.
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class RadarApp(faust.App):
    """faust.App whose Kafka consumer takes its fetch wait from settings."""

    fetch_max_wait_ms: int = 1500

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
    }
    if kafka.embedded:
        opts |= {
            "producer_max_batch_size": 1,
            "producer_linger_ms": 0,
            "broker_session_timeout": kafka.session_timeout / 1000,
            "broker_heartbeat_interval": kafka.heartbeat_interval / 1000,
            # Tansu's end offsets are unreliable for batches; avoid `latest` resets.
            "consumer_auto_offset_reset": "earliest",
        }
    else:
        opts |= {
            "broker_session_timeout": kafka.session_timeout / 1000,
            "broker_heartbeat_interval": kafka.heartbeat_interval / 1000,
            "consumer_auto_offset_reset": "earliest",
        }
    return opts


def make_app(app_id: str, *, kafka: KafkaSettings, topics: TopicSettings, host: str,
             port: int, data_dir: Path, advertised_host: str | None = None,
             **extra: Any) -> faust.App:
    if advertised_host is None:
        advertised_host = socket.gethostname() if host in ("0.0.0.0", "::") else host
    servers = ";".join(f"kafka://{s.strip()}" for s in kafka.bootstrap_servers.split(","))
    app = RadarApp(
        app_id,
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
    app.fetch_max_wait_ms = kafka.fetch_max_wait
    return app
