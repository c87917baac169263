"""Every topic is declared once, in `shared.topics.TOPICS`: adding one is a registry entry
plus its model, and the settings, the topics a service creates, the AsyncAPI document and the
README tables all follow from it."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import Field

from services.cli.docs import topics_markdown
from shared.asyncapi import document
from shared.contracts import Contract
from shared.settings import TopicSettings, topic_settings
from shared.topics import TOPICS, Flow, Topic, check_registry, topic


class WidgetSeen(Contract):
    """A widget somebody saw (a topic this test adds)."""

    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    widget_id: str = Field(description="The widget.")
    colour: str = Field("blue", description="Its colour.")

    def key(self) -> bytes:
        return self.widget_id.encode()


WIDGETS = Topic("widgets", "radar.widgets.v1", WidgetSeen, "widget_id",
                "Widgets seen by the ingestor.",
                sends=(Flow("ingestor", "The ingestor reports each widget."),),
                receives=(Flow("aggregator", "The aggregator counts widgets."),),
                dead_lettered_by="aggregator", cleanup_policy="compact",
                note="compacted: latest per widget")


def test_a_new_topic_is_one_entry_and_its_model(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = (*TOPICS, WIDGETS)
    check_registry(registry)

    # Settings: a field with the default name, renamed by RADAR_TOPIC_WIDGETS.
    settings_cls = topic_settings(registry)
    assert settings_cls().widgets == "radar.widgets.v1"
    monkeypatch.setenv("RADAR_TOPIC_WIDGETS", "acme.widgets.v1")
    renamed = settings_cls()
    assert renamed.widgets == "acme.widgets.v1"
    # Topic creation: by the services that send or receive it, compacted, with a DLQ for
    # the service that dead-letters it.
    assert "acme.widgets.v1" in renamed.created_by("ingestor")
    assert {"acme.widgets.v1", "acme.widgets.v1.dlq"} <= set(renamed.created_by("aggregator"))
    assert "acme.widgets.v1" not in renamed.created_by("extractor")
    assert "acme.widgets.v1" in renamed.compacted()

    # AsyncAPI: a channel, its message with the model's schema and key, both operations,
    # and the dead-letter channel lists it as an input topic.
    doc = document(registry)
    channel = doc["channels"]["widgets"]
    assert channel["address"] == "radar.widgets.v1"
    assert channel["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == ["compact"]
    message = doc["components"]["messages"]["WidgetSeen"]
    assert message["bindings"]["kafka"]["key"]["description"] == "widget_id"
    assert {"widget_id", "colour"} <= set(doc["components"]["schemas"]["WidgetSeen"]
                                          ["properties"])
    assert {"ingestorSendsWidgets", "aggregatorReceivesWidgets"} <= set(doc["operations"])
    assert "radar.widgets.v1" in doc["channels"]["deadLetters"]["parameters"]["inputTopic"][
        "enum"]
    json.dumps(doc)

    # README: a row in the topic table and a field table for the model.
    readme = topics_markdown(registry)
    assert ("| `radar.widgets.v1` | `WidgetSeen` | `widget_id` | ingestor -> aggregator "
            "(compacted: latest per widget) |") in readme
    assert "**`WidgetSeen`** — A widget somebody saw (a topic this test adds)." in readme
    assert "| `colour` | `str` | Its colour. |" in readme


def test_the_shipped_settings_are_made_from_the_registry() -> None:
    defaults = TopicSettings()
    for entry in TOPICS:
        if entry.renamable:
            assert defaults.name(entry.id) == entry.address
    assert defaults.created_by("extractor") == [
        "news.articles.v1", "alliances.partnerships.v1", "news.articles.v1.dlq"]
    assert set(defaults.created_by("aggregator")) == {
        "alliances.partnerships.v1", "alliances.changes.v1", "alliances.state.v1",
        "webhooks.subscriptions.v1", "alliances.partnerships.v1.dlq",
        "alliances.changes.v1.dlq"}
    assert defaults.compacted() == {"alliances.state.v1", "news.seen.v1",
                                    "webhooks.subscriptions.v1"}


def test_older_topic_variables_are_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADAR_INGESTOR_SEEN_TOPIC", "old.seen")
    monkeypatch.setenv("RADAR_TOPIC_INBOX", "new.inbox")
    settings = TopicSettings()
    assert (settings.seen, settings.inbox) == ("old.seen", "new.inbox")


def test_the_registry_refuses_what_would_break_it() -> None:
    check_registry()
    with pytest.raises(ValueError, match="repeat"):
        check_registry((*TOPICS, topic("articles")))
    stray = Topic("stray", "x.v1", WidgetSeen, "widget_id", "Nobody reads it.",
                  receives=(Flow("scheduler", "Unknown."),))
    with pytest.raises(ValueError, match="unknown parties"):
        check_registry((*TOPICS, stray))
    unread = Topic("unread", "y.v1", WidgetSeen, "widget_id", "Dead-lettered by a stranger.",
                   dead_lettered_by="extractor")
    with pytest.raises(ValueError, match="does not receive it"):
        check_registry((*TOPICS, unread))
