"""Fuzzing profiles and the hostile-input corpus shared by the fuzz tests.

Two profiles. `make test` runs the short one: few cases per door, deterministic (hypothesis
derandomized, the corpus seeded with 0), so CI is repeatable and fast. `make fuzz`
(RADAR_FUZZ=full) runs 10,000 cases per door with a fresh seed each run; a failure prints
the seed (RADAR_FUZZ_SEED=... reproduces a corpus run) or hypothesis' falsifying example.
Every fuzz test records its door, case count and duration; the session prints the table and
one JSON line at the end (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings

FULL = os.environ.get("RADAR_FUZZ", "").lower() == "full"
FULL_CASES = 10_000
SEED = int(os.environ.get("RADAR_FUZZ_SEED") or (random.SystemRandom().randrange(2**32)
                                                  if FULL else 0))


def cases(short: int, full: int = FULL_CASES) -> int:
    """Cases per door: `short` in `make test`, 10,000 (or `full`) in `make fuzz`."""
    return full if FULL else short


def patience(short: float) -> float:
    """Seconds to wait for a service to work through a corpus (10,000 records take longer)."""
    return short * 5 if FULL else short


def hypothesis_profile(short: int, full: int = FULL_CASES) -> settings:
    return settings(max_examples=cases(short, full), derandomize=not FULL, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck),
                    print_blob=True)


@dataclass
class DoorReport:
    door: str
    cases: int = 0
    rejected: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


REPORTS: dict[str, DoorReport] = {}


@contextmanager
def door(name: str) -> Iterator[DoorReport]:
    """Time a door's fuzz run and keep its figures for the session summary."""
    report = REPORTS.setdefault(name, DoorReport(name))
    started = time.perf_counter()
    try:
        yield report
    finally:
        report.seconds += time.perf_counter() - started


def summary_lines() -> list[str]:
    if not REPORTS:
        return []
    profile = f"full ({FULL_CASES} cases per door, seed {SEED})" if FULL else \
        f"short (deterministic, seed {SEED})"
    lines = [f"fuzz profile: {profile}",
             f"{'door':<44} {'cases':>7} {'rejected':>9} {'seconds':>8}"]
    for r in REPORTS.values():
        lines.append(f"{r.door:<44} {r.cases:>7} {r.rejected:>9} {r.seconds:>8.1f}")
    lines.append("FUZZ " + json.dumps({"profile": "full" if FULL else "short", "seed": SEED,
                                       "doors": {r.door: {"cases": r.cases,
                                                          "rejected": r.rejected,
                                                          "seconds": round(r.seconds, 1),
                                                          **r.notes}
                                                 for r in REPORTS.values()}}))
    return lines


# --------------------------------------------------------------------------- raw records


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, 1e308, -0.5, 17])
    if kind == 3:
        return rng.choice(["", " ", "\u0000", "é", "x" * rng.randrange(1, 50), "2024-13-45",
                           "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")])
    if kind == 4:
        return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(20)))
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["id", "text", "x", "", "parties", "schema_version"]):
            _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def mutate(rng: random.Random, valid: bytes) -> bytes | None:
    """One hostile variant of a valid JSON record: bytes a broken or malicious producer could
    write. None is a record without a value."""
    kind = rng.randrange(16)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
    if kind == 1:
        return valid[:rng.randrange(len(valid))]
    if kind == 2:
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 3:
        return json.dumps(_random_json(rng)).encode()
    if kind == 4:
        return b"[" * 100_000 + b"]" * 100_000  # nesting far past any parser's limit
    if kind == 5:
        return b"\xff\xfe" + valid
    if kind == 6:
        return None
    if kind == 7:
        return b""
    if kind == 8:
        return b"x" * rng.choice([100_000, 700_000, 950_000])  # large: its dead letter too
    record = json.loads(valid)
    keys = sorted(record)
    if kind == 9:
        record.pop(rng.choice(keys))
    elif kind == 10:
        record[rng.choice(keys)] = _random_json(rng)
    elif kind == 11:
        record[f"unexpected_{rng.randrange(99)}"] = _random_json(rng)
    elif kind == 12:
        record["schema_version"] = rng.choice([0, 2, "1", None])
    elif kind == 13:
        record[rng.choice(keys)] = "\u0000" * rng.randrange(1, 5)
    elif kind == 14:
        record[rng.choice(keys)] = "y" * 200_000
    else:
        return json.dumps(record).encode() + rng.choice([b",", b"}", b" garbage", b"\x00"])
    return json.dumps(record).encode()
