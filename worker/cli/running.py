"""Commands that create batches and follow them: ``run``, ``wait``, ``reprocess``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from worker.cli.common import (
    EXIT_INTERRUPTED,
    App,
    ConcurrencyOpt,
    DetachOpt,
    ForceOpt,
    JsonOpt,
    LabelOpt,
    OptionOpt,
    ProviderOpt,
    emit_json,
    err,
    fail,
    parse_options,
    split_list,
)
from worker.settings import get_settings

if TYPE_CHECKING:
    from models.db import Database
    from worker.service.status import Summary

EXIT_FAILED = 1
EXIT_CIRCUIT_OPEN = 3


def register(app: App) -> None:
    app.command()(run)
    app.command()(wait)
    app.command()(reprocess)


def run(
    paths: Annotated[list[str], typer.Argument(help="files, folders, CSV manifests or URLs")],
    provider: ProviderOpt,
    option: OptionOpt = None,
    label: LabelOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    concurrency: ConcurrencyOpt = 16,
    detach: DetachOpt = False,
) -> None:
    """Register images, process them, and print a summary when every job is done."""
    from worker.service.database import open_database
    from worker.service.submit import submit

    settings = get_settings()
    options = parse_options(option)
    if detach and settings.broker_url is None:
        fail("--detach needs VREC_BROKER_URL (workers to do the work)")
    with open_database(settings) as db:
        batch_id = submit(db, settings, paths, provider, options, label=label, force=force)
        _started(db, batch_id, as_json=as_json, detach=detach, concurrency=concurrency)


def wait(
    batch: Annotated[int, typer.Argument(help="batch id (from `vrec run --json` or batches)")],
    as_json: JsonOpt = False,
    concurrency: ConcurrencyOpt = 16,
) -> None:
    """Follow an existing batch to the end (e.g. after `vrec resume`), then summarise it."""
    from worker.service.batches import get_batch
    from worker.service.database import open_database

    with open_database(get_settings()) as db:
        with db.transaction() as session:
            get_batch(session, batch)
        _follow_and_report(db, batch, as_json=as_json, concurrency=concurrency)


def reprocess(
    to_provider: Annotated[
        list[str],
        typer.Option("-p", "--to-provider", help="provider to read the images with; repeatable"),
    ],
    query: Annotated[
        str | None, typer.Option(help="one SELECT returning an image_id column (read-only)")
    ] = None,
    batch: Annotated[int | None, typer.Option(help="the images of this batch")] = None,
    status: Annotated[
        list[str] | None, typer.Option(help="with --batch: only its jobs in these statuses")
    ] = None,
    of_provider: Annotated[
        str | None, typer.Option("--provider", help="with --batch: only this provider's jobs")
    ] = None,
    option: OptionOpt = None,
    label: LabelOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    concurrency: ConcurrencyOpt = 16,
    detach: DetachOpt = False,
) -> None:
    """A new batch over the images a SQL query (or another batch) names, then run it.

    `-p` names the provider to read them with; with --batch, `--provider` and `--status`
    choose which of that batch's jobs' images.
    """
    from worker.service.database import open_database
    from worker.service.reprocess import batch_query
    from worker.service.reprocess import reprocess as new_batch

    settings = get_settings()
    if (query is None) == (batch is None):
        fail("give exactly one of --query SQL or --batch N")
    if detach and settings.broker_url is None:
        fail("--detach needs VREC_BROKER_URL (workers to do the work)")
    with open_database(settings) as db:
        sql = query
        if batch is not None:
            sql = batch_query(db, batch, statuses=split_list(status), provider=of_provider)
        assert sql is not None
        options = parse_options(option)
        batch_id = new_batch(db, settings, sql, to_provider, options, label=label, force=force)
        _started(db, batch_id, as_json=as_json, detach=detach, concurrency=concurrency)


def _started(db: Database, batch_id: int, *, as_json: bool, detach: bool, concurrency: int) -> None:
    """A new batch: print its id (detached), or follow it to the end."""
    if detach:
        if as_json:
            emit_json({"batch_id": batch_id})
        else:
            sys.stdout.write(f"{batch_id}\n")
        return
    _follow_and_report(db, batch_id, as_json=as_json, concurrency=concurrency)


def _follow_and_report(db: Database, batch_id: int, *, as_json: bool, concurrency: int) -> None:
    """Dispatch and watch a batch (embedded worker if there is no broker); print its summary,
    and exit with the code a cron job reads (see :func:`exit_code`)."""
    from worker.render import print_summary, summary_json

    result = follow_batch(db, batch_id, quiet=as_json, concurrency=concurrency)
    if as_json:
        emit_json(summary_json(result))
    else:
        print_summary(Console(), result)
    if result.paused:
        err.print(f"batch {batch_id} paused: vrec wait {batch_id} resumes it", soft_wrap=True)
    code = exit_code(result)
    if code:
        raise typer.Exit(code)


def exit_code(result: Summary) -> int:
    """0: every job terminal, none failed; 1: done, some failed; 3: a provider's circuit
    is open (its jobs wait); 130: interrupted (paused). Usage errors exit 2 elsewhere."""
    if result.paused:
        return EXIT_INTERRUPTED
    if result.blocked:
        return EXIT_CIRCUIT_OPEN
    return EXIT_FAILED if result.counts.get("failed", 0) else 0


def follow_batch(db: Database, batch_id: int, *, quiet: bool, concurrency: int) -> Summary:
    """Dispatch and watch a batch to the end (an embedded worker if there is no broker),
    with its progress on stderr (notices only if ``quiet``); its summary."""
    from worker.render import ProgressDisplay
    from worker.service.follow import run_batch

    with ProgressDisplay(err, quiet=quiet) as display:
        return run_batch(
            get_settings(),
            db,
            batch_id,
            concurrency=concurrency,
            on_progress=display,
            on_notice=display.notice,
        )
