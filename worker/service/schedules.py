"""Scheduled ingestion: named sources read on a cron schedule, only what is new each time.

A schedule names its sources (folders, CSV manifests, manifest URLs), providers and
options, and a cron expression in a time zone. Beat's ``vrec.schedules`` task calls
:func:`run_due` every ``VREC_SCHEDULE_CHECK_SECONDS``; ``vrec schedule run`` calls
:func:`run_now`. Each run registers one batch (labelled with the schedule and the tick)
holding only what its sources have new since the last run (:mod:`.scanning`); answers
already paid for are reused by registration itself. No new files: no batch, and the run
is recorded all the same.

**Exactly one run per tick.** A run is one transaction that holds its schedule's row:
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, and SQLite's single writer there. A
second beat, worker or ``schedule run`` finds the row locked and moves on (a beat) or says
so (by hand); once the run commits, the schedule's ``next_run_at`` has moved past the tick,
so the row is no longer due for anyone. The run's scans, state, batch and record commit
together or not at all: a worker killed mid-run leaves the tick due, and the next check
runs it. ``(schedule_id, scheduled_for)`` is unique besides.

**Missed ticks.** When checks resume after a gap (beat or every worker down), a schedule
whose ticks passed meanwhile runs once, for the latest tick passed (``scheduled_for``;
``due_since`` keeps the first one missed), and its next tick is the first one after now:
one run covers the gap, since it takes everything new anyway. Ticks that pass while a
long run holds the schedule are missed ticks too. Pausing skips ticks; resuming starts at
the next one.

**A source that can't be read** fails the run with the reason recorded, registers nothing
and changes no state; the schedule carries on at its next tick.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import schedules as stored
from models.batches import create_batch
from models.db import Database
from models.schedules import Schedule, ScheduleRun, ScheduleSource
from worker.config import Settings
from worker.cron import Cron
from worker.errors import ConfigError, NotFound, UsageError
from worker.fetch import is_http_url, redact_url, url_scheme
from worker.service.scanning import ScanCounts, Scanner
from worker.service.submit import job_options, reuse_age

log = logging.getLogger(__name__)

NAME = re.compile(r"^\w[\w.-]{0,99}$")


@dataclass
class ScheduleInfo:
    """A schedule with its sources, latest runs and how much its scans track."""

    schedule: Schedule
    sources: list[ScheduleSource]
    runs: list[ScheduleRun] = field(default_factory=list)  # newest first
    tracked: dict[int, int] = field(default_factory=dict)  # source id -> files taken

    @property
    def last_run(self) -> ScheduleRun | None:
        return self.runs[0] if self.runs else None


@dataclass(frozen=True)
class Ran:
    """A run that was made, and its schedule."""

    schedule: Schedule
    run: ScheduleRun


def shown_uri(source: ScheduleSource) -> str:
    """A source's path, or its URL with any secrets masked."""
    return redact_url(source.uri) if source.kind == "url" else source.uri


# -- managing schedules -------------------------------------------------------------------


def add(
    db: Database,
    name: str,
    sources: Sequence[str],
    providers: Sequence[str],
    options: Mapping[str, str],
    *,
    cron: str,
    timezone: str = "UTC",
    globs: Sequence[str] = (),
    now: datetime | None = None,
) -> ScheduleInfo:
    """Store a new schedule; its first tick is the first one after ``now``. Everything is
    checked first (name, cron, time zone, providers and options, sources, globs): a
    UsageError stores nothing."""
    now = now or datetime.now(UTC)
    if not NAME.match(name):
        raise ConfigError(
            f"schedule name {name!r}: up to 100 letters, digits, '.', '-' or '_', not"
            " starting with '.' or '-'"
        )
    checked = Cron.parse(cron, timezone)
    job_options(providers, options)
    kinds = _classify(sources)
    _check_globs(globs, kinds)
    schedule = Schedule(
        name=name,
        providers=list(providers),
        options=dict(options),
        globs=list(globs),
        cron=checked.expression,
        timezone=timezone,
        paused=False,
        next_run_at=checked.next_after(now),
        created_at=now,
        updated_at=now,
    )
    try:
        with db.transaction() as session:
            if stored.by_name(session, name) is not None:
                raise _duplicate(name)
            session.add(schedule)
            session.flush()
            rows = [
                ScheduleSource(schedule_id=schedule.id, position=i, kind=kind, uri=uri)
                for i, (kind, uri) in enumerate(kinds)
            ]
            session.add_all(rows)
    except IntegrityError as exc:  # the same name added at the same moment elsewhere
        raise _duplicate(name) from exc
    return ScheduleInfo(schedule, rows)


def _duplicate(name: str) -> UsageError:
    return UsageError(
        f"a schedule named {name!r} already exists (`vrec schedule show {name}`;"
        f" `vrec schedule remove {name}` first to replace it)"
    )


def _classify(sources: Sequence[str]) -> list[tuple[str, str]]:
    """(kind, absolute path or URL) of each source, once each; a source that is none of a
    folder, a CSV manifest or an http(s) manifest URL is a ConfigError."""
    if not sources:
        raise ConfigError("no source: give one or more with --source")
    out: list[tuple[str, str]] = []
    for text in sources:
        found = _kind_of(text)
        if found not in out:
            out.append(found)
    return out


def _kind_of(text: str) -> tuple[str, str]:
    if is_http_url(text):
        return ("url", text)
    scheme = url_scheme(text)
    if scheme is not None and len(scheme) > 1:  # not a Windows drive letter
        raise ConfigError(f"source {redact_url(text)}: only http and https manifest URLs")
    path = Path(text).expanduser()
    if path.is_dir():
        return ("folder", str(path.resolve()))
    if path.is_file() and path.suffix.lower() == ".csv":
        return ("manifest", str(path.resolve()))
    if path.exists():
        raise ConfigError(
            f"source {text}: a schedule reads folders, CSV manifests and manifest URLs"
            " (one file: `vrec run`)"
        )
    raise ConfigError(f"no such folder or manifest: {text}")


def _check_globs(globs: Sequence[str], kinds: Sequence[tuple[str, str]]) -> None:
    for glob in globs:
        if not glob or "/" in glob or "\\" in glob:
            raise ConfigError(f"--glob {glob!r}: a pattern for file names, such as '*.jpg'")
    if globs and not any(kind == "folder" for kind, _ in kinds):
        raise ConfigError("--glob selects files of folders, and no source is a folder")


def _named(session: Session, name: str) -> Schedule:
    schedule = stored.by_name(session, name)
    if schedule is None:
        raise NotFound(f"no schedule named {name!r} (see `vrec schedule list`)")
    return schedule


def list_schedules(db: Database) -> list[ScheduleInfo]:
    """Every schedule by name, each with its latest run."""
    with db.transaction() as session:
        found = stored.all_schedules(session)
        last = stored.last_runs(session, [s.id for s in found])
        return [
            ScheduleInfo(s, stored.sources_of(session, s.id), [last[s.id]] if s.id in last else [])
            for s in found
        ]


def show(db: Database, name: str, *, runs: int = 10) -> ScheduleInfo:
    """One schedule: sources, files each one's scans track, its latest ``runs`` runs."""
    with db.transaction() as session:
        schedule = _named(session, name)
        return ScheduleInfo(
            schedule,
            stored.sources_of(session, schedule.id),
            stored.runs_of(session, schedule.id, runs),
            stored.tracked(session, schedule.id),
        )


def pause(db: Database, name: str) -> bool:
    """Stop running a schedule at its ticks; False if it was paused already."""
    with db.transaction() as session:
        schedule = _named(session, name)
        was, schedule.paused = schedule.paused, True
        return not was


def resume(db: Database, name: str, *, now: datetime | None = None) -> Schedule:
    """Run a paused schedule again from its next tick after ``now`` (ticks that passed
    while paused are not run)."""
    now = now or datetime.now(UTC)
    with db.transaction() as session:
        schedule = _named(session, name)
        if schedule.paused:
            schedule.paused = False
            schedule.next_run_at = Cron(schedule.cron, schedule.timezone).next_after(now)
        return schedule


def remove(db: Database, name: str) -> None:
    """Forget a schedule, its sources' state and its runs (its batches stay)."""
    with db.transaction() as session:
        session.delete(_named(session, name))


# -- running them -------------------------------------------------------------------------


def run_due(db: Database, settings: Settings, *, now: datetime | None = None) -> list[ScheduleRun]:
    """Run every schedule whose tick has come and no other process is running (beat's
    ``vrec.schedules``); the runs made here. Each run takes its own time (``now`` for
    tests), so a long run does not date the next ones."""
    with db.transaction() as session:
        due = stored.due_ids(session, now or datetime.now(UTC))
    made = []
    for schedule_id in due:
        ran = _run(db, settings, schedule_id, now=now or datetime.now(UTC), trigger="beat")
        if ran is not None:
            made.append(ran.run)
    return made


def run_now(db: Database, settings: Settings, name: str, *, now: datetime | None = None) -> Ran:
    """Run a schedule now, paused or not, outside its ticks (``vrec schedule run``)."""
    with db.transaction() as session:
        schedule_id = _named(session, name).id
    ran = _run(db, settings, schedule_id, now=now or datetime.now(UTC), trigger="manual")
    if ran is None:
        raise UsageError(
            f"schedule {name!r} is being run by another process now; its run is recorded"
            f" when it ends (`vrec schedule show {name}`)"
        )
    return ran


def _run(
    db: Database, settings: Settings, schedule_id: int, *, now: datetime, trigger: str
) -> Ran | None:
    """One run of a schedule in one transaction holding its row; None if another process
    holds it, or (beat) it is not due any more."""
    with db.transaction() as session:
        schedule = stored.lock(session, schedule_id, due_by=now if trigger == "beat" else None)
        if schedule is None:
            return None
        run = ScheduleRun(schedule_id=schedule.id, trigger=trigger, started_at=now)
        moment = now
        if trigger == "beat":
            cron = Cron(schedule.cron, schedule.timezone)
            run.due_since = schedule.next_run_at
            run.scheduled_for = max(schedule.next_run_at, cron.latest_until(now))
            moment = run.scheduled_for
            schedule.next_run_at = cron.next_after(now)
        _ingest(session, settings, schedule, run, _label(schedule, moment, trigger), now)
        run.finished_at = datetime.now(UTC)
        session.add(run)
        session.flush()
        log.info(
            "schedule %s: %s, %d new, %d changed, %d skipped, batch %s%s",
            schedule.name,
            run.outcome,
            run.files_new,
            run.files_changed,
            run.files_skipped,
            run.batch_id,
            f" ({run.reason})" if run.reason else "",
        )
        return Ran(schedule, run)


def _label(schedule: Schedule, moment: datetime, trigger: str) -> str:
    local = moment.astimezone(Cron(schedule.cron, schedule.timezone).zone)
    by_hand = " (run by hand)" if trigger == "manual" else ""
    return f"schedule {schedule.name} {local:%Y-%m-%d %H:%M} {schedule.timezone}{by_hand}"


def _ingest(
    session: Session,
    settings: Settings,
    schedule: Schedule,
    run: ScheduleRun,
    label: str,
    now: datetime,
) -> None:
    """Scan the schedule's sources and register what is new as one batch, inside a
    savepoint: a source that can't be read undoes all of it and fails the run."""
    sources = stored.sources_of(session, schedule.id)
    scanner = Scanner(session.connection(), settings, schedule.globs, now)
    try:
        with session.begin_nested():
            per_provider = job_options(schedule.providers, schedule.options)
            entries = scanner.new_entries(sources)
            first = next(entries, None)
            run.outcome = "nothing_new"
            if first is not None:
                batch = create_batch(
                    session,
                    chain([first], entries),
                    per_provider,
                    label=label,
                    sources=[shown_uri(s) for s in sources],
                    reuse_max_age=reuse_age(settings, force=False),
                    now=now,
                )
                run.batch_id, run.outcome = batch.id, "registered"
    except UsageError as exc:
        _failed(run, str(exc))
        return
    except Exception as exc:  # a fault of ours: recorded, and the schedule carries on
        log.exception("schedule %s: run failed", schedule.name)
        _failed(run, f"unexpected {type(exc).__name__}: {exc}")
        return
    _counted(run, scanner.counts)


def _failed(run: ScheduleRun, reason: str) -> None:
    run.outcome, run.reason, run.batch_id = "failed", reason, None
    _counted(run, ScanCounts())  # what it saw was undone with it


def _counted(run: ScheduleRun, counts: ScanCounts) -> None:
    run.files_seen = counts.seen
    run.files_new = counts.new
    run.files_changed = counts.changed
    run.files_skipped = counts.skipped
    run.files_gone = counts.gone
    run.files_read = counts.read
    run.items = counts.items
