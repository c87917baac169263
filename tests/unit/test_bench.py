"""The benchmark's pure parts: corpus reading (TRAIN only), the generated mix, the figures."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from bench.__main__ import latency_figures, latency_stream, targets_met
from bench.corpus import (
    news_mix,
    parse_reuters_train,
    reuters_date,
    synthetic_articles,
)
from bench.pipeline import LatencyFigures
from bench.stats import (
    bucket_quantile,
    buckets,
    cpu_seconds,
    parse_metrics,
    peak_rss_mb,
    percentile,
    rounded,
    total,
)

SGML = """<!DOCTYPE lewis SYSTEM "lewis.dtd">
<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" CGISPLIT="TRAINING-SET" OLDID="1" NEWID="11">
<DATE>26-FEB-1987 15:01:01.79</DATE>
<TEXT>&#2;
<TITLE>ACME &amp; BOLT FORM VENTURE</TITLE>
<BODY>Acme Corp and Bolt Inc said they formed a joint venture.
 Reuter
&#3;</BODY></TEXT>
</REUTERS>
<REUTERS TOPICS="YES" LEWISSPLIT="TEST" CGISPLIT="TRAINING-SET" OLDID="2" NEWID="12">
<DATE>26-FEB-1987 15:02:01.79</DATE>
<TEXT><TITLE>SECRET TEST STORY</TITLE><BODY>Must never be read.</BODY></TEXT>
</REUTERS>
<REUTERS TOPICS="NO" LEWISSPLIT="NOT-USED" CGISPLIT="TRAINING-SET" OLDID="3" NEWID="13">
<DATE>26-FEB-1987 15:03:01.79</DATE>
<TEXT><TITLE>UNUSED</TITLE><BODY>Never read either.</BODY></TEXT>
</REUTERS>
<REUTERS TOPICS="NO" LEWISSPLIT="TRAIN" CGISPLIT="TRAINING-SET" OLDID="4" NEWID="14">
<DATE>27-FEB-1987 09:00:00.00</DATE>
<TEXT type="BRIEF"><TITLE>NO BODY HERE</TITLE></TEXT>
</REUTERS>
"""


def test_reuters_reads_train_documents_only() -> None:
    articles = list(parse_reuters_train(SGML))
    assert [a.id for a in articles] == ["reuters-11"]
    (article,) = articles
    assert article.title == "ACME & BOLT FORM VENTURE"
    assert article.text == "Acme Corp and Bolt Inc said they formed a joint venture."
    assert article.published_at == "1987-02-26T15:01:01Z"
    assert "never" not in " ".join(a.text for a in articles).lower()


def test_reuters_dates() -> None:
    assert reuters_date(" 5-MAR-1987 09:04:55.10") == "1987-03-05T09:04:55Z"
    assert reuters_date("garbage") is None


def test_news_mix_falls_back_to_the_generated_mix(tmp_path: Path) -> None:
    articles, origin = news_mix(50, reuters_dir=tmp_path / "absent")
    assert len(articles) == 50 and "generated" in origin
    assert len({a.id for a in articles}) == 50


def test_news_mix_reads_a_reuters_folder(tmp_path: Path) -> None:
    (tmp_path / "reut2-000.sgm").write_text(SGML, encoding="latin-1")
    articles, origin = news_mix(3, reuters_dir=tmp_path)
    assert "Reuters" in origin
    assert [a.id for a in articles] == ["reuters-11", "reuters-11-r1", "reuters-11-r2"]


def test_synthetic_mix_is_varied_with_about_a_tenth_partnerships() -> None:
    articles = synthetic_articles(2000, seed=3)
    assert len({a.id for a in articles}) == 2000
    assert len({a.text for a in articles}) == 2000
    partnership = [a for a in articles if "partner" in a.text or "venture" in a.text]
    assert 0.07 < len(partnership) / len(articles) < 0.2
    headlines = Counter(a.title.split()[-1] for a in articles)
    assert len(headlines) > 20
    assert synthetic_articles(30, seed=3) == articles[:30]


def test_latency_stream_injects_partnership_stories() -> None:
    background = synthetic_articles(100, seed=1, partnership_share=0.0)
    stream = latency_stream(background, 100, 0.1, seed=1)
    injected = [a for a in stream if a.id.startswith("latency-")]
    assert len(stream) == 100 and len(injected) == 10
    assert latency_stream(background, 40, 0, seed=1) == background[:40]


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_rounded_keeps_json_clean() -> None:
    assert rounded(1.26, 1) == 1.3
    assert rounded(math.nan) is None and rounded(math.inf) is None


def test_metrics_totals_filter_by_labels() -> None:
    text = (
        "# TYPE radar_messages_consumed counter\n"
        'radar_messages_consumed_total{service="extractor",topic="a"} 3.0\n'
        'radar_messages_consumed_total{service="extractor",topic="b"} 4.0\n'
        'radar_messages_consumed_total{service="aggregator",topic="a"} 5.0\n')
    samples = parse_metrics(text)
    assert total(samples, "radar_messages_consumed_total") == 12
    assert total(samples, "radar_messages_consumed_total", topic="a") == 8
    assert total(samples, "radar_messages_consumed_total", service="extractor", topic="b") == 4


def test_peak_rss_of_this_process() -> None:
    import os

    assert 1 < peak_rss_mb(os.getpid()) < 100_000


def test_profile_buckets_take_the_first_matching_rule() -> None:
    from bench.profile import OTHER, RULES, buckets

    raw = "\n".join([
        "run (services/extractor/service.py:40);prepare (/w/services/extractor/pipeline.py:150);"
        "__call__ (spacy/language.py:1000) 7",
        "pipe (spacy/language.py:1600);predict (thinc/model.py:300) 30",
        "pipe (spacy/language.py:1600);__call__ (/w/services/extractor/components/x.py:9) 5",
        "getmany (aiokafka/consumer/consumer.py:1200) 2",
        "select (selectors.py:468) 1",
        "not a py-spy line",
    ])
    counts = buckets(raw, RULES["extractor"])
    assert counts == {"gate, sentence split, windows, names (before the parse)": 7,
                      "spaCy parse (tagger, parser, NER)": 30,
                      "our spaCy components (companies, candidates, partnership model)": 5,
                      "Kafka client (aiokafka)": 2, OTHER: 1}


def test_view_bench_events_are_distinct_alliances_over_a_fifth_as_many_companies() -> None:
    from bench.view import view_events

    events = view_events(500, seed=3)
    assert len({e.alliance_id for e in events}) == 500
    assert len({p for e in events for p in e.parties}) <= 100
    assert view_events(500, seed=3) == events  # deterministic


def test_targets_met_checks_the_issue_goals_on_what_the_run_measured():
    figures = {"pipeline_articles_per_s": 114.8, "pipeline_vs_full_parse": 26.0,
               "extractor_vs_full_parse": 2.98, "latency_ms_p99_at_50": 240.0,
               "latency_ms_p99_at_capacity80": 3987.0, "rss_mb_ingestor": 304.0,
               "rss_mb_aggregator": 92.0}
    assert targets_met(figures, "50", latency_samples=1102) == {
        "pipeline_articles_per_s": False, "pipeline_vs_full_parse": True,
        "extractor_vs_full_parse": False, "latency_ms_p99_at_50": True,
        "latency_ms_p99_at_capacity80": False, "peak_rss_mb": True}
    # A p99 over too few samples is no evidence; figures not measured are not judged.
    assert targets_met({"latency_ms_p99_at_50": 100.0}, "50", latency_samples=189) == {
        "latency_ms_p99_at_50": False}
    # A stack that failed the run at 80 % of capacity did not meet that goal.
    assert targets_met({"capacity80_error": "PoolTimeout: "}, "50", latency_samples=0) == {
        "latency_ms_p99_at_capacity80": False}


def test_latency_figures_report_cpu_per_article_sent_per_process() -> None:
    lat = LatencyFigures(50.0, 50.0, 200, seconds_from_fetch=[0.1, 0.2, 0.3],
                         cpu_seconds={"extractor_workers": 2.0, "broker": 0.5},
                         extractor_batch_seconds={0.05: 50.0, 0.1: 100.0, math.inf: 100.0})
    figures, ms, _ = latency_figures(lat, "50")
    assert figures["cpu_ms_per_article_at_50"] == {"broker": 2.5, "extractor_workers": 10.0}
    assert figures["extractor_batch_ms_p50_at_50"] == 50.0
    assert figures["extractor_batch_ms_p99_at_50"] == 99.0
    assert figures["latency_samples_at_50"] == 3 and ms == pytest.approx([100, 200, 300])


def test_cpu_seconds_of_this_process_grow_with_work() -> None:
    import os

    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before


def test_histogram_buckets_and_their_quantiles() -> None:
    text = """# HELP radar_batch_processing_seconds x
# TYPE radar_batch_processing_seconds histogram
radar_batch_processing_seconds_bucket{le="0.1",service="extractor"} 10.0
radar_batch_processing_seconds_bucket{le="0.5",service="extractor"} 30.0
radar_batch_processing_seconds_bucket{le="+Inf",service="extractor"} 40.0
radar_batch_processing_seconds_count{service="extractor"} 40.0
radar_batch_processing_seconds_sum{service="extractor"} 9.0
radar_batch_processing_seconds_bucket{le="0.1",service="ingestor"} 5.0
radar_batch_processing_seconds_bucket{le="0.5",service="ingestor"} 5.0
radar_batch_processing_seconds_bucket{le="+Inf",service="ingestor"} 5.0
"""
    got = buckets(parse_metrics(text), "radar_batch_processing_seconds", service="extractor")
    assert got == {0.1: 10.0, 0.5: 30.0, math.inf: 40.0}
    assert bucket_quantile(got, 25) == pytest.approx(0.1)
    assert bucket_quantile(got, 50) == pytest.approx(0.3)  # half way into (0.1, 0.5]
    assert bucket_quantile(got, 99) == 0.5  # in the +Inf bucket: the last finite bound
    assert math.isnan(bucket_quantile({}, 50))


def test_kept_up_is_the_consumption_rate_over_the_second_half() -> None:
    from bench.pipeline import kept_up

    # 100/s offered; the extractor consumed 100/s for 2 s, then only 60/s: it kept up with 60
    samples = [(t / 2, min(t / 2, 2.0) * 100 + max(0.0, t / 2 - 2.0) * 60) for t in range(13)]
    assert kept_up(samples) == pytest.approx(60.0)
    assert math.isnan(kept_up(samples[:3]))  # too short a run to say


def test_queue_peak_per_hop() -> None:
    lat = LatencyFigures(50.0, 50.0, 10, queue=[(0.5, 3.0, 0.0), (1.0, 12.0, 2.0),
                                                (1.5, 1.0, 5.0)])
    assert lat.queue_peak() == (12.0, 5.0)
    assert all(math.isnan(x) for x in LatencyFigures(50.0, 50.0, 10).queue_peak())


def test_intake_steps_are_timed_per_input_in_order() -> None:
    from bench.intake import cpu_ms_each

    ms, out = cpu_ms_each(lambda x: x * 2, [1, 2, 3])
    assert out == [2, 4, 6] and ms >= 0
    assert cpu_ms_each(str, [])[1] == []
