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


def final_stages_from_gold() -> dict[frozenset[str], str]:
    """Each demo party set's stage in its latest article (the gold is in date order)."""
    final: dict[frozenset[str], str] = {}
    for line in (ROOT / "tests/data/demo_gold.jsonl").read_text().splitlines():
        for event in json.loads(line)["events"]:
            final[frozenset(event["parties"])] = event["stage"]
    return final


def final_view(api: str) -> dict[frozenset[str], str]:
    try:
        rows = httpx.get(api, timeout=5).json()["alliances"]
    except httpx.HTTPError:
        return {}
    return {frozenset(r["parties"]): r["stage"] for r in rows}


def matches(view: dict[frozenset[str], str], expected: dict[frozenset[str], str]) -> bool:
    """Gold names are short ("Aurora"); the view's are full ("Aurora Airlines")."""
    def same(gold: frozenset[str], got: frozenset[str]) -> bool:
        return len(gold) == len(got) and all(
            any(set(g.lower().split()) <= set(p.lower().split()) for p in got) for g in gold)

    return len(view) == len(expected) and all(
        any(same(g, v) and view[v] == stage for v in view) for g, stage in expected.items())


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
        expected = final_stages_from_gold()
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
