"""`bench.view`'s own arithmetic and options (no broker)."""

from __future__ import annotations

import pytest

from bench.view import main, tenth_rates


def test_tenth_rates_are_events_per_second_between_samples_from_the_first_send() -> None:
    samples = [(10.0, 2000, 150.0), (30.0, 4000, 160.0), (30.0, 4000, 160.0),
               (80.0, 6000, 170.0)]
    # The first tenth counts from the start (0 s, 0 events); a sample taken in the same
    # tenth of a second as the one before has no rate rather than a division by zero.
    assert tenth_rates(samples) == [200.0, 100.0, None, 40.0]
    assert tenth_rates([]) == []


def test_partitions_must_be_a_positive_count(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("many", "0"):
        with pytest.raises(SystemExit):
            main(["--partitions", bad])
        assert "--partitions" in capsys.readouterr().err
