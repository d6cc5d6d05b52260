"""Rendering schedules and their runs, for people (rich) and programs (JSON).

Times are shown in each schedule's own time zone (the one its cron expression is read in)
and given in JSON as ISO 8601 with their offset. Paths, URLs (secrets masked) and reasons
are shown as plain text (:func:`worker.render.plain`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from models.schedules import Schedule, ScheduleRun
from worker.render import plain
from worker.service.schedules import ScheduleInfo, shown_uri

FILES = ("seen", "new", "changed", "skipped", "gone", "read")


def _local(moment: datetime | None, schedule: Schedule) -> datetime | None:
    return None if moment is None else moment.astimezone(ZoneInfo(schedule.timezone))


def _iso(moment: datetime | None, schedule: Schedule) -> str | None:
    local = _local(moment, schedule)
    return None if local is None else local.isoformat()


def _shown(moment: datetime | None, schedule: Schedule) -> str:
    local = _local(moment, schedule)
    return "" if local is None else f"{local:%Y-%m-%d %H:%M}"


def run_json(run: ScheduleRun, schedule: Schedule) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "schedule": schedule.name,
        "trigger": run.trigger,
        "scheduled_for": _iso(run.scheduled_for, schedule),
        "due_since": _iso(run.due_since, schedule),
        "started_at": _iso(run.started_at, schedule),
        "finished_at": _iso(run.finished_at, schedule),
        "outcome": run.outcome,
        "reason": run.reason,
        "files": {name: getattr(run, f"files_{name}") for name in FILES},
        "items": run.items,
        "batch_id": run.batch_id,
    }


def schedule_json(info: ScheduleInfo) -> dict[str, Any]:
    s = info.schedule
    return {
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "paused": s.paused,
        "next_run_at": None if s.paused else _iso(s.next_run_at, s),
        "providers": s.providers,
        "options": s.options,
        "globs": s.globs,
        "sources": [
            {"kind": src.kind, "uri": shown_uri(src), "tracked": info.tracked.get(src.id, 0)}
            for src in info.sources
        ],
        "created_at": _iso(s.created_at, s),
        "runs": [run_json(r, s) for r in info.runs],
    }


def run_line(run: ScheduleRun, schedule: Schedule) -> str:
    """One line saying what a run did."""
    name = f"schedule {schedule.name}"
    if run.outcome == "failed":
        return f"{name}: run failed: {run.reason} (the next tick tries again)"
    unchanged = f"{run.files_skipped:,} unchanged or taken before, not read"
    gone = f", {run.files_gone:,} gone" if run.files_gone else ""
    if run.outcome == "nothing_new":
        return f"{name}: nothing new in {run.files_seen:,} seen ({unchanged}{gone}): no batch"
    changed = f" and {run.files_changed:,} changed" if run.files_changed else ""
    return (
        f"{name}: {run.files_new:,} new{changed} of {run.files_seen:,} seen ({unchanged}{gone}):"
        f" batch {run.batch_id}, {run.items:,} items"
    )


def _outcome(run: ScheduleRun | None) -> str:
    if run is None:
        return "never run"
    if run.outcome == "registered":
        return f"batch {run.batch_id}: {run.items:,} items"
    if run.outcome == "nothing_new":
        return "nothing new"
    return f"failed: {run.reason}"


def print_schedules(console: Console, found: list[ScheduleInfo]) -> None:
    if not found:
        console.print("no schedules (add one with `vrec schedule add`)")
        return
    table = Table(title="schedules (times in each one's time zone)")
    for column in ("name", "cron", "time zone", "next run", "providers", "sources"):
        table.add_column(column, overflow="fold")
    table.add_column("last run", overflow="fold")
    table.add_column("outcome", overflow="fold")
    for info in found:
        s, last = info.schedule, info.last_run
        table.add_row(
            plain(s.name),
            s.cron,
            s.timezone,
            "paused" if s.paused else _shown(s.next_run_at, s),
            ", ".join(s.providers),
            str(len(info.sources)),
            _shown(last.started_at if last else None, s),
            plain(_outcome(last)),
        )
    console.print(table)


def print_schedule(console: Console, info: ScheduleInfo) -> None:
    s = info.schedule
    options = " ".join(f"-o {k}={v}" for k, v in s.options.items())
    console.print(plain(f"schedule {s.name}: {s.cron} ({s.timezone})"))
    console.print(
        "next run: " + ("paused" if s.paused else _shown(s.next_run_at, s)),
        plain(f"providers: {', '.join(s.providers)} {options}".rstrip()),
        plain(f"globs: {', '.join(s.globs)}") if s.globs else "",
        sep="\n",
    )
    sources = Table(title="sources")
    for column in ("kind", "path or URL"):
        sources.add_column(column, overflow="fold")
    sources.add_column("files taken", justify="right")
    for src in info.sources:
        sources.add_row(src.kind, plain(shown_uri(src)), f"{info.tracked.get(src.id, 0):,}")
    console.print(sources)
    if not info.runs:
        console.print("no runs yet")
        return
    runs = Table(title="runs, newest first")
    for column in ("run", "by", "tick", "started", "outcome"):
        runs.add_column(column, overflow="fold")
    for column in FILES:
        runs.add_column(column, justify="right")
    for r in info.runs:
        runs.add_row(
            str(r.id),
            r.trigger,
            _shown(r.scheduled_for, s),
            _shown(r.started_at, s),
            plain(_outcome(r)),
            *(f"{getattr(r, f'files_{name}'):,}" for name in FILES),
        )
    console.print(runs)
