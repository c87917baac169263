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


def test_where_things_are_map_matches_the_tree():
    """Every path the README's map names exists, and every module of shared/ and services/
    is named in it."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Where things are", 1)[1].split("```", 2)[1]
    named: set[Path] = set()  # files and subfolders named on a folder's lines
    folders: set[Path] = set()  # the folders heading them
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        words = line.split("   ", 1)[0].split()  # the names, before the description
        if not line.startswith(" "):
            heads = [ROOT / w for w in words if w.endswith("/")]
            folder = heads[0] if len(heads) == 1 else ROOT
            folders.update(heads)
            continue
        named.update(folder / w for w in words if w.endswith((".py", "/")))
    missing = sorted(str(p.relative_to(ROOT)) for p in named | folders if not p.exists())
    assert not missing, f"the map names paths that do not exist: {missing}"
    modules = [p for base in ("shared", "services") for p in (ROOT / base).rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")]
    unnamed = sorted(str(p.relative_to(ROOT)) for p in modules
                     if not any(p == n or n in p.parents for n in named))
    assert not unnamed, f"modules missing from the README's map: {unnamed}"
