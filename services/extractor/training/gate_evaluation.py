"""The article gate against the extractor's own cross-validation, on the training part only
(`python -m services.extractor.training.gate --evaluate`; slow: it parses every training
article and runs the partnership models' nested cross-validation).

Both sides are out of fold: each article's gate score comes from a gate fitted without its
story (the gate's grouped five-fold split), each article's predictions from partnership
models fitted without its story (`train.out_of_fold`, the shipped model's settings). An
article the out-of-fold gate refuses predicts nothing. Reported: the gate's recall of
gold-event articles and gold events, of the events the extractor finds without the gate,
and the extractor's detection/strict F1 and no-event flag rate with and without the gate.
The gate's threshold was chosen on the same out-of-fold scores (for a recall of gold
events, not for these figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from services.extractor.cues import default_cues
from services.extractor.evaluation import Event, parties_match
from services.extractor.model import PartnershipModel, default_model_path
from services.extractor.training import train as partnership_training
from services.extractor.training.corpus import CORPUS, load, training_part
from services.extractor.training.gate import Settings, cv_report, rows, selected_by


def found_events(gold: tuple[Event, ...], predicted: list[Event]) -> int:
    return sum(1 for g in gold if any(parties_match(g.parties, p.parties) for p in predicted))


def evaluate(corpus: Path = CORPUS, cache: Path | None = None) -> dict:
    with threadpool_limits(limits=1):
        return _evaluate(corpus, cache)


def _evaluate(corpus: Path, cache: Path | None) -> dict:
    settings = Settings()
    data = rows(training_part(load(corpus)), default_cues(), selected_by(corpus))
    best = min((cv_report(data, c, settings) for c in settings.c),
               key=lambda r: (r["pass_rate_wire"], r["c"]))
    passes = {i.article.article_id: bool(s >= best["threshold"])
              for i, s in zip(data.items, best["scores"], strict=True)}

    meta = PartnershipModel.load(default_model_path()).meta["cross_validation"]
    pt = partnership_training
    ps = pt.Settings(stage_c=(meta["stage_c"],))
    pdata = pt.load_data(corpus, cache)
    oof = pt.out_of_fold(pdata, ps, meta["detect_c"])
    flat = np.concatenate([r for r in oof.raw if len(r)])
    labels = np.array([e.positive for exs in pdata.per_article for e in exs], dtype=float)
    calibration = pt.isotonic_calibration(flat, labels)
    ungated = pt.predictions(pdata, oof.raw, oof.stages[meta["stage_c"]], calibration,
                             meta["threshold"])
    # articles the cue table's gate refuses are not in `passes`: refused either way
    gated = [p if passes.get(i.article.article_id, False) else []
             for i, p in zip(pdata.items, ungated, strict=True)]
    items = pdata.items
    with_events = [i for i in items if i.events]
    kept = [i for i in with_events if passes.get(i.article.article_id, False)]
    found = sum(found_events(i.events, p) for i, p in zip(items, ungated, strict=True))
    found_gated = sum(found_events(i.events, p) for i, p in zip(items, gated, strict=True))

    def figures(predicted: list[list[Event]]) -> dict:
        s = pt.article_scores(items, predicted).as_dict()
        return {"detection": {k: round(v, 4) for k, v in s["detection"].items()},
                "strict": {k: round(v, 4) for k, v in s["strict"].items()},
                "no_event_prediction_rate": round(s["no_event_prediction_rate"], 4),
                "predicted_events": s["predicted_events"]}

    return {
        "articles": len(items), "gate": {"c": best["c"], "threshold": best["threshold"]},
        "gate_pass_rate_training_part": round(sum(passes.values()) / len(items), 4),
        "gate_pass_rate_wire_estimate": round(best["pass_rate_wire"], 4),
        "gold_event_articles_kept": f"{len(kept)} of {len(with_events)}",
        "gold_events_kept": f"{sum(len(i.events) for i in kept)} of "
                            f"{sum(len(i.events) for i in with_events)}",
        "found_events_kept": f"{found_gated} of {found}",
        "without_gate": figures(ungated), "with_gate": figures(gated)}
