"""``vrec schedule ...``: named sources read on a cron schedule, only what is new each time.

add, list, show, pause, resume, remove, and run (now). Beat runs the schedules at their
ticks (``vrec beat``, the ``vrec.schedules`` task); see worker/service/schedules.py.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from worker.cli.common import (
    App,
    ConcurrencyOpt,
    DetachOpt,
    JsonOpt,
    OptionOpt,
    ProviderOpt,
    emit_json,
    err,
    fail,
    parse_options,
)
from worker.cli.running import exit_code, follow_batch
from worker.settings import get_settings

EXIT_RUN_FAILED = 1
NameArg = Annotated[str, typer.Argument(help="the schedule's name")]
out = Console()


def register(app: App) -> None:
    schedule = App(
        help="Scheduled ingestion: named sources read on a cron schedule, only what is new.",
        no_args_is_help=True,
    )
    schedule.command("add")(add)
    schedule.command("list")(list_schedules)
    for command in (show, pause, resume, remove, run):
        schedule.command()(command)
    app.add_typer(schedule, name="schedule")


def add(
    name: NameArg,
    source: Annotated[
        list[str],
        typer.Option(
            "--source", "-s", help="a folder, a CSV manifest or a manifest URL; repeatable"
        ),
    ],
    provider: ProviderOpt,
    cron: Annotated[
        str, typer.Option(help='cron expression, e.g. "0 2 * * *" (every day at 02:00)')
    ],
    timezone: Annotated[
        str, typer.Option(help="IANA time zone the cron expression is read in")
    ] = "UTC",
    glob: Annotated[
        list[str] | None,
        typer.Option(help="only folder files whose name matches, e.g. '*.jpg'; repeatable"),
    ] = None,
    option: OptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a schedule: at each tick, its sources' new files become one batch."""
    from worker.render_schedules import schedule_json
    from worker.service.database import open_database
    from worker.service.schedules import add as add_schedule

    options = parse_options(option)
    with open_database(get_settings()) as db:
        info = add_schedule(
            db,
            name,
            source,
            provider,
            options,
            cron=cron,
            timezone=timezone,
            globs=glob or [],
        )
    if as_json:
        emit_json(schedule_json(info))
        return
    n = len(info.sources)
    err.print(
        f"schedule {name} added: next run {schedule_json(info)['next_run_at']}"
        f" ({n} source{'' if n == 1 else 's'}, {', '.join(provider)})",
        markup=False,
    )


def list_schedules(as_json: JsonOpt = False) -> None:
    """Every schedule: cron, time zone, next run, last run and its outcome."""
    from worker.render_schedules import print_schedules, schedule_json
    from worker.service.database import open_database
    from worker.service.schedules import list_schedules as every

    with open_database(get_settings()) as db:
        found = every(db)
    if as_json:
        emit_json([schedule_json(info) for info in found])
    else:
        print_schedules(out, found)


def show(
    name: NameArg,
    runs: Annotated[int, typer.Option(help="how many of its latest runs")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """One schedule: its sources with the files each has taken, and its latest runs."""
    from worker.render_schedules import print_schedule, schedule_json
    from worker.service.database import open_database
    from worker.service.schedules import show as one

    with open_database(get_settings()) as db:
        info = one(db, name, runs=runs)
    if as_json:
        emit_json(schedule_json(info))
    else:
        print_schedule(out, info)


def pause(name: NameArg, as_json: JsonOpt = False) -> None:
    """Stop running a schedule at its ticks (`schedule run` still runs it)."""
    from worker.service.database import open_database
    from worker.service.schedules import pause as stop

    with open_database(get_settings()) as db:
        changed = stop(db, name)
    if as_json:
        emit_json({"name": name, "paused": True})
    else:
        err.print(f"schedule {name} " + ("paused" if changed else "was paused already"))


def resume(name: NameArg, as_json: JsonOpt = False) -> None:
    """Run a paused schedule again from its next tick (ticks while paused are not run)."""
    from worker.render_schedules import schedule_json
    from worker.service.database import open_database
    from worker.service.schedules import ScheduleInfo
    from worker.service.schedules import resume as restart

    with open_database(get_settings()) as db:
        schedule = restart(db, name)
    shown = schedule_json(ScheduleInfo(schedule, []))
    if as_json:
        emit_json({"name": name, "paused": False, "next_run_at": shown["next_run_at"]})
    else:
        err.print(f"schedule {name} resumed: next run {shown['next_run_at']}", markup=False)


def remove(name: NameArg, as_json: JsonOpt = False) -> None:
    """Remove a schedule with its runs and what its scans took (its batches stay)."""
    from worker.service.database import open_database
    from worker.service.schedules import remove as forget

    with open_database(get_settings()) as db:
        forget(db, name)
    if as_json:
        emit_json({"name": name, "removed": True})
    else:
        err.print(f"schedule {name} removed")


def run(
    name: NameArg,
    as_json: JsonOpt = False,
    concurrency: ConcurrencyOpt = 16,
    detach: DetachOpt = False,
) -> None:
    """Run a schedule now: register what is new in its sources, then process the batch
    (or, with --detach, leave it to the workers). Exit code 1: the run failed (its reason
    is recorded; the schedule carries on at its next tick) or jobs of its batch failed;
    3 and 130 as for `vrec run`."""
    from worker.render import print_summary, summary_json
    from worker.render_schedules import run_json, run_line
    from worker.service.database import open_database
    from worker.service.schedules import run_now

    settings = get_settings()
    if detach and settings.broker_url is None:
        fail("--detach needs VREC_BROKER_URL (workers to do the work)")
    with open_database(settings) as db:
        ran = run_now(db, settings, name)
        made, schedule = ran.run, ran.schedule
        summary = None
        if made.batch_id is not None and not detach:
            summary = follow_batch(db, made.batch_id, quiet=as_json, concurrency=concurrency)
    if as_json:
        emit_json(
            {
                "run": run_json(made, schedule),
                "summary": summary_json(summary) if summary else None,
            }
        )
    else:
        err.print(run_line(made, schedule), markup=False, soft_wrap=True)
        if summary is not None:
            print_summary(out, summary)
    if made.outcome == "failed":
        raise typer.Exit(EXIT_RUN_FAILED)
    if summary is not None and summary.paused:
        batch = made.batch_id
        err.print(f"batch {batch} paused: vrec wait {batch} resumes it", soft_wrap=True)
    if summary is not None and exit_code(summary):
        raise typer.Exit(exit_code(summary))
