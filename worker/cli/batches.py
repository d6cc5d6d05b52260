"""Commands that work on batches after they ran, and on the queue: ``batches``,
``status``, ``retry``, ``cancel``, ``export``, ``prune``, ``providers``, ``resume``."""

from __future__ import annotations

import sys
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from worker.cli.common import (
    DATE_FORMATS,
    App,
    JsonOpt,
    emit_json,
    err,
    fail,
    local_time,
    split_list,
)
from worker.settings import get_settings

DateOpt = Annotated[datetime | None, typer.Option(formats=DATE_FORMATS)]
out = Console()


def register(app: App) -> None:
    for command in (batches, status, retry, cancel, export, prune, providers, resume):
        app.command()(command)


def batches(
    since: Annotated[
        datetime | None,
        typer.Option(formats=DATE_FORMATS, help="created at or after (local time)"),
    ] = None,
    label: Annotated[str | None, typer.Option(help="label contains this")] = None,
    key: Annotated[str | None, typer.Option(help="the batch a producer's key created")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List batches: jobs by status, calls, billed calls, reused answers, done or active."""
    from worker.render import batches_json, print_batches
    from worker.service.batches import list_batches
    from worker.service.database import open_database

    with open_database(get_settings()) as db:
        found = list_batches(db, since=local_time(since), label=label, key=key, limit=limit)
    if as_json:
        emit_json(batches_json(found))
    else:
        print_batches(out, found)


def status(
    batch: Annotated[int | None, typer.Argument(help="a batch to show in detail")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Jobs by provider and status and open circuits; with BATCH, that batch in detail:
    per provider counts, rate, ETA, calls, errors by vendor code."""
    from worker.render import batch_detail_json, print_batch_detail, print_status, status_json
    from worker.service.batches import batch_detail
    from worker.service.database import open_database
    from worker.service.status import queue_status

    settings = get_settings()
    with open_database(settings) as db:
        if batch is None:
            queue = queue_status(db)
            emit_json(status_json(queue)) if as_json else print_status(out, queue)
            return
        detail = batch_detail(db, settings, batch)
    emit_json(batch_detail_json(detail)) if as_json else print_batch_detail(out, detail)


def retry(
    batch: Annotated[int, typer.Argument(help="batch id")],
    status: Annotated[
        list[str] | None,
        typer.Option(help="statuses to retry, comma-separated (default: failed)"),
    ] = None,
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="only this one")] = None,
    code: Annotated[str | None, typer.Option(help="only jobs that ended with this code")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a batch's chosen jobs back to pending with a fresh retry budget (history kept);
    `vrec wait BATCH` then runs them."""
    from worker.service.batches import DEFAULT_RETRY
    from worker.service.batches import retry as retry_jobs
    from worker.service.database import open_database

    statuses = split_list(status) or list(DEFAULT_RETRY)
    with open_database(get_settings()) as db:
        n = retry_jobs(db, batch, statuses=statuses, provider=provider, code=code)
    if as_json:
        emit_json({"batch_id": batch, "retried": n})
    elif n:
        err.print(f"batch {batch}: {n} jobs back to pending; `vrec wait {batch}` runs them")
    else:
        err.print(f"batch {batch}: no job matches ({', '.join(statuses)}): nothing to retry")


def cancel(
    batch: Annotated[int, typer.Argument(help="batch id")],
    as_json: JsonOpt = False,
) -> None:
    """Cancel a batch's pending and queued jobs (running ones finish)."""
    from worker.service.batches import cancel as cancel_jobs
    from worker.service.database import open_database

    with open_database(get_settings()) as db:
        n = cancel_jobs(db, batch)
    if as_json:
        emit_json({"batch_id": batch, "cancelled": n})
    else:
        err.print(
            f"batch {batch}: {n} jobs cancelled" if n else f"batch {batch}: nothing to cancel"
        )


def export(
    batch: Annotated[int | None, typer.Argument(help="batch id (or --query)")] = None,
    query: Annotated[
        str | None, typer.Option(help="one SELECT returning an image_id column")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="file (default: stdout)")
    ] = None,
    bom: Annotated[
        bool, typer.Option(help="CSV: start with a UTF-8 byte-order mark (for Excel)")
    ] = False,
) -> None:
    """Results as CSV or JSON Lines: one row per submitted file x provider, with the typed
    fields, status, error and source path; streamed."""
    from worker.render import plain
    from worker.service.database import open_database
    from worker.service.export import rows, write

    if (batch is None) == (query is None):
        fail("give exactly one of BATCH or --query SQL")
    if fmt not in ("csv", "jsonl"):
        fail(f"--format must be csv or jsonl, not {fmt!r}")
    with open_database(get_settings()) as db:
        found = rows(db, batch_id=batch, sql=query)
        first = next(found, None)  # a bad query fails here, before a file is created
        every = chain([first], found) if first is not None else found
        if output is None:
            n = write(sys.stdout, every, fmt, bom=bom)  # type: ignore[arg-type]
        else:
            with output.open("w", encoding="utf-8", newline="") as fh:
                n = write(fh, every, fmt, bom=bom)  # type: ignore[arg-type]
    shown = f"exported {n} rows" + (f" to {output}" if output else "")
    err.print(plain(shown), soft_wrap=True)


def prune(
    before: Annotated[
        datetime,
        typer.Option(formats=DATE_FORMATS, help="remove batches created before (local time)"),
    ],
    dry_run: Annotated[bool, typer.Option(help="say what would go, remove nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove old batches with their jobs, attempts and results, and the images no batch
    refers to any more."""
    from worker.render import pruned_json, pruned_line
    from worker.service.batches import prune as prune_batches
    from worker.service.database import open_database

    moment = local_time(before)
    assert moment is not None
    with open_database(get_settings()) as db:
        pruned = prune_batches(db, before=moment, dry_run=dry_run)
    if as_json:
        emit_json(pruned_json(pruned, dry_run=dry_run))
    else:
        err.print(pruned_line(pruned, dry_run=dry_run))


def providers(as_json: JsonOpt = False) -> None:
    """Each provider's rate, image limits, credentials (set or missing), circuit, base URL."""
    from worker.render import print_providers, providers_json
    from worker.service.database import open_database
    from worker.service.providers import providers as setups

    settings = get_settings()
    with open_database(settings) as db:
        found = setups(db, settings)
    emit_json(providers_json(found)) if as_json else print_providers(out, found)


def resume(
    provider: Annotated[str, typer.Argument(help="provider whose circuit to close")],
) -> None:
    """Close a provider's open circuit (after fixing its credentials): its jobs run again."""
    from worker.providers.registry import provider_class
    from worker.service.database import open_database
    from worker.service.status import resume as close_circuit

    provider_class(provider)  # an unknown name is an error, not "was not open"
    with open_database(get_settings()) as db:
        closed = close_circuit(db, provider)
    err.print(f"{provider}: " + ("circuit closed" if closed else "circuit was not open"))
