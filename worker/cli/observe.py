"""Commands that show what vrec is doing: ``metrics`` (the database's gauges for
Prometheus)."""

from __future__ import annotations

import contextlib
import threading
from typing import Annotated

import typer

from worker.cli.common import App, err, fail
from worker.settings import get_settings


def register(app: App) -> None:
    app.command()(metrics)


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
