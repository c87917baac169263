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
from rich.console import Console

from services.cli.feeds import feeds_app
from services.cli.feeds import ingest as ingest_command
from services.cli.feeds import ingestor as ingestor_command
from services.cli.replay import replay as replay_command
from shared.contracts import Stage

app = typer.Typer(help="Alliance Radar: partnerships between companies, live from the news.",
                  no_args_is_help=True, add_completion=False)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


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
        raise _fail(str(exc)) from None
    out.print(f"embedded broker ready on [bold]{embedded.bootstrap_servers}[/bold] "
              "(memory only; Ctrl-C stops it)")
    _wait_for_signal()
    embedded.stop()


def _wait_for_signal() -> None:
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    while not received:
        signal.pause() if hasattr(signal, "pause") else time.sleep(0.5)


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
) -> None:
    """Start the embedded broker (unless --bootstrap-servers) and the three services."""
    from services.cli.live import run_live
    from services.cli.stack import SERVICES, Stack
    from shared.broker import BrokerError
    from shared.settings import CliSettings, load

    cli = load(CliSettings)
    stack = Stack(run_dir=run_dir, bootstrap_servers=bootstrap_servers,
                  broker_port=cli.broker_port)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        started = time.monotonic()
        stack.start()
        where = bootstrap_servers or f"embedded broker {stack.bootstrap} (memory only)"
        out.print(f"[bold]Alliance Radar[/bold] on {where}; logs in {run_dir}/logs")
        stack.wait_healthy(timeout=120)
        for name in SERVICES:
            urls = "  ".join(f"{k}: {v}" for k, v in stack.services[name].urls().items())
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
        stack.stop()
        out.print("stopped.")


def _demo_articles() -> list[dict]:
    sample = resources.files("services.cli").joinpath("samples", "demo_articles.jsonl")
    return [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- feeding news in

# The ingestor service, one-shot ingestion and the standing feeds live with the ingestor's
# CLI code; they share its cleaning, language check and dedup.
app.command("ingestor")(ingestor_command)
app.command("ingest")(ingest_command)
app.add_typer(feeds_app, name="feeds")


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
        raise _fail(f"no such file: {input_path}", 2)
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
    gold: Annotated[Path, typer.Option(help="Gold JSONL (ANNOTATION.md format).")],
    articles: Annotated[Path, typer.Option(help="The articles, JSONL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")]
    = False,
    errors: Annotated[bool, typer.Option(help="List missed, spurious and wrong-stage "
                                              "events.")] = False,
) -> None:
    """Score the extractor against gold: detection and strict P/R/F1, no-event articles,
    stage confusion."""
    from services.cli.offline import confusion_table, score_table
    from services.cli.offline import evaluate as run_eval
    from services.extractor.pipeline import Extractor

    for path in (gold, articles):
        if not path.is_file():
            raise _fail(f"no such file: {path}", 2)
    scores = run_eval(Extractor.load(), gold, articles, err)
    if as_json:
        print(json.dumps(scores.as_dict(), indent=2))
    else:
        out.print(score_table(scores, f"{articles.name} vs {gold.name}"))
        out.print(confusion_table(scores))
    if errors:
        for e in scores.errors:
            out.print(f"{e['kind']:<12} {e['article_id']}: {' + '.join(e['parties'])} "
                      f"({e['stage']})")


# ---------------------------------------------------------------- looking at the view

app.command(name="replay")(replay_command)



@app.command()
def alliances(
    company: Annotated[str | None, typer.Option(help="Only alliances with this company.")]
    = None,
    stage: Annotated[Stage | None, typer.Option(help="Only alliances at this stage.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the live alliance view from the aggregator API (RADAR_API_URL)."""
    from services.cli.live import alliance_table
    from shared.auth import bearer_headers
    from shared.settings import CliSettings, auth, load

    api = load(CliSettings).api_url.rstrip("/")
    params = {k: v for k, v in {"company": company, "stage": stage and stage.value}.items()
              if v}
    try:
        resp = httpx.get(f"{api}/alliances", params=params, timeout=10,
                         headers=bearer_headers(auth().api_token))
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the aggregator at {api}: {exc}") from None
    if resp.status_code == 401:
        raise _fail(f"401 from {api}: the query API needs RADAR_API_TOKEN "
                    f"({resp.json().get('error', '')})")
    if resp.status_code != 200:
        raise _fail(f"{resp.status_code} from {api}: {resp.text[:300]}")
    rows = resp.json()["alliances"]
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
