"""Schedules: named ingestion sources on a cron expression, their runs, and what each
source's last scan saw.

- ``schedules``: name, providers and options, cron expression and time zone, globs,
  paused or not, and ``next_run_at`` (UTC), the first tick not run yet;
- ``schedule_sources``: each source of a schedule, its kind (``folder``, ``manifest``, a
  CSV file, or ``url``, a manifest fetched over http(s)) and its path or URL;
- ``schedule_files``: per source, every file (folders) or row (manifests) already taken:
  its path (or the row's path or URL), size and mtime in ns (files), and sha256 when read;
- ``schedule_runs``: one row per run (a tick, or ``vrec schedule run``): when, which tick,
  files seen / new / changed / skipped / gone / read, items registered, the batch, and the outcome
  with its reason. ``(schedule_id, scheduled_for)`` is unique: a tick is run once.

A re-scan never loads a source's state: the listing is staged in a temporary table
(:mod:`models.staging`) and compared with ``schedule_files`` by set-based statements, and
the files to read are paged out of the difference a chunk at a time (:func:`compare`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Connection,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    exists,
    func,
    insert,
    null,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, JSONType, UTCDateTime, utcnow
from models.staging import staged_rows

KINDS = ("folder", "manifest", "url")
OUTCOMES = ("registered", "nothing_new", "failed")
TRIGGERS = ("beat", "manual")


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    providers: Mapped[list[str]] = mapped_column(JSONType)
    options: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)  # as given (-o)
    globs: Mapped[list[str]] = mapped_column(JSONType, default=list)  # folders' file names
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ScheduleSource(Base):
    __tablename__ = "schedule_sources"
    __table_args__ = (
        UniqueConstraint("schedule_id", "position"),
        CheckConstraint(_one_of("kind", KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # its place among the schedule's sources
    kind: Mapped[str] = mapped_column(String(16))
    uri: Mapped[str] = mapped_column(Text)  # absolute path, or URL


class ScheduleFile(Base):
    """A file (or manifest row) a source's scans have taken. An unchanged file (same size
    and mtime) is not read again; a manifest row is taken once."""

    __tablename__ = "schedule_files"
    __table_args__ = (UniqueConstraint("source_id", "path_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("schedule_sources.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    # sha256 of the path: what scans join on (an index of any path or URL length).
    path_key: Mapped[str] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScheduleRun(Base):
    __tablename__ = "schedule_runs"
    __table_args__ = (
        UniqueConstraint("schedule_id", "scheduled_for"),
        CheckConstraint(_one_of("outcome", OUTCOMES), name="outcome"),
        CheckConstraint(_one_of("trigger", TRIGGERS), name="trigger"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("schedules.id", ondelete="CASCADE"), index=True
    )
    trigger: Mapped[str] = mapped_column(String(10))
    # The tick this run stands for (the latest one due), and the earliest tick it covers:
    # they differ when ticks were missed (beat down). Both None for a run by hand.
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    files_seen: Mapped[int] = mapped_column(Integer, default=0)
    files_new: Mapped[int] = mapped_column(Integer, default=0)
    files_changed: Mapped[int] = mapped_column(Integer, default=0)
    files_skipped: Mapped[int] = mapped_column(Integer, default=0)
    files_gone: Mapped[int] = mapped_column(Integer, default=0)
    files_read: Mapped[int] = mapped_column(Integer, default=0)  # opened: images, manifests
    items: Mapped[int] = mapped_column(Integer, default=0)  # registered in the batch
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL"), index=True
    )


# -- schedules ----------------------------------------------------------------------------


def by_name(session: Session, name: str) -> Schedule | None:
    return session.scalars(select(Schedule).where(Schedule.name == name)).first()


def all_schedules(session: Session) -> list[Schedule]:
    return list(session.scalars(select(Schedule).order_by(Schedule.name)))


def sources_of(session: Session, schedule_id: int) -> list[ScheduleSource]:
    return list(
        session.scalars(
            select(ScheduleSource)
            .where(ScheduleSource.schedule_id == schedule_id)
            .order_by(ScheduleSource.position)
        )
    )


def due_ids(session: Session, now: datetime) -> list[int]:
    """Schedules not paused whose next tick has come, the longest-waiting first."""
    return list(
        session.scalars(
            select(Schedule.id)
            .where(Schedule.paused.is_(False), Schedule.next_run_at <= now)
            .order_by(Schedule.next_run_at, Schedule.id)
        )
    )


def lock(session: Session, schedule_id: int, *, due_by: datetime | None = None) -> Schedule | None:
    """The schedule, locked until the transaction ends; None if another transaction holds
    it (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite's writers are serialised already) or,
    with ``due_by``, if it is paused or not due by then (any more: a run that just finished
    moved its next tick on)."""
    query = select(Schedule).where(Schedule.id == schedule_id)
    if due_by is not None:
        query = query.where(Schedule.paused.is_(False), Schedule.next_run_at <= due_by)
    locked = query.with_for_update(skip_locked=True).execution_options(populate_existing=True)
    return session.scalars(locked).first()


def last_runs(session: Session, schedule_ids: Sequence[int]) -> dict[int, ScheduleRun]:
    """Each schedule's latest run."""
    latest = (
        select(func.max(ScheduleRun.id))
        .where(ScheduleRun.schedule_id.in_(schedule_ids))
        .group_by(ScheduleRun.schedule_id)
    )
    found = session.scalars(select(ScheduleRun).where(ScheduleRun.id.in_(latest)))
    return {run.schedule_id: run for run in found}


def runs_of(session: Session, schedule_id: int, limit: int) -> list[ScheduleRun]:
    """A schedule's runs, newest first."""
    return list(
        session.scalars(
            select(ScheduleRun)
            .where(ScheduleRun.schedule_id == schedule_id)
            .order_by(ScheduleRun.id.desc())
            .limit(limit)
        )
    )


def tracked(session: Session, schedule_id: int) -> dict[int, int]:
    """source id -> files (or manifest rows) its scans have taken."""
    rows = session.execute(
        select(ScheduleFile.source_id, func.count())
        .join(ScheduleSource, ScheduleSource.id == ScheduleFile.source_id)
        .where(ScheduleSource.schedule_id == schedule_id)
        .group_by(ScheduleFile.source_id)
    )
    return {source_id: int(n) for source_id, n in rows}


# -- comparing a scan with the stored state -----------------------------------------------


class Found(NamedTuple):
    """A listed file (or manifest row) that is new or changed since the source's last scan;
    ``state_id`` is its stored row (None: new)."""

    key: str
    path: str
    size: int | None
    mtime_ns: int | None
    state_id: int | None


@dataclass
class Comparison:
    """One source's listing against its state, staged in this transaction: counts, and
    the new or changed entries to read (:meth:`pages`)."""

    conn: Connection
    source_id: int
    seen: int = 0
    new: int = 0
    changed: int = 0
    gone: int = 0

    @property
    def skipped(self) -> int:
        return self.seen - self.new - self.changed

    def pages(self, chunk: int = 500) -> Iterator[list[Found]]:
        """The new and changed entries in listing order, ``chunk`` at a time."""
        t = _NEW
        last = -1
        while True:
            rows = self.conn.execute(
                select(t.c.n, t.c.path_key, t.c.path, t.c.size, t.c.mtime_ns, t.c.state_id)
                .where(t.c.n > last)
                .order_by(t.c.n)
                .limit(chunk)
            ).all()
            if not rows:
                return
            yield [Found(*row[1:]) for row in rows]
            last = rows[-1][0]

    def record(self, taken: Sequence[tuple[Found, str | None]], now: datetime) -> None:
        """Store what was taken of a page: each entry's facts and sha256 (None if unread)."""
        fresh = [
            {
                "source_id": self.source_id,
                "path": f.path,
                "path_key": f.key,
                "size": f.size,
                "mtime_ns": f.mtime_ns,
                "sha256": sha,
                "taken_at": now,
            }
            for f, sha in taken
            if f.state_id is None
        ]
        if fresh:
            self.conn.execute(insert(ScheduleFile), fresh)
        again = [
            {
                "b_id": f.state_id,
                "size": f.size,
                "mtime_ns": f.mtime_ns,
                "sha256": sha,
                "taken_at": now,
            }
            for f, sha in taken
            if f.state_id is not None
        ]
        if again:
            self.conn.execute(
                update(ScheduleFile).where(ScheduleFile.id == bindparam("b_id")), again
            )


_LISTING = [
    ("n", "BIGINT"),
    ("path_key", "VARCHAR(64)"),
    ("path", "TEXT"),
    ("size", "BIGINT"),
    ("mtime_ns", "BIGINT"),
]
_NEW_COLUMNS = ("n", "path_key", "path", "size", "mtime_ns", "state_id")
_NEW = table("vrec_scan_new", *(column(n) for n in _NEW_COLUMNS))


def path_key(path: str) -> str:
    """The key a file or row is stored and compared by: the sha256 of its path or URL."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()


@contextmanager
def compare(
    conn: Connection,
    source_id: int,
    listing: Iterable[tuple[str, int | None, int | None]],
    *,
    folder: bool,
) -> Iterator[Comparison]:
    """Stage ``listing`` ((path, size, mtime_ns) per file, or (uri, None, None) per manifest
    row) and compare it with the source's state: what is new (no state row), changed (a
    folder's file whose size or mtime differs), and, for a folder, gone (a state row no
    longer listed: removed here, so a file put back later is new again). A manifest row
    listed twice counts once. Nothing of the listing is held here: the database holds it.
    """
    numbered = (
        (n, path_key(path), path, size, mtime) for n, (path, size, mtime) in enumerate(listing)
    )
    with staged_rows(conn, "vrec_scan", _LISTING, numbered, index=["path_key"]) as listed:
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE vrec_scan_new (n BIGINT PRIMARY KEY, path_key VARCHAR(64),"
            " path TEXT, size BIGINT, mtime_ns BIGINT, state_id BIGINT)"
        )
        try:
            conn.execute(
                insert(_NEW).from_select(list(_NEW.c.keys()), _diff(listed, source_id, folder))
            )
            result = Comparison(conn, source_id)
            result.seen = int(conn.scalar(select(func.count()).select_from(listed)) or 0)
            known = func.sum(case((_NEW.c.state_id.is_(None), 0), else_=1))
            total, changed = conn.execute(
                select(func.count(), func.coalesce(known, 0)).select_from(_NEW)
            ).one()
            result.new, result.changed = int(total) - int(changed), int(changed)
            if folder:
                gone = conn.execute(
                    delete(ScheduleFile).where(
                        ScheduleFile.source_id == source_id,
                        ~exists().where(listed.c.path_key == ScheduleFile.path_key),
                    )
                )
                result.gone = int(gone.rowcount or 0)
            yield result
        finally:
            conn.exec_driver_sql("DROP TABLE IF EXISTS vrec_scan_new")


def _diff(listed: Any, source_id: int, folder: bool) -> Any:
    """The listed entries to read: new ones, and (folders) changed ones, once each."""
    state = ScheduleFile
    joined = listed.outerjoin(
        state, and_(state.source_id == source_id, state.path_key == listed.c.path_key)
    )
    if folder:
        changed = or_(state.size != listed.c.size, state.mtime_ns != listed.c.mtime_ns)
        return (
            select(
                listed.c.n,
                listed.c.path_key,
                listed.c.path,
                listed.c.size,
                listed.c.mtime_ns,
                state.id,
            )
            .select_from(joined)
            .where(or_(state.id.is_(None), changed))
        )
    return (
        select(
            func.min(listed.c.n),
            listed.c.path_key,
            func.min(listed.c.path),
            cast(null(), BigInteger),
            cast(null(), BigInteger),
            cast(null(), BigInteger),
        )
        .select_from(joined)
        .where(state.id.is_(None))
        .group_by(listed.c.path_key)
    )
