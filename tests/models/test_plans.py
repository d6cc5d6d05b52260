"""Query plans on PostgreSQL with many finished jobs: the dispatcher's, reconciler's and
follower's statements and the README's view lookups reach an index, never a sequential
scan over the jobs or the readings, also past the fifth execution, where psycopg would
server-prepare a statement and PostgreSQL could switch it to a generic plan.

The database holds 20,000 finished jobs (:mod:`tests.support.bulk`), enough that a plan
which reads every job is the cheaper one for the planner whenever it cannot narrow
``status`` or ``provider`` down: what a generic plan of a prepared statement does. Plans
of the statements as vrec runs them are read with ``auto_explain`` (its plans sent to this
client as notices; ``LOAD`` needs the superuser the tests connect as); the views' with
``EXPLAIN``. Nothing here times anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from models import queue, reports
from models.db import make_engine
from tests.support.bulk import HISTORY_BATCH, fill, plate_of, vin_of
from tests.support.services import create_database, drop_database
from worker.providers.registry import names

HISTORY = 20_000
BIG_TABLES = {"jobs", "results", "plate_readings", "vehicle_licenses", "items", "attempts"}


@pytest.fixture(scope="module")
def filled() -> Iterator[tuple[Engine, int]]:
    """A migrated database with :data:`HISTORY` finished jobs and a followed batch."""
    from models import migrate

    url = create_database("vrec_plans")
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            followed = fill(conn, HISTORY)
        yield engine, followed
    finally:
        engine.dispose()
        drop_database(url)


class Plans:
    """The plans auto_explain reports on one connection, as text, in execution order."""

    def __init__(self, conn: Connection) -> None:
        self.seen: list[str] = []
        raw: Any = conn.connection.driver_connection
        raw.add_notice_handler(self._notice)
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = off",
            "SET auto_explain.log_level = notice",
        ):
            conn.exec_driver_sql(setting)
        conn.commit()  # a session's rollback must not take the settings back

    def _notice(self, diag: Any) -> None:
        message = diag.message_primary or ""
        if "Query Text" in message:
            self.seen.append(message)

    def of(self, fragment: str) -> list[str]:
        return [plan for plan in self.seen if fragment in plan]


def _seq_scans(plan: str) -> set[str]:
    return {t for t in BIG_TABLES if f"Seq Scan on {t}" in plan}


def test_the_dispatch_reconcile_and_follow_statements_stay_on_indexes_when_repeated(
    filled: tuple[Engine, int],
) -> None:
    engine, followed = filled
    now = _now(engine)
    with engine.connect() as conn:
        plans = Plans(conn)
        session = Session(bind=conn)
        for _ in range(8):  # psycopg would server-prepare a statement at its 5th execution
            due = queue.providers_due(session, now, names())
            assert due == ["tianapi_plate"]
            for provider in names():
                queue.in_flight(session, provider)
            assert queue.reconcile(session, now, queued_timeout=3600) == 0
            counts = reports.counts_by_provider(session, followed)
            assert counts["tianapi_plate"]["pending"] == 600
            reports.open_circuits(session, now)
            session.commit()
        # Nothing vrec ran was server-prepared, so nothing can have a generic plan.
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").all()
        assert prepared == [], prepared
        session.close()

    probe = plans.of("EXISTS")
    assert len(probe) == 8 * (len(names())), len(probe)  # every provider, every round
    statements = {
        "the providers_due probe": probe,
        "in_flight": plans.of("count(*)"),
        "reconcile": plans.of("UPDATE jobs"),
        "the follower's counts": plans.of("GROUP BY jobs.provider, jobs.status"),
    }
    for what, seen in statements.items():
        assert seen, what
        for plan in seen[-3:]:  # executions 6 to 8: where a generic plan would be
            assert not _seq_scans(plan), f"{what}:\n{plan}"
            assert "Index" in plan, f"{what}:\n{plan}"


def test_mark_queued_takes_the_oldest_due_jobs_from_an_index(
    filled: tuple[Engine, int],
) -> None:
    engine, _ = filled
    now = _now(engine)
    with engine.connect() as conn:
        plans = Plans(conn)
        session = Session(bind=conn)
        for _ in range(7):
            ids = queue.mark_queued(session, "tianapi_plate", 50, now)
            assert len(ids) == 50
            assert ids == sorted(ids)
            assert queue.unqueue_jobs(session, ids, now) == 50  # as they were
            session.commit()
        session.close()
    seen = plans.of("FOR UPDATE SKIP LOCKED")
    assert len(seen) == 7
    for plan in seen[-2:]:
        assert "ix_jobs_status" in plan, plan  # in id order: no sort of every pending job
        assert "Sort" not in plan, plan


def _explain(engine: Engine, sql: str, *, seqscan: bool = True) -> str:
    with engine.connect() as conn:
        if not seqscan:
            conn.exec_driver_sql("SET enable_seqscan = off")
        doc = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar()
        conn.rollback()
    return json.dumps(doc)


def _nodes(plan: str) -> list[tuple[str, str, str]]:
    """(node type, relation, index) of every node of an EXPLAIN (FORMAT JSON) plan."""
    found: list[tuple[str, str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        found.append(
            (node.get("Node Type", ""), node.get("Relation Name", ""), node.get("Index Name", ""))
        )
        for child in node.get("Plans", []):
            walk(child)

    walk(json.loads(plan)[0]["Plan"])
    return found


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        # The README's examples (Querying results), with values the data holds.
        (
            "SELECT source_uri, plate_no, color, provider FROM v_latest_plate "
            f"WHERE plate_no = '{plate_of(500)}'",
            "ix_plate_readings_plate_no",
        ),
        (
            "SELECT source_uri, plate_no, color, provider FROM v_latest_plate "
            "WHERE plate_no LIKE '粤B0005%'",
            "ix_plate_readings_plate_no",
        ),
        (
            "SELECT source_uri, provider, plate_no FROM v_plate_readings "
            f"WHERE plate_no = '{plate_of(500)}'",
            "ix_plate_readings_plate_no",
        ),
        (
            f"SELECT * FROM v_vehicle_licenses WHERE vin = '{vin_of(503)}' "
            "OR plate_no = '沪AA1234'",
            "ix_vehicle_licenses_vin",
        ),
        (
            f"SELECT * FROM v_vehicle_licenses WHERE vin = '{vin_of(503)}'",
            "ix_vehicle_licenses_vin",
        ),
        ("SELECT * FROM v_failures ORDER BY jobs DESC", "ix_jobs_status"),
    ],
    ids=["latest-plate", "latest-plate-prefix", "plate", "vin-or-plate", "vin", "failures"],
)
def test_the_documented_lookups_reach_an_index(
    filled: tuple[Engine, int], sql: str, index: str
) -> None:
    engine, _ = filled
    plan = _explain(engine, sql)
    nodes = _nodes(plan)
    assert index in {name for _, _, name in nodes}, plan
    # Nothing reads a big table whole (a lookup by batch reads that batch's jobs).
    assert not [rel for kind, rel, _ in nodes if kind == "Seq Scan" and rel in BIG_TABLES], plan


def test_the_calls_of_a_batch_are_read_by_batch_and_job(filled: tuple[Engine, int]) -> None:
    """``v_batch_calls WHERE batch_id = ...`` reads the batch's jobs by ``ix_jobs_batch_status``
    and their calls by ``ix_attempts_job_id``. At 20,000 calls the planner rightly prefers
    hashing every call to 1,000 index lookups, so the second half is checked with
    sequential scans priced out; at a million it picks the index itself (bench/scale.py)."""
    engine, _ = filled
    sql = "SELECT batch_id, provider, calls, billed_calls FROM v_batch_calls WHERE batch_id = 1"
    nodes = _nodes(_explain(engine, sql))
    assert "ix_jobs_batch_status" in {name for _, _, name in nodes}
    assert "jobs" not in {rel for kind, rel, _ in nodes if kind == "Seq Scan"}
    priced_out = _nodes(_explain(engine, sql, seqscan=False))
    assert {"ix_jobs_batch_status", "ix_attempts_job_id"} <= {name for _, _, name in priced_out}


def test_the_lookups_find_the_rows(filled: tuple[Engine, int]) -> None:
    """The data the plans were read on answers the lookups (the plans are of real work)."""
    engine, followed = filled
    with engine.connect() as conn:
        plate = conn.execute(
            text("SELECT source_uri, provider FROM v_latest_plate WHERE plate_no = :p"),
            {"p": plate_of(500)},
        ).all()
        assert [tuple(r) for r in plate] == [("/data/cam/500.jpg", "tianapi_plate")]
        prefix = conn.execute(
            text("SELECT COUNT(*) FROM v_latest_plate WHERE plate_no LIKE '粤B0005%'")
        ).scalar()
        assert prefix == 60  # 500-599, three providers of five read plates
        vin = conn.execute(
            text("SELECT source_uri FROM v_vehicle_licenses WHERE vin = :v"), {"v": vin_of(503)}
        ).scalar()
        assert vin == "/data/cam/503.jpg"
        calls = conn.execute(
            text("SELECT SUM(jobs), SUM(calls) FROM v_batch_calls WHERE batch_id = 1")
        ).one()
        assert tuple(calls) == (HISTORY_BATCH, HISTORY_BATCH)
        assert (
            conn.execute(
                text("SELECT SUM(jobs) FROM v_batch_calls WHERE batch_id = :b"), {"b": followed}
            ).scalar()
            == 1_000
        )


def _now(engine: Engine) -> datetime:
    """A minute after the bulk data's jobs were created: nothing is stale yet."""
    with engine.connect() as conn:
        created = conn.execute(text("SELECT MIN(created_at) FROM jobs")).scalar()
    assert isinstance(created, datetime)
    return created + timedelta(minutes=1)
