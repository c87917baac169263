"""Every Kafka topic of Alliance Radar, declared once: name, message model, key, who sends
and who receives, clean-up policy.

Everything else about topics is read from `TOPICS`: the settings that rename them
(`shared.settings.TopicSettings`, one `RADAR_TOPIC_<ID>` each), the topics a service
creates at start (`TopicSettings.created_by`), the AsyncAPI document (`shared.asyncapi`) and
the README's topic tables (`radar docs`). Adding a topic is one `Topic` here plus its model
in `shared/contracts.py`; a unit test proves that settings, AsyncAPI and README follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from shared.contracts import (
    AllianceChange,
    AllianceState,
    ArticleEvent,
    CompanyIndex,
    CompanyLink,
    Contract,
    DeadLetter,
    PartnershipEvent,
    RawDocument,
    SeenArticle,
    WebhookSubscription,
)

#: Services of this repository; any other party in a flow is outside it.
SERVICES = ("ingestor", "extractor", "aggregator")


@dataclass(frozen=True)
class Flow:
    """One party that sends or receives on a topic, and why."""

    party: str  # a service of SERVICES, or "senders" / "subscribers" outside the repository
    summary: str
    #: How the README's flow column names the party (default: `party`).
    shown: str | None = None

    @property
    def label(self) -> str:
        return self.shown or self.party


@dataclass(frozen=True)
class Topic:
    """One topic. `address` is the default name, or a template: `{appId}` for the
    aggregator's internal topics (named after its app id), `{inputTopic}` for dead letters."""

    id: str  # AsyncAPI channel id; for renamable topics also the settings field
    address: str
    model: type[BaseModel]
    key: str
    description: str
    sends: tuple[Flow, ...] = ()
    receives: tuple[Flow, ...] = ()
    cleanup_policy: Literal["delete", "compact"] = "delete"
    #: The service that dead-letters the records of this topic it cannot process.
    dead_lettered_by: str | None = None
    #: Created and written by Faust for the aggregator; nobody else produces to it.
    internal: bool = False
    #: Remark in the README's flow column.
    note: str = ""
    #: An older variable that renames the topic too (still read; RADAR_TOPIC_<ID> first).
    legacy_env: str | None = None

    @property
    def renamable(self) -> bool:
        """A fixed default name that a deployment may change (RADAR_TOPIC_<ID>)."""
        return "{" not in self.address

    @property
    def env(self) -> str:
        return f"RADAR_TOPIC_{self.id.upper()}"

    def parties(self) -> set[str]:
        return {f.party for f in (*self.sends, *self.receives)}


#: Dead letters of topic T go to T + this suffix.
DLQ_SUFFIX = ".dlq"
APP_ID_PARAMETER = {"appId": {"description": "Aggregator app id (RADAR_AGGREGATOR_APP_ID); "
                              "`radar replay` uses radar-aggregator-replay-<time>.",
                              "default": "radar-aggregator", "examples": ["radar-aggregator"]}}

_TABLE_WRITES = (Flow("aggregator", "Each table write."),)
_TABLE_READS = (Flow("aggregator", "Table recovery and standby replicas."),)

TOPICS: tuple[Topic, ...] = (
    Topic("articles", "news.articles.v1", ArticleEvent, "article_id",
          "Cleaned news articles, one record per distinct story.",
          sends=(Flow("ingestor", "The ingestor (HTTP, watched folder, inbox topic, "
                      "`radar ingest`) publishes each cleaned article."),),
          receives=(Flow("extractor", "The extractor reads articles and extracts "
                         "partnerships."),),
          dead_lettered_by="extractor"),
    Topic("partnerships", "alliances.partnerships.v1", PartnershipEvent, "alliance_id",
          "Partnership events; retained: the source of truth that `radar replay` rebuilds "
          "the view from.",
          sends=(Flow("extractor", "The extractor publishes one event per party set and "
                      "article."),),
          receives=(Flow("aggregator", "The aggregator folds events into the alliance "
                         "view."),),
          dead_lettered_by="aggregator", note="retained: replay source"),
    Topic("changes", "alliances.changes.v1", AllianceChange, "alliance_id",
          "The change feed: one record exactly when an alliance appears or its stage "
          "changes. At least once: dedup on change_id.",
          sends=(Flow("aggregator", "The aggregator announces each stage change."),),
          receives=(Flow("subscribers", "Your services and `radar watch` follow the changes.",
                         shown="your services, `radar watch`"),
                    Flow("aggregator", "The webhook dispatcher POSTs matching changes to "
                         "subscribers; undeliverable ones are dead-lettered.")),
          dead_lettered_by="aggregator"),
    Topic("state", "alliances.state.v1", AllianceState, "alliance_id",
          "The full alliance state after each change (compacted: the latest per alliance).",
          sends=(Flow("aggregator", "The aggregator publishes the state after each "
                      "change."),),
          receives=(Flow("subscribers", "Your services read the latest state per alliance.",
                         shown="your services"),),
          cleanup_policy="compact", note="compacted: latest per key"),
    Topic("seen", "news.seen.v1", SeenArticle, "article_id",
          "The ingestor's dedup memory: what it published, replayed at start-up (compacted; "
          "a null value forgets an article).",
          sends=(Flow("ingestor", "The ingestor records each story it published."),),
          receives=(Flow("ingestor", "The ingestor replays the memory at start-up.",
                         shown="ingestor, `radar ingest`"),),
          cleanup_policy="compact", note="compacted: dedup memory",
          legacy_env="RADAR_INGESTOR_SEEN_TOPIC"),
    Topic("inbox", "news.inbox.v1", RawDocument, "document_id",
          "Raw documents (feeds, JSON Lines, JSON, HTML, text, or a URL to fetch) handed to "
          "the ingestor over Kafka.",
          sends=(Flow("senders", "Any service hands the ingestor a document to ingest.",
                      shown="your services"),),
          receives=(Flow("ingestor", "The ingestor parses, cleans and publishes the articles "
                         "in it."),),
          dead_lettered_by="ingestor", note="raw documents; bad ones to `.dlq`",
          legacy_env="RADAR_INGESTOR_INBOX_TOPIC"),
    Topic("webhooks", "webhooks.subscriptions.v1", WebhookSubscription, "subscription_id",
          "Webhook subscriptions (compacted: the latest per id; a null value removes one). "
          "Holds signing secrets: readable by the aggregator only.",
          sends=(Flow("senders", "`radar webhooks add` and `remove` write subscriptions.",
                      shown="`radar webhooks`"),),
          receives=(Flow("aggregator", "The webhook dispatcher follows the subscriptions."),),
          cleanup_policy="compact", note="compacted: webhook subscriptions"),
    Topic("deadLetters", "{inputTopic}" + DLQ_SUFFIX, DeadLetter, "topic:partition:offset",
          "Records a service could not process, with the reason and the raw bytes.",
          note="records a service could not process"),
    Topic("companyIndex", "{appId}-company-index", CompanyLink, "company slug",
          "Internal repartition topic of the aggregator: one record per party of a changed "
          "alliance, keyed by company, so the company index is updated by the worker that "
          "owns the company.",
          sends=(Flow("aggregator", "The alliance agent re-keys each change by company."),),
          receives=(Flow("aggregator", "The index agent updates the companies table."),),
          internal=True, note="internal: company index"),
    Topic("alliancesChangelog", "{appId}-alliances-changelog", AllianceState, "alliance_id",
          "Internal: Faust changelog of the `alliances` table (restores it after a restart "
          "or a rebalance).", sends=_TABLE_WRITES, receives=_TABLE_READS,
          cleanup_policy="compact", internal=True, note="internal: table changelog"),
    Topic("companiesChangelog", "{appId}-companies-changelog", CompanyIndex, "company slug",
          "Internal: Faust changelog of the `companies` table (the company index).",
          sends=_TABLE_WRITES, receives=_TABLE_READS, cleanup_policy="compact",
          internal=True, note="internal: table changelog"),
)

#: The record models on the wire, one per topic that carries a `Contract` (table changelog
#: values such as `CompanyIndex` are Faust's, not contracts).
WIRE_MODELS: tuple[type[Contract], ...] = tuple(dict.fromkeys(
    t.model for t in TOPICS if issubclass(t.model, Contract)))


def topic(topic_id: str) -> Topic:
    for entry in TOPICS:
        if entry.id == topic_id:
            return entry
    raise KeyError(f"no topic {topic_id!r} in shared.topics.TOPICS")


def dlq(topic_name: str) -> str:
    """The dead-letter topic of `topic_name`."""
    return topic_name + DLQ_SUFFIX


def dead_letter_sources(topics: tuple[Topic, ...] = TOPICS) -> list[Topic]:
    """The topics whose unreadable records are dead-lettered, in registry order."""
    return [t for t in topics if t.dead_lettered_by]


def internal_name(topic_id: str, app_id: str) -> str:
    """The name of an aggregator-internal topic for one app id (a replay with a new app id
    gets its own)."""
    return topic(topic_id).address.format(appId=app_id)


def check_registry(topics: tuple[Topic, ...] = TOPICS) -> None:
    """The registry's own rules; raises ValueError naming the entry that breaks one."""
    ids = [t.id for t in topics]
    if len(set(ids)) != len(ids):
        raise ValueError(f"topic ids repeat: {ids}")
    for t in topics:
        unknown = {p for p in t.parties() if p not in SERVICES} - {"senders", "subscribers"}
        if unknown:
            raise ValueError(f"topic {t.id}: unknown parties {sorted(unknown)}")
        if t.dead_lettered_by and t.dead_lettered_by not in {f.party for f in t.receives}:
            raise ValueError(f"topic {t.id}: dead-lettered by {t.dead_lettered_by}, which "
                             "does not receive it")
        if not t.renamable and not (t.internal or t.model is DeadLetter):
            raise ValueError(f"topic {t.id}: a template address is for internal topics and "
                             "dead letters")
