"""`radar feeds add|list|remove` on the feeds file, and `radar ingest` argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.feeds import standalone_app
from services.ingestor.feeds import load_feeds

runner = CliRunner()


@pytest.fixture
def feeds_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "feeds.toml"
    monkeypatch.setenv("RADAR_INGESTOR_FEEDS_FILE", str(path))
    return path


def run(*args: str):
    return runner.invoke(standalone_app(), list(args))


def test_feeds_add_list_remove(feeds_file: Path) -> None:
    added = run("feeds", "add", "https://wire.example.com/rss", "--name", "Wire",
                "--interval", "120")
    assert added.exit_code == 0, added.output
    assert run("feeds", "add", "https://chips.example.net/atom.xml").exit_code == 0
    listed = run("feeds", "list", "--json")
    assert [(f["name"], f["interval_s"]) for f in json.loads(listed.stdout)] == [
        ("Wire", 120.0), (None, None)]
    table = run("feeds", "list")
    assert "chips.example.net" in table.stdout and "300s" in table.stdout
    removed = run("feeds", "remove", "Wire")
    assert removed.exit_code == 0 and "removed Wire" in removed.stdout
    assert [f.url for f in load_feeds(feeds_file)] == ["https://chips.example.net/atom.xml"]


def test_feeds_errors_exit_non_zero(feeds_file: Path, tmp_path: Path) -> None:
    bad = run("feeds", "add", "file:///etc/passwd")
    assert bad.exit_code == 2 and "not an http(s) URL" in bad.output
    assert run("feeds", "add", "https://a.example.com/").exit_code == 0
    again = run("feeds", "add", "https://a.example.com/")
    assert again.exit_code == 1 and "already a feed" in again.output
    assert run("feeds", "remove", "nothing").exit_code == 1
    other = tmp_path / "other.toml"
    assert run("feeds", "add", "https://b.example.com/", "--file", str(other)).exit_code == 0
    assert [f.url for f in load_feeds(other)] == ["https://b.example.com/"]
    feeds_file.write_text("not = [toml")
    broken = run("feeds", "list")
    assert broken.exit_code == 1 and str(feeds_file) in broken.output


def test_ingest_missing_path(tmp_path: Path) -> None:
    missing = run("ingest", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "no such file" in missing.output
