"""Kafka TLS and SASL settings: validated at start, and handed to every client from one place
(shared/kafka.py for aiokafka, shared/faust_app.py for Faust). The TLS path is driven end to
end through a TLS terminator in tests/integration/test_kafka_tls.py; SASL cannot be (the
embedded broker has none), so here each client's own configuration is inspected."""

from __future__ import annotations

import ssl
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from services.ingestor.dedup import SeenIndex
from services.ingestor.seen import SeenStore
from shared.contracts import ArticleEvent
from shared.faust_app import faust_credentials, make_app
from shared.kafka import (
    StreamProcessor,
    make_admin,
    make_client,
    make_consumer,
    make_producer,
    security_options,
    ssl_context,
)
from shared.settings import KafkaSettings, SettingsError, TopicSettings, load
from tests.tls import make_pki

SASL = {"RADAR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "RADAR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RADAR_KAFKA_SASL_USERNAME": "radar-svc",
        "RADAR_KAFKA_SASL_PASSWORD": "correct horse battery"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for key in list(os.environ):
        if key.startswith("RADAR_"):
            monkeypatch.delenv(key)
    return monkeypatch


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> KafkaSettings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load(KafkaSettings)


async def _clients(kafka: KafkaSettings, tmp_path: Path) -> dict[str, object]:
    """Every Kafka client the services build, by where it comes from -> its AIOKafkaClient."""
    async def noop(messages: list) -> list:
        return []

    processor = StreamProcessor(service="t", kafka=kafka, input_topic="in", model=ArticleEvent,
                                group_id="g", handler=noop)
    seen = SeenStore(kafka, "seen", SeenIndex(timedelta(hours=1)))
    app = make_app("radar-security-test", kafka=kafka, topics=TopicSettings(),
                   host="127.0.0.1", port=6099, data_dir=tmp_path / "faust")
    faust_producer = app.producer._new_producer()
    faust_consumer = app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)
    clients = {
        "make_producer": make_producer(kafka, "p").client,
        "make_consumer": make_consumer(kafka, "t", group_id="g", client_id="c")._client,
        "make_admin (topic creation)": make_admin(kafka)._client,
        "make_client (broker probe)": make_client(kafka),
        "StreamProcessor consumer (extractor, ingestor inbox)": processor.consumer._client,
        "StreamProcessor producer (outputs, dead letters)": processor.producer.client,
        "SeenStore consumer (ingestor dedup memory)": seen.consumer._client,
        # Faust creates its topics through its producer's client.
        "Faust producer (aggregator outputs, changelogs, topic creation)":
            faust_producer.client,
        "Faust consumer (aggregator agents, table recovery)": faust_consumer._client,
    }
    return clients


async def test_sasl_settings_reach_every_client(clean_env: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    kafka = settings_from(clean_env, SASL | {"RADAR_KAFKA_SSL_CA_FILE": str(pki.ca)})
    clients = await _clients(kafka, tmp_path)
    assert len(clients) == 9
    for where, client in clients.items():
        assert client._security_protocol == "SASL_SSL", where
        assert client._sasl_mechanism == "SCRAM-SHA-512", where
        assert client._sasl_plain_username == "radar-svc", where
        assert client._sasl_plain_password == "correct horse battery", where
        context = client._ssl_context
        assert isinstance(context, ssl.SSLContext), where
        assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED, where
        # The configured CA is the one trusted (the system store is loaded as well).
        subjects = [dict(x[0] for x in c["subject"]).get("commonName")
                    for c in context.get_ca_certs()]
        assert "Alliance Radar test CA" in subjects, where


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_each_mechanism_over_plaintext_sasl(clean_env: pytest.MonkeyPatch,
                                                  tmp_path: Path, mechanism: str) -> None:
    kafka = settings_from(clean_env, SASL | {"RADAR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                                             "RADAR_KAFKA_SASL_MECHANISM": mechanism})
    for where, client in (await _clients(kafka, tmp_path)).items():
        assert (client._security_protocol, client._sasl_mechanism) == \
            ("SASL_PLAINTEXT", mechanism), where
        assert client._ssl_context is None, where


async def test_mutual_tls_settings_reach_every_client(clean_env: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    kafka = settings_from(clean_env, {
        "RADAR_KAFKA_SECURITY_PROTOCOL": "SSL", "RADAR_KAFKA_SSL_CA_FILE": str(pki.ca),
        "RADAR_KAFKA_SSL_CERT_FILE": str(pki.client_cert),
        "RADAR_KAFKA_SSL_KEY_FILE": str(pki.client_key),
        "RADAR_KAFKA_SSL_CHECK_HOSTNAME": "false"})
    for where, client in (await _clients(kafka, tmp_path)).items():
        assert client._security_protocol == "SSL", where
        assert client._sasl_mechanism == "PLAIN", where  # aiokafka's default, unused with SSL
        assert client._sasl_plain_username is None, where
        assert client._ssl_context.check_hostname is False, where
        assert client._ssl_context.verify_mode == ssl.CERT_REQUIRED, where


async def test_plaintext_by_default(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kafka = load(KafkaSettings)
    assert security_options(kafka) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(kafka) is None
    for where, client in (await _clients(kafka, tmp_path)).items():
        assert (client._security_protocol, client._ssl_context) == ("PLAINTEXT", None), where


@pytest.mark.parametrize(("env", "message"), [
    ({"RADAR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
     "SASL_SSL needs RADAR_KAFKA_SASL_MECHANISM, RADAR_KAFKA_SASL_USERNAME, "
     "RADAR_KAFKA_SASL_PASSWORD"),
    ({"RADAR_KAFKA_SASL_USERNAME": "u"}, "RADAR_KAFKA_SASL_USERNAME set but "
     "RADAR_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    ({"RADAR_KAFKA_SSL_CA_FILE": "/ca.pem"}, "RADAR_KAFKA_SSL_CA_FILE set but"),
    ({"RADAR_KAFKA_SECURITY_PROTOCOL": "SSL", "RADAR_KAFKA_SSL_CERT_FILE": "/c.pem"},
     "RADAR_KAFKA_SSL_CERT_FILE and RADAR_KAFKA_SSL_KEY_FILE go together"),
    ({"RADAR_KAFKA_SECURITY_PROTOCOL": "SSL", "RADAR_KAFKA_SSL_KEY_PASSWORD": "x"},
     "RADAR_KAFKA_SSL_KEY_PASSWORD needs RADAR_KAFKA_SSL_KEY_FILE"),
    ({"RADAR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RADAR_KAFKA_SASL_MECHANISM": "GSSAPI",
      "RADAR_KAFKA_SASL_USERNAME": "u", "RADAR_KAFKA_SASL_PASSWORD": "p"},
     "RADAR_KAFKA_SASL_MECHANISM"),
    ({"RADAR_KAFKA_SECURITY_PROTOCOL": "TLS"}, "RADAR_KAFKA_SECURITY_PROTOCOL"),
])
def test_contradictory_settings_stop_the_service(clean_env: pytest.MonkeyPatch,
                                                 env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from(clean_env, env)
    assert message in str(caught.value)


def test_unreadable_files_are_named(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kafka = settings_from(clean_env, {"RADAR_KAFKA_SECURITY_PROTOCOL": "SSL",
                                      "RADAR_KAFKA_SSL_CA_FILE": str(tmp_path / "nope.pem")})
    with pytest.raises(SettingsError, match="RADAR_KAFKA_SSL_CA_FILE"):
        ssl_context(kafka)
    not_a_key = tmp_path / "garbage.pem"
    not_a_key.write_text("not PEM")
    pki = make_pki(tmp_path / "pki")
    kafka = settings_from(clean_env, {"RADAR_KAFKA_SSL_CA_FILE": str(pki.ca),
                                      "RADAR_KAFKA_SSL_CERT_FILE": str(pki.client_cert),
                                      "RADAR_KAFKA_SSL_KEY_FILE": str(not_a_key)})
    with pytest.raises(SettingsError, match="RADAR_KAFKA_SSL_CERT_FILE"):
        ssl_context(kafka)


def test_secrets_never_printed(clean_env: pytest.MonkeyPatch) -> None:
    kafka = settings_from(clean_env, SASL)
    assert "correct horse battery" not in repr(kafka) and "correct horse" not in str(kafka)
    assert "correct horse" not in repr(faust_credentials(kafka))
    shown = subprocess.run([sys.executable, "-m", "services.cli.main", "config"],
                           capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", **SASL,
                                "RADAR_API_TOKEN": "a-very-secret-api-token-123"})
    assert shown.returncode == 0, shown.stderr
    assert "RADAR_KAFKA_SASL_PASSWORD" in shown.stdout
    assert "correct horse" not in shown.stdout and "a-very-secret" not in shown.stdout
