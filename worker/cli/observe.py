"""Commands that show what vrec is doing: ``health``, ``metrics`` (the database's gauges
for Prometheus) and ``report`` (a batch as one HTML file)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from worker.cli.common import App, JsonOpt, emit_json, err, fail
from worker.settings import get_settings

EXIT_UNHEALTHY = 1
out = Console(highlight=False)


def register(app: App) -> None:
    app.command()(health)
    app.command()(metrics)
    app.command()(report)


def health(
    workers: Annotated[bool, typer.Option(help="also check that a worker answers a ping")] = False,
    this_host: Annotated[
        bool, typer.Option(help="with --workers: a worker on this host must answer")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds each check may take")] = 3.0,
    as_json: JsonOpt = False,
) -> None:
    """Check the database (reachable, schema at head), the broker, the limiter's Redis and,
    with --workers, that a worker answers: one line each; exit 0 if all pass, else 1."""
    from worker.render import health_json, health_lines
    from worker.service.health import health as checks

    found = checks(get_settings(), workers=workers, this_host=this_host, timeout=timeout)
    if as_json:
        emit_json(health_json(found))
    else:
        for line in health_lines(found):
            out.print(line, soft_wrap=True)
    if not all(c.ok for c in found):
        raise typer.Exit(EXIT_UNHEALTHY)


def metrics(
    port: Annotated[int, typer.Option(help="TCP port of /metrics (0: any free one)")] = 9809,
    addr: Annotated[str, typer.Option(help="address to bind")] = "0.0.0.0",  # noqa: S104
) -> None:
    """Serve the database's gauges for Prometheus (jobs by provider and status, the oldest
    pending job's age, active batches, open circuits), asked at every scrape."""
    from worker.service.database import open_database
    from worker.service.gauges import serve_gauges

    with open_database(get_settings(), migrate_embedded=False) as db:
        try:
            bound = serve_gauges(db, port, addr)
        except OSError as exc:
            fail(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}")
        err.print(f"metrics on http://{addr}:{bound}/metrics", highlight=False)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()  # until SIGINT or SIGTERM ends the process


def report(
    batch: Annotated[int, typer.Argument(help="batch id")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the HTML file to write")] = Path(
        "report.html"
    ),
    max_images: Annotated[
        int, typer.Option(min=0, max=1000, help="at most this many pictures; the rest counted")
    ] = 48,
) -> None:
    """Write a batch as one self-contained HTML file: totals, outcome by provider, calls,
    throughput, failures by vendor code, pictures with what each vendor read, invalid files."""
    from worker.htmlreport import render_report
    from worker.providers.registry import names
    from worker.render import plain
    from worker.service.database import open_database
    from worker.service.report import build_report

    settings = get_settings()
    with open_database(settings) as db:
        found = build_report(db, batch, max_images=max_images)
    fits = {name: fit for name in names() if (fit := settings.provider(name).fit) is not None}
    html = render_report(found, fits)
    try:
        output.write_text(html, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    err.print(plain(f"report of batch {batch} written to {output.resolve()}"), soft_wrap=True)
