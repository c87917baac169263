"""The fault plan: which fault hits what, when, for how long. Seeded, so a run can be
repeated; pure, so it is unit-tested without a stack."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

SERVICES = ("ingestor", "extractor", "aggregator")

#: Fault kinds. kill: SIGKILL, restart after `duration_s`. stop: SIGSTOP, SIGCONT after
#: `duration_s`. cut: every broker connection reset at once. delay: every chunk of bytes
#: to and from the broker held `delay_s`, for `duration_s`. refuse: the broker unreachable
#: (connections reset and refused) for `duration_s`.
KINDS = ("kill", "stop", "cut", "delay", "refuse")


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    targets: tuple[str, ...] = ()
    duration_s: float = 0.0
    delay_s: float = 0.0

    def label(self) -> str:
        what = "+".join(self.targets) if self.targets else "broker link"
        extra = f" {self.delay_s * 1000:.0f} ms" if self.kind == "delay" else ""
        return f"{self.at_s:6.1f}s {self.kind:<6} {what}{extra} for {self.duration_s:.1f}s"

    def as_dict(self) -> dict:
        return asdict(self)


def counts_for(kills: int) -> dict[str, int]:
    """How many faults of each kind go with `kills` kills."""
    return {"kill": kills, "stop": math.ceil(kills / 4), "cut": math.ceil(kills / 4),
            "delay": math.ceil(kills / 10), "refuse": math.ceil(kills / 10)}


def plan(seed: int, kills: int, window_s: float, start_s: float = 2.0,
         together: float = 0.25) -> list[Fault]:
    """Faults at seeded random moments in [start_s, window_s]; a quarter of the kills hit
    two services at once. Kills restart after 1-3 s, stops last 1-4 s."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    for kind, n in counts_for(kills).items():
        for _ in range(n if kills else 0):
            at = round(rng.uniform(start_s, max(start_s, window_s)), 2)
            if kind == "kill":
                k = 2 if rng.random() < together else 1
                faults.append(Fault(at, kind, tuple(sorted(rng.sample(SERVICES, k))),
                                    round(rng.uniform(1.0, 3.0), 2)))
            elif kind == "stop":
                faults.append(Fault(at, kind, (rng.choice(SERVICES),),
                                    round(rng.uniform(1.0, 4.0), 2)))
            elif kind == "cut":
                faults.append(Fault(at, kind))
            elif kind == "delay":
                faults.append(Fault(at, kind, (), round(rng.uniform(2.0, 5.0), 2),
                                    round(rng.uniform(0.05, 0.3), 3)))
            else:
                faults.append(Fault(at, kind, (), round(rng.uniform(1.0, 3.0), 2)))
    return sorted(faults, key=lambda f: (f.at_s, f.kind, f.targets))
