"""`radar up --demo` as a user runs it: its own broker and services, the demo feed streams
in, changes show up, and SIGTERM leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from shared.broker import free_port
from tests.helpers import wait_until


def processes_with(marker: str) -> list[int]:
    """PIDs whose environment mentions `marker` (our unique run dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


ROOT = Path(__file__).resolve().parents[2]


def final_stages_offline() -> dict[frozenset[str], str]:
    """What the live view must show: the extractor run offline over the demo feed, its
    events folded by the aggregator's stage rules (how good the extraction is, is measured
    elsewhere: tests/unit/test_extraction_quality.py)."""
    from services.aggregator.state import apply
    from services.extractor.pipeline import Extractor
    from services.ingestor.sources import article_from_mapping

    articles = [article_from_mapping(json.loads(line), where="demo", default_source="demo")
                for line in (ROOT / "services/cli/samples/demo_articles.jsonl").open()]
    states: dict = {}
    for events in Extractor.load().extract_many(articles):
        for event in events:
            new, _ = apply(states.get(event.alliance_id), event)
            if new is not None:
                states[event.alliance_id] = new
    return {frozenset(s.parties): s.stage.value for s in states.values()}


def final_view(api: str) -> dict[frozenset[str], str]:
    try:
        rows = httpx.get(api, timeout=5).json()["alliances"]
    except httpx.HTTPError:
        return {}
    return {frozenset(r["parties"]): r["stage"] for r in rows}


def matches(view: dict[frozenset[str], str], expected: dict[frozenset[str], str]) -> bool:
    return bool(expected) and view == expected


def test_radar_up_demo_streams_articles_and_stops_cleanly(radar_bin, tmp_path) -> None:
    run_dir = tmp_path / "up-run"
    env = dict(os.environ) | {
        "RADAR_BROKER_PORT": str(free_port()), "RADAR_INGESTOR_PORT": str(free_port()),
        "RADAR_EXTRACTOR_PORT": str(free_port()), "RADAR_AGGREGATOR_PORT": str(free_port()),
        "RADAR_UP_MARKER": str(run_dir),
    }
    env.pop("RADAR_BOOTSTRAP_SERVERS", None)
    started = time.monotonic()
    proc = subprocess.Popen([radar_bin, "up", "--demo", "--demo-interval", "0.2",
                             "--run-dir", str(run_dir)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("stack ready" in x for x in lines), 120, 0.2,
                   message=f"stack ready; output so far: {lines}")
        for name in ("ingestor", "extractor", "aggregator"):
            assert any(x.strip().startswith(name) and "/metrics" in x and "/health" in x
                       for x in lines), lines
        wait_until(lambda: any("demo feed done" in x for x in lines), 120, 0.2,
                   message="demo feed")
        first_change = wait_until(lambda: next((x for x in lines if x.startswith("change:")),
                                               None), 60, 0.2, message="first change")
        print(f"first alliance after {time.monotonic() - started:.1f}s: {first_change}")
        expected = final_stages_offline()
        api = f"http://127.0.0.1:{env['RADAR_AGGREGATOR_PORT']}/alliances"
        view = wait_until(lambda: (rows := final_view(api)) and matches(rows, expected)
                          and rows, 120, 0.5, message=f"final demo view {expected}")
        assert len(view) == len(expected)
        assert sum(x.startswith("change:") for x in lines) >= len(expected)
        assert processes_with(str(run_dir)), "children should be running"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    reader.join(5)
    assert code == 0, lines[-20:]
    assert any("stopped." in x for x in lines)
    wait_until(lambda: not processes_with(str(run_dir)), 20, message="no orphans")


class RadarUp:
    """`radar up` in a subprocess, its output collected line by line."""

    def __init__(self, radar_bin: str, run_dir: Path, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen([radar_bin, "up", "--run-dir", str(run_dir), *args],
                                     env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")), daemon=True)
        self.reader.start()

    def wait_for(self, text: str, timeout: float = 240) -> str:
        return wait_until(lambda: next((x for x in self.lines if text in x), None), timeout,
                          0.2, message=f"{text!r}; output so far: {self.lines}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.reader.join(5)
            raise AssertionError(f"radar up still running 90 s after SIGTERM: {self.lines[-30:]}"
                                 ) from None
        self.reader.join(5)
        assert code == 0, self.lines[-20:]
        # Each step of the stop is reported, so a slow stop says where it was slow.
        tail = self.lines[-20:]
        assert any(x.strip().startswith("stopped the journal") for x in self.lines), tail
        assert self.lines[-1].strip() == "stopped.", self.lines[-20:]


def view_rows(api: str) -> list[dict]:
    resp = httpx.get(api, timeout=10)
    assert resp.status_code == 200, resp.text
    return sorted(({k: v for k, v in r.items() if k != "updated_at"}
                   for r in resp.json()["alliances"]), key=lambda r: r["alliance_id"])


@pytest.mark.timeout(900)  # three starts of the whole stack
def test_radar_up_keeps_the_view_and_the_seen_set_across_stop_and_start(radar_bin,
                                                                         tmp_path) -> None:
    """Stop `radar up` and start it again: the same view, the demo articles are duplicates
    now (the seen-set survived), no change is emitted twice; `--fresh` starts empty."""
    run_dir = tmp_path / "durable-run"
    env = dict(os.environ) | {
        "RADAR_BROKER_PORT": str(free_port()), "RADAR_INGESTOR_PORT": str(free_port()),
        "RADAR_EXTRACTOR_PORT": str(free_port()), "RADAR_AGGREGATOR_PORT": str(free_port()),
    }
    env.pop("RADAR_BOOTSTRAP_SERVERS", None)
    api = f"http://127.0.0.1:{env['RADAR_AGGREGATOR_PORT']}/alliances"
    expected = final_stages_offline()
    first = RadarUp(radar_bin, run_dir, env, "--demo", "--demo-interval", "0.1")
    try:
        first.wait_for("demo feed done")
        wait_until(lambda: matches(final_view(api), expected), 240, 0.5, message="demo view")
        before = view_rows(api)
        changes = sorted(x for x in first.lines if x.startswith("change:"))
    finally:
        first.stop()
    assert (run_dir / "journal" / "topics.json").exists()

    second = RadarUp(radar_bin, run_dir, env, "--demo", "--demo-interval", "0.1")
    try:
        restored = second.wait_for("restored")
        assert " 0 records" not in restored
        second.wait_for("stack ready")
        assert view_rows(api) == before  # the view is back before any news comes in
        second.wait_for("demo feed done")
        fed = [x for x in second.lines if x.startswith("fed ")]
        assert fed and all("duplicate" in x for x in fed), fed  # the seen-set survived
        # Every re-sent article was refused as a duplicate, so nothing new entered the
        # pipeline: the view must be exactly as before, with nothing to wait for.
        assert view_rows(api) == before
        # The change history is back (the live view replays it), and nothing is new.
        assert sorted(x for x in second.lines if x.startswith("change:")) == changes
    finally:
        second.stop()

    fresh = RadarUp(radar_bin, run_dir, env, "--fresh")
    try:
        fresh.wait_for("removed the journal")
        fresh.wait_for("stack ready")
        assert view_rows(api) == []
    finally:
        fresh.stop()
