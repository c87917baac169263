"""The journal's file format and what it restores (the broker side is tested end to end in
tests/integration/test_cli_up.py)."""

from __future__ import annotations

from pathlib import Path

from services.cli.stack import consumer_groups
from shared.journal import Entry, Journal, decode_all, encode


def test_entries_round_trip_with_missing_keys_values_and_headers() -> None:
    entries = [Entry(0, 1_700_000_000_000, b"k", b"v"),
               Entry(1, 1, None, None),
               Entry(2, 2, b"", b"\x00" * 300, (("radar-source", b"p1@4"), ("x", b"")))]
    data = b"".join(encode(e) for e in entries)
    assert list(decode_all(data)) == entries
    # A crash mid-write leaves a torn last entry: everything before it is kept.
    assert list(decode_all(data[:-3])) == entries[:2]


def test_only_the_gap_free_prefix_is_restored(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    path = journal.path("t", 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(encode(Entry(o, 0, None, b"x")) for o in (0, 1, 3)))
    assert [e.offset for e in journal.entries("t", 0)] == [0, 1]
    assert journal.entries("t", 1) == []
    assert journal.empty()


def test_consumer_groups_follow_the_service_settings() -> None:
    assert consumer_groups({}) == ["radar-extractor", "radar-aggregator", "radar-ingestor"]
    assert consumer_groups({"RADAR_AGGREGATOR_APP_ID": "x"})[1] == "x"
