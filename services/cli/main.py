"""`radar`: run the stack, feed it news, and look at the live alliance view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated

import httpx
import typer

from services.cli.backfill import backfill as backfill_command
from services.cli.console import err, fail, out, wait_for_signal
from services.cli.feeds import feeds_app
from services.cli.feeds import ingest as ingest_command
from services.cli.feeds import ingestor as ingestor_command
from services.cli.replay import replay as replay_command
from services.cli.webhooks import webhooks_app
from shared.contracts import Stage

app = typer.Typer(help="Alliance Radar: partnerships between companies, live from the news.",
                  no_args_is_help=True, add_completion=False)

# ---------------------------------------------------------------- services and broker


@app.command()
def extractor() -> None:
    """Run the extractor service (articles -> partnership events)."""
    from services.extractor.service import main

    main()


@app.command()
def aggregator() -> None:
    """Run one aggregator worker (Faust tables, change feed, query API)."""
    from services.aggregator.service import main

    main()


@app.command()
def broker(port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 "
                                                     "(default: RADAR_BROKER_PORT or 9092)")]
           = None) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) until Ctrl-C."""
    from shared.broker import BrokerError, EmbeddedBroker
    from shared.settings import CliSettings, load

    port = port or load(CliSettings).broker_port
    try:
        embedded = EmbeddedBroker(port=port).start()
    except BrokerError as exc:
        raise fail(str(exc)) from None
    out.print(f"embedded broker ready on [bold]{embedded.bootstrap_servers}[/bold] "
              "(memory only; Ctrl-C stops it)")
    wait_for_signal()
    embedded.stop()


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Stream the bundled sample articles in and show "
                                             "the alliance view updating.")] = False,
    bootstrap_servers: Annotated[str | None, typer.Option(help="Use this Kafka instead of "
                                                          "starting the embedded broker.")]
    = None,
    demo_interval: Annotated[float, typer.Option(help="Seconds between demo articles.")]
    = 1.0,
    run_dir: Annotated[Path, typer.Option(help="Logs and local state.")] = Path(".run"),
    fresh: Annotated[bool, typer.Option(help="Start empty: forget the view, the seen-set "
                                             "and the change history kept from earlier "
                                             "runs (the journal in <run-dir>/journal).")]
    = False,
    extractors: Annotated[int, typer.Option(min=1, help="Extractor processes in the one "
                                                     "consumer group (each then extracts in "
                                                     "its own process).")] = 1,
) -> None:
    """Start the embedded broker (unless --bootstrap-servers) and the three services.

    The embedded broker's topics and consumer offsets are kept in <run-dir>/journal: stop
    with Ctrl-C and start again, and the view, the seen-set and the change history are as
    they were. --fresh starts empty."""
    from services.cli.live import run_live
    from services.cli.stack import Stack
    from shared.broker import BrokerError
    from shared.settings import CliSettings, load

    cli = load(CliSettings)
    journal_dir = None if bootstrap_servers else run_dir / "journal"
    if fresh and journal_dir is not None and journal_dir.exists():
        import shutil

        shutil.rmtree(journal_dir)
        out.print(f"--fresh: removed the journal of earlier runs ({journal_dir})")
    stack = Stack(run_dir=run_dir, bootstrap_servers=bootstrap_servers,
                  broker_port=cli.broker_port, journal_dir=journal_dir, extractors=extractors)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        started = time.monotonic()
        stack.start()
        where = bootstrap_servers or (f"embedded broker {stack.bootstrap}, journal in "
                                      f"{journal_dir}")
        out.print(f"[bold]Alliance Radar[/bold] on {where}; logs in {run_dir}/logs")
        if stack.restored is not None:
            r = stack.restored
            out.print(f"restored {r.records} records of {r.topics} topics and the offsets of "
                      f"{r.groups} consumer groups from the journal in {r.seconds:.1f}s "
                      "(--fresh starts empty)")
        stack.wait_healthy(timeout=120)
        for name, svc in stack.services.items():
            urls = "  ".join(f"{k}: {v}" for k, v in svc.urls().items())
            out.print(f"  [green]{name:<10}[/green] ready  {urls}")
        out.print(f"stack ready in {time.monotonic() - started:.1f}s. Ctrl-C stops everything.")
        articles = _demo_articles() if demo else []
        asyncio.run(run_live(stack, articles, demo_interval, out))
    except KeyboardInterrupt:
        pass
    except (BrokerError, RuntimeError, TimeoutError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        stack.stop()
        raise typer.Exit(1) from None
    finally:
        out.print("stopping services and broker ...")
        stack.stop(report=out.print)
        out.print("stopped.")


def _demo_articles() -> list[dict]:
    sample = resources.files("services.cli").joinpath("samples", "demo_articles.jsonl")
    return [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- feeding news in

# The ingestor service, one-shot ingestion and the standing feeds live with the ingestor's
# CLI code; they share its cleaning, language check and dedup.
app.command("ingestor")(ingestor_command)
app.command("ingest")(ingest_command)
app.command("backfill")(backfill_command)
app.add_typer(feeds_app, name="feeds")
app.add_typer(webhooks_app, name="webhooks")


# ---------------------------------------------------------------- offline extraction


@app.command()
def extract(
    input_path: Annotated[Path, typer.Option("--input", help="Articles as JSON Lines "
                                             "(- for stdin).")],
    output: Annotated[Path | None, typer.Option(help="Events as JSON Lines "
                                                "[default: stdout].")] = None,
) -> None:
    """Extract partnership events from articles offline, without a broker."""
    from services.cli.offline import run_extraction
    from services.extractor.pipeline import Extractor

    if str(input_path) != "-" and not input_path.is_file():
        raise fail(f"no such file: {input_path}", 2)
    extractor = Extractor.load()
    if output is None:
        results = run_extraction(extractor, input_path, sys.stdout, err)
    else:
        with output.open("w") as fh:
            results = run_extraction(extractor, input_path, fh, err)
    events = sum(len(v) for v in results.values())
    err.print(f"{len(results)} article(s), {events} event(s)")


@app.command(name="eval")
def evaluate(
    gold: Annotated[Path | None, typer.Option(help="Gold JSONL (ANNOTATION.md format); "
                                              "default: the corpus's held-out slice.")]
    = None,
    articles: Annotated[Path | None, typer.Option(help="The articles, JSONL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")]
    = False,
    errors: Annotated[bool, typer.Option(help="List missed, spurious and wrong-stage "
                                              "events (not on the held-out slice).")] = False,
    model: Annotated[Path | None, typer.Option(help="A trained partnership model; default: "
                                               "the shipped one.")] = None,
) -> None:
    """Score the extractor against gold: detection and strict P/R/F1, no-event articles,
    stage confusion and the calibration of its confidence. Without --gold: the frozen
    held-out slice of the labelled corpus."""
    from services.cli.offline import (
        calibration_table,
        confusion_table,
        evaluate_with_calibration,
        read_valid,
        score_table,
    )
    from services.extractor.evaluation import load_gold_file
    from services.extractor.pipeline import Extractor
    from services.extractor.training.corpus import CORPUS, heldout_part, load

    if (gold is None) != (articles is None):
        raise fail("give both --gold and --articles, or neither (the held-out slice)", 2)
    if gold is None and errors:
        raise fail("--errors is refused on the held-out slice: nobody reads its errors, so "
                    "its figures stay a fair estimate. Use --gold/--articles with your own "
                    "development set.", 2)
    for path in (gold, articles, model):
        if path is not None and not path.is_file():
            raise fail(f"no such file: {path}", 2)
    if gold is None:
        if not (CORPUS / "heldout.txt").is_file():
            raise fail(f"no labelled corpus at {CORPUS}", 2)
        items = heldout_part(load())
        gold_events = {i.article.article_id: list(i.events) for i in items}
        docs = [i.article for i in items]
        title = f"held-out slice of {CORPUS.relative_to(CORPUS.parents[1])} ({len(docs)} articles)"
    else:
        assert articles is not None
        gold_events = load_gold_file(gold)
        docs = read_valid(articles, err)
        title = f"{articles.name} vs {gold.name}"
    extractor = Extractor.load(model_path=str(model) if model else None)
    scores, cal = evaluate_with_calibration(extractor, gold_events, docs)
    if as_json:
        print(json.dumps(scores.as_dict() | {"calibration": cal.as_dict(),
                                             "extractor_version": extractor.version,
                                             "threshold": extractor.threshold}, indent=2))
    else:
        out.print(score_table(scores, f"{title}; extractor {extractor.version}, minimum "
                                      f"confidence {extractor.threshold:.2f}"))
        out.print(confusion_table(scores))
        out.print(calibration_table(cal))
    if errors:
        for e in scores.errors:
            out.print(f"{e['kind']:<12} {e['article_id']}: {' + '.join(e['parties'])} "
                      f"({e['stage']})")


@app.command()
def train(
    output: Annotated[Path | None, typer.Option(help="Where to write the model; default: "
                                                "the shipped model's path.")] = None,
    corpus: Annotated[Path | None, typer.Option(help="A labelled corpus folder "
                                                "(articles.jsonl, gold.jsonl, optional "
                                                "heldout.txt); default: corpus/reuters21578.")]
    = None,
) -> None:
    """Retrain the partnership and stage models from a labelled corpus, as `make train`
    does: cross-validated, calibrated, deterministic. Articles listed in the corpus's
    heldout.txt are left out of training."""
    from services.extractor.model import default_model_path

    try:
        from services.extractor.training.train import train as run_training
    except ImportError as exc:
        raise fail(f"training needs the train extra ({exc.name} is missing): "
                    "pip install 'alliance-radar[train]'", 2) from None
    if corpus is not None and not (corpus / "articles.jsonl").is_file():
        raise fail(f"no articles.jsonl in {corpus}", 2)
    result = run_training(output or default_model_path(), corpus=corpus)
    cv = result["cross_validation"]["scores"]
    out.print(f"model {result['version']} written to {result['model']} in "
              f"{result['seconds']} s")
    out.print(f"5-fold cross-validation on {result['trained_on']['articles']} training "
              f"articles: detection F1 {cv['detection']['f1']:.3f}, strict F1 "
              f"{cv['strict']['f1']:.3f}, no-event articles flagged "
              f"{cv['no_event_prediction_rate']:.1%}")


# ---------------------------------------------------------------- looking at the view

app.command(name="replay")(replay_command)



@app.command()
def alliances(
    company: Annotated[str | None, typer.Option(help="Only alliances with this company.")]
    = None,
    stage: Annotated[Stage | None, typer.Option(help="Only alliances at this stage.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="The view as it stood at this "
                                              "ISO date (end of day, UTC) or date-time.")]
    = None,
) -> None:
    """Print the live alliance view from the aggregator API (RADAR_API_URL)."""
    from services.cli.live import alliance_table
    from shared.auth import bearer_headers
    from shared.pages import every_row
    from shared.settings import CliSettings, auth, load

    api = load(CliSettings).api_url.rstrip("/")
    params = {k: v for k, v in {"company": company, "stage": stage and stage.value,
                                "as_of": as_of}.items() if v}

    def get(page: dict[str, str]) -> dict:
        try:
            resp = httpx.get(f"{api}/alliances", params=params | page, timeout=10,
                             headers=bearer_headers(auth().api_token))
        except httpx.HTTPError as exc:
            raise fail(f"cannot reach the aggregator at {api}: {exc}") from None
        if resp.status_code == 401:
            raise fail(f"401 from {api}: the query API needs RADAR_API_TOKEN "
                        f"({resp.json().get('error', '')})")
        if resp.status_code != 200:
            raise fail(f"{resp.status_code} from {api}: {resp.text[:300]}")
        return resp.json()

    rows = every_row(get)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        out.print(alliance_table(rows))


@app.command()
def watch(
    company: Annotated[str | None, typer.Option(help="Only changes involving this company.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
    = False,
    from_beginning: Annotated[bool, typer.Option(help="Replay every change first.")] = False,
    limit: Annotated[int | None, typer.Option(help="Exit after this many changes.")] = None,
) -> None:
    """Print alliance changes as they arrive on alliances.changes.v1."""
    from services.cli.live import watch_changes

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch_changes(company=company, as_json=as_json,
                                  from_beginning=from_beginning, limit=limit, console=out))


@app.command()
def config(markdown: Annotated[bool, typer.Option(help="As a Markdown table.")] = False) -> None:
    """List every RADAR_* environment variable with its default and meaning."""
    from services.cli.docs import config_markdown
    from shared.settings import env_vars

    if markdown:
        print(config_markdown())
        return
    for name, (_, _, default, description) in env_vars().items():
        out.print(f"[bold]{name}[/bold] = {default!s}  [dim]{description}[/dim]")


@app.command()
def docs(readme: Annotated[Path, typer.Argument()] = Path("README.md")) -> None:
    """Regenerate the README sections built from the code (settings, topics, schemas)."""
    from services.cli.docs import update

    out.print(f"{readme}: {'updated' if update(readme) else 'up to date'}")


@app.command()
def asyncapi(
    output: Annotated[Path | None, typer.Argument(help="Where to write it [default: "
                                                  "deploy/asyncapi/asyncapi.json].")] = None,
    check: Annotated[bool, typer.Option(help="Only compare; exit 1 if the file is stale.")]
    = False,
) -> None:
    """Write the AsyncAPI document of every topic (from the topic registry and the models)."""
    from services.cli.docs import write_asyncapi
    from shared.asyncapi import DEFAULT_OUTPUT

    raise typer.Exit(write_asyncapi(output or DEFAULT_OUTPUT, check=check))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
