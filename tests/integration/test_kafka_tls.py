"""The whole pipeline over TLS. The embedded broker has no TLS of its own (PLATFORM.md), so
Debian's stunnel terminates TLS in front of it and the broker advertises stunnel's address:
every Kafka connection of every service (ingestor, extractor, the Faust aggregator) goes
through the terminator, with mutual TLS (client certificate required) and hostname checks,
under a CA made for this test. A client without the CA, without a client certificate, or
connecting by a name the certificate lacks, is refused. `make test` installs stunnel4."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.cli.stack import Stack
from shared.broker import EmbeddedBroker, free_port, terminate
from shared.contracts import AllianceChange
from shared.kafka import make_consumer, wait_for_broker
from shared.settings import KafkaSettings
from tests.helpers import async_wait_until, wait_until
from tests.tls import Pki, make_pki

INSTALL_HINT = "run `make test` (installs Debian's stunnel4) or `apt-get install stunnel4`"
WRITE_TOKEN, READ_TOKEN = "tls-test-write-token-0123456789", "tls-test-read-token-0123456789"
STORY = {"id": "tls-1", "published_at": "2024-06-01T00:00:00Z",
         "text": "Toyota Motor Corp and Mazda Motor Corp signed an agreement to jointly "
                 "develop hydrogen engines, the companies said."}


@dataclass
class TlsBroker:
    pki: Pki
    tls_address: str  # localhost:PORT, stunnel
    plain_port: int  # the broker's own listener
    stunnel_log: Path

    def settings(self, **overrides: object) -> KafkaSettings:
        values = {"bootstrap_servers": self.tls_address, "profile": "embedded",
                  "kafka_security_protocol": "SSL", "kafka_ssl_ca_file": self.pki.ca,
                  "kafka_ssl_cert_file": self.pki.client_cert,
                  "kafka_ssl_key_file": self.pki.client_key}
        return KafkaSettings.model_validate(values | overrides)

    def env(self) -> dict[str, str]:
        return {"RADAR_BOOTSTRAP_SERVERS": self.tls_address,
                "RADAR_KAFKA_SECURITY_PROTOCOL": "SSL",
                "RADAR_KAFKA_SSL_CA_FILE": str(self.pki.ca),
                "RADAR_KAFKA_SSL_CERT_FILE": str(self.pki.client_cert),
                "RADAR_KAFKA_SSL_KEY_FILE": str(self.pki.client_key)}


def _stunnel(pki: Pki, accept: int, connect: int, folder: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("stunnel4") or shutil.which("stunnel")
    if binary is None:
        pytest.fail(f"stunnel is not on PATH: {INSTALL_HINT}", pytrace=False)
    config = folder / "stunnel.conf"
    config.write_text(f"""foreground = yes
pid =
debug = info
output = {folder / "stunnel.log"}

[kafka]
accept = 127.0.0.1:{accept}
connect = 127.0.0.1:{connect}
cert = {pki.server_cert}
key = {pki.server_key}
CAfile = {pki.ca}
requireCert = yes
verifyChain = yes
""")
    from shared.broker import die_with_parent

    proc = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    def listening() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"stunnel exited: {(folder / 'stunnel.log').read_text()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", accept)) == 0

    wait_until(listening, 10, 0.05, "stunnel listening")
    return proc


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    folder = tmp_path_factory.mktemp("tls")
    pki = make_pki(folder / "pki", server_names=("localhost",))
    plain, tls = free_port(), free_port()
    terminator = _stunnel(pki, tls, plain, folder)
    broker = TlsBroker(pki, f"localhost:{tls}", plain, folder / "stunnel.log")
    embedded = EmbeddedBroker(port=plain, log_path=folder / "broker.log",
                              advertised=broker.tls_address)
    try:
        embedded.start(probe=broker.settings())
        yield broker
    finally:
        embedded.stop()
        terminate(terminator)


def test_the_whole_pipeline_runs_over_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    ports = {n: free_port() for n in ("ingestor", "extractor", "aggregator")}
    stack = Stack(run_dir=tmp_path / "stack", bootstrap_servers=tls_broker.tls_address,
                  ports=ports, extra_env=tls_broker.env() | {
                      "RADAR_PROFILE": "embedded",
                      "RADAR_INGESTOR_TOKEN": WRITE_TOKEN, "RADAR_API_TOKEN": READ_TOKEN,
                      "RADAR_INGESTOR_FEEDS_FILE": str(tmp_path / "feeds.toml")})
    started = time.monotonic()
    with stack:
        stack.wait_healthy(timeout=120)
        healthy = time.monotonic() - started
        answer = httpx.post(stack.services["ingestor"].base_url + "/articles",
                            content=json.dumps(STORY), timeout=30,
                            headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
        assert answer.status_code == 202 and answer.json()["published"] == 1, answer.text
        api = stack.services["aggregator"].base_url + "/alliances"

        def in_view() -> list[dict]:
            resp = httpx.get(api, timeout=10, headers={"Authorization": f"Bearer {READ_TOKEN}"})
            return resp.json()["alliances"] if resp.status_code == 200 else []

        rows = wait_until(in_view, 60, 0.2, "the alliance in the view over TLS")
        through = time.monotonic() - started
        assert [(r["alliance_id"], r["stage"]) for r in rows] == [("mazda+toyota", "agreed")]

        # A plain Kafka consumer of the change feed, over the same TLS settings.
        async def change() -> AllianceChange:
            consumer = make_consumer(tls_broker.settings(), "alliances.changes.v1",
                                     group_id=None, client_id="tls-test")
            await consumer.start()
            try:
                async def first() -> AllianceChange | None:
                    batches = await consumer.getmany(timeout_ms=500)
                    values = [r.value for rs in batches.values() for r in rs]
                    return AllianceChange.model_validate_json(values[0]) if values else None

                return await async_wait_until(first, 30, 0, "a change over TLS")
            finally:
                await consumer.stop()

        assert asyncio.run(change()).alliance_id == "mazda+toyota"
    log = tls_broker.stunnel_log.read_text()
    accepted = log.count("accepted connection from")
    print(f"TLS pipeline: stack healthy in {healthy:.1f}s, article in the view after "
          f"{through:.1f}s; stunnel accepted {accepted} TLS connections")
    # Producers, consumers, admin clients and Faust's connections of three services.
    assert accepted >= 10


def _probe(settings: KafkaSettings) -> None:
    asyncio.run(wait_for_broker(settings, timeout=4))


def test_clients_without_the_ca_or_a_certificate_are_refused(tls_broker: TlsBroker) -> None:
    host, port = tls_broker.tls_address.split(":")
    # The system's CAs (no CA file) do not know the test CA: the handshake fails.
    with (socket.create_connection((host, int(port)), timeout=5) as raw,
          pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed")):
        ssl.create_default_context().wrap_socket(raw, server_hostname=host)
    for refused in (tls_broker.settings(kafka_ssl_ca_file=None),
                    tls_broker.settings(kafka_ssl_ca_file=tls_broker.pki.other_ca),
                    # mutual TLS: no client certificate, no connection
                    tls_broker.settings(kafka_ssl_cert_file=None, kafka_ssl_key_file=None),
                    # the certificate names localhost, not 127.0.0.1
                    tls_broker.settings(bootstrap_servers=f"127.0.0.1:{port}"),
                    # plain Kafka protocol on the TLS port
                    KafkaSettings(bootstrap_servers=tls_broker.tls_address)):
        with pytest.raises(TimeoutError, match="no Kafka broker answered"):
            _probe(refused)
    # The right CA and certificate, and the hostname check off, connect by address too.
    _probe(tls_broker.settings(bootstrap_servers=f"127.0.0.1:{port}",
                               kafka_ssl_check_hostname=False))

