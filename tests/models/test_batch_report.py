"""The report's and the exporter's read queries, on SQLite and PostgreSQL: throughput
buckets (dialect-specific time arithmetic), the gallery with its readings and what is left
out, a batch's size, the oldest waiting job and the active batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models import gauges, jobs
from models.batch_report import gallery, sizes, throughput
from models.batches import create_batch
from models.core import Job
from models.db import Database
from tests.support.storage import finish_chunk, plate_answer, source
from worker.providers.base import PlateReading

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PROVIDERS = ("aliyun_plate", "juhe_plate")


def _finish(db: Database, ids: list[int], at: datetime) -> dict[int, str]:
    """Run ``ids`` at ``at``, each reading a plate; job -> its provider."""
    with db.transaction() as s:
        claimed = jobs.claim_many(s.connection(), ids, owner="t", now=at, lease_seconds=60)
    with db.transaction() as s:
        runs = [(c, plate_answer(f"粤B{c.job_id:05d}", at)) for c in claimed]
        finish_chunk(s, runs, now=at)
    return {c.job_id: c.provider for c in claimed}


def test_throughput_gallery_and_gauges(db_url: str) -> None:
    entries = [source(f"/p/{i}.jpg", sha256=f"{i:064x}", size=1) for i in range(5)]
    entries.append(source("/p/gone.jpg", error="cannot read file: gone"))
    with Database(db_url) as db:
        with db.transaction() as s:
            batch_id = create_batch(s, entries, {p: {} for p in PROVIDERS}, now=T0).id
            assert sizes(s, batch_id) == (6, 6)
            assert gauges.active_batches(s) == 1
            assert gauges.oldest_waiting(s) == {p: T0 for p in PROVIDERS}
            pending = select(Job.id).where(Job.batch_id == batch_id, Job.status == "pending")
            ids = list(s.scalars(pending.order_by(Job.id)))
        early = _finish(db, ids[:4], T0 + timedelta(seconds=0.5))
        early |= _finish(db, ids[4:8], T0 + timedelta(seconds=1.5))
        late = _finish(db, ids[8:], T0 + timedelta(seconds=130))
        with db.transaction() as s:
            t = throughput(s, batch_id)
            shown, more = gallery(s, batch_id, limit=3)
            assert gauges.active_batches(s) == 0
            assert gauges.oldest_waiting(s) == {}
    # 129.5 s from the first call to the last finish, in at most 60 buckets: 3 s each.
    assert t.start == T0 + timedelta(seconds=0.5)
    assert (t.bucket_seconds, t.buckets) == (3.0, 44)
    for provider in PROVIDERS:
        counts = t.finished[provider]
        assert counts[0] == sum(1 for p in early.values() if p == provider)
        assert counts[43] == sum(1 for p in late.values() if p == provider)
        assert sum(counts) == counts[0] + counts[43]  # the unreadable file's jobs: no work
    assert (t.calls[0], t.calls[43], sum(t.calls)) == (8, 2, 10)
    # The gallery: by image then provider, each with its latest answer's readings.
    assert [(j.source_uri, j.provider) for j in shown] == [
        ("/p/0.jpg", "aliyun_plate"),
        ("/p/0.jpg", "juhe_plate"),
        ("/p/1.jpg", "aliyun_plate"),
    ]
    assert all(j.status == "succeeded" for j in shown)
    plates = [r for r in shown[0].readings if isinstance(r, PlateReading)]
    assert [r.plate_no for r in plates] == [f"粤B{shown[0].job_id:05d}"]
    assert len(plates) == len(shown[0].readings)
    assert more == {"succeeded": 7}  # the unreadable file's jobs are listed, not pictured
