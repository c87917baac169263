from pathlib import Path

import pytest

from services.cli.docs import render
from shared.settings import (
    AggregatorSettings,
    KafkaSettings,
    Profile,
    SettingsError,
    env_vars,
    load,
)

ROOT = Path(__file__).resolve().parents[2]


def test_readme_generated_sections_are_current():
    readme = (ROOT / "README.md").read_text()
    assert render(readme) == readme, "README is stale: run `radar docs`"


def test_readme_shows_the_two_commands_first():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make run") < readme.index("## How it flows")
    assert "make test" in readme and "```mermaid" in readme


def test_settings_read_prefixed_env(monkeypatch):
    monkeypatch.setenv("RADAR_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("RADAR_PROFILE", "kafka")
    monkeypatch.setenv("RADAR_AGGREGATOR_PORT", "7000")
    k = load(KafkaSettings)
    assert k.bootstrap_servers == "k1:9092,k2:9092" and k.profile is Profile.KAFKA
    assert k.session_timeout == 45000
    assert load(AggregatorSettings).port == 7000


def test_bad_setting_fails_fast_naming_the_variable(monkeypatch):
    monkeypatch.setenv("RADAR_AGGREGATOR_PORT", "not-a-port")
    with pytest.raises(SettingsError, match="RADAR_AGGREGATOR_PORT"):
        load(AggregatorSettings)


def test_every_setting_is_documented():
    for name, (_, _, _, description) in env_vars().items():
        assert name.startswith("RADAR_")
        assert description, f"{name} has no description"
