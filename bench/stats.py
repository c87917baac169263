"""Small pure helpers for the benchmark's figures."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (the
    definition numpy calls "linear"); NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


def rounded(value: float, digits: int = 1) -> float | None:
    """JSON-safe: NaN and infinities become null."""
    return round(value, digits) if math.isfinite(value) else None


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text exposition -> {(sample name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


def buckets(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
            **labels: str) -> dict[float, float]:
    """A Prometheus histogram's cumulative bucket counts {upper bound: count} (`name` without
    the `_bucket` suffix), summed over the samples whose labels include `labels`."""
    wanted = set(labels.items())
    out: dict[float, float] = {}
    for (sample, ls), value in samples.items():
        if sample == f"{name}_bucket" and wanted <= ls:
            bound = float(dict(ls)["le"])
            out[bound] = out.get(bound, 0.0) + value
    return dict(sorted(out.items()))


def bucket_quantile(cumulative: dict[float, float], q: float) -> float:
    """The q-th percentile (0-100) of a histogram from its cumulative buckets, interpolated
    linearly inside the bucket (as Prometheus' histogram_quantile); NaN for no counts, the
    last finite bound when it falls in the +Inf bucket."""
    bounds = sorted(cumulative)
    total_count = cumulative[bounds[-1]] if bounds else 0.0
    if total_count <= 0:
        return math.nan
    rank = total_count * q / 100
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def words(texts: Iterable[str]) -> int:
    return sum(len(t.split()) for t in texts)


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of repeated runs; NaNs for none. The median of three is what the
    benchmark reports; min and max show how much the machine moved it."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    return percentile(finite, 50), min(finite), max(finite)


def spread_figures(name: str, values: Sequence[float], digits: int = 1) -> dict[str, float | None]:
    """`name` (the median), `name_min`, `name_max`: the JSON line's keys for one figure."""
    median, low, high = spread(values)
    return {name: rounded(median, digits), f"{name}_min": rounded(low, digits),
            f"{name}_max": rounded(high, digits)}


def shown(values: Sequence[float], fmt: str = ",.1f") -> str:
    """The table cell: "median [min-max]" (just the value for one run)."""
    median, low, high = spread(values)
    if len(values) < 2:
        return format(median, fmt)
    return f"{median:{fmt}} [{low:{fmt}}–{high:{fmt}}]"
