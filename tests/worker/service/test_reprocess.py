"""Reprocessing from a SQL question: what is run, what is refused and how it reads; on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Batch, Item, Job
from models.db import Database
from tests.support.services import truncate
from tests.support.storage import answer_batch, plate_answer, settings_for
from worker.config import Settings
from worker.errors import BadQuery, Outcome, UsageError
from worker.jobrun import JobRun
from worker.providers.base import VendorAnswer
from worker.service.reprocess import batch_query, reprocess
from worker.service.submit import submit

NOW = datetime.now(UTC)


def _batch_count(db: Database) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Batch)) or 0)


def test_reprocess_the_images_a_query_names(db: Database, settings: Settings, photos: Path) -> None:
    first = submit(db, settings, [str(photos)], ["juhe_plate"], {})

    def read(job: object) -> JobRun:  # the first image: no plate found
        if job.image_id == min_image:  # type: ignore[attr-defined]
            return JobRun(answer=VendorAnswer(Outcome.NO_RESULT, {}, billed=True))
        return plate_answer("粤B1", NOW)

    with db.transaction() as s:
        min_image = s.scalar(select(func.min(Job.image_id)).where(Job.batch_id == first))
    answer_batch(db, first, read, now=NOW)
    # "re-read with Aliyun every image whose Juhe plate reading came back empty"
    sql = "SELECT image_id FROM jobs WHERE provider = 'juhe_plate' AND status = 'no_result'"
    batch = reprocess(db, settings, sql, ["aliyun_plate"], {}, label="re-read")
    with db.transaction() as s:
        jobs = s.scalars(select(Job).where(Job.batch_id == batch)).all()
        items = s.scalars(select(Item).where(Item.batch_id == batch)).all()
    assert [(j.provider, j.image_id, j.status) for j in jobs] == [
        ("aliyun_plate", min_image, "pending")
    ]
    assert len(items) == 1
    assert Path(items[0].uri).parent == photos  # read from a file that held the image


def test_batch_form_and_reuse_unless_forced(db: Database, settings: Settings, photos: Path) -> None:
    first = submit(db, settings, [str(photos)], ["tianapi_plate"], {})
    answer_batch(db, first, lambda c: plate_answer("粤B1", NOW), now=NOW)
    sql = batch_query(db, first, statuses=["succeeded"], provider="tianapi_plate")
    same = reprocess(db, settings, sql, ["tianapi_plate"], {})
    forced = reprocess(db, settings, sql, ["tianapi_plate"], {}, force=True)
    with db.transaction() as s:

        def statuses(b: int) -> list[str]:
            return list(s.scalars(select(Job.status).where(Job.batch_id == b)))

        assert statuses(same) == ["succeeded"] * 3  # reused: nothing to call
        assert statuses(forced) == ["pending"] * 3


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM jobs", "only a SELECT"),
        ("UPDATE jobs SET status = 'failed'", "only a SELECT"),
        ("SELECT image_id FROM jobs; DELETE FROM jobs", "one SELECT statement, not 2"),
        ("", "one SELECT statement, not 0"),
        ("SELECT id, provider FROM jobs", "no image_id column (its columns: id, provider)"),
        ("SELECT image_id FROM no_such_table", "no_such_table"),
        ("SELECT image_id FROM jobs WHERE nosuchcolumn = 1", "nosuchcolumn"),
    ],
)
def test_what_is_refused_and_how(
    db: Database, settings: Settings, photos: Path, sql: str, message: str
) -> None:
    submit(db, settings, [str(photos)], ["tianapi_plate"], {})
    before = _batch_count(db)
    with pytest.raises(BadQuery) as refused:
        reprocess(db, settings, sql, ["aliyun_plate"], {})
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)  # one line
    assert _batch_count(db) == before  # nothing created
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 3  # nothing deleted


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        (
            "WITH gone AS (DELETE FROM jobs RETURNING image_id) SELECT image_id FROM gone",
            "must not contain data-modifying statements",
        ),
        (
            "SELECT image_id FROM jobs, LATERAL (SELECT nextval('jobs_id_seq')) AS bump",
            "read-only transaction",
        ),
    ],
)
def test_a_write_hidden_in_a_select_is_refused_by_the_database(
    postgres_url: str, photos: Path, sql: str, refusal: str
) -> None:
    """Statements whose last word is SELECT but that write: PostgreSQL refuses them in the
    read-only transaction (and its cursor), whatever a parser thought."""
    truncate(postgres_url)
    settings = settings_for(postgres_url)
    with Database(postgres_url) as db:
        submit(db, settings, [str(photos)], ["tianapi_plate"], {})
        with pytest.raises(BadQuery, match=refusal):
            reprocess(db, settings, sql, ["aliyun_plate"], {})
        with db.transaction() as s:
            assert s.scalar(select(func.count()).select_from(Job)) == 3


def test_an_empty_answer_creates_nothing(db: Database, settings: Settings, photos: Path) -> None:
    submit(db, settings, [str(photos)], ["tianapi_plate"], {})
    before = _batch_count(db)
    with pytest.raises(UsageError, match="no rows"):
        reprocess(db, settings, "SELECT image_id FROM jobs WHERE 1 = 0", ["aliyun_plate"], {})
    assert _batch_count(db) == before
