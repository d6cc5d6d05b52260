"""Reprocessing: a new batch over the images a read-only SQL question names.

``--query`` takes any SELECT with an ``image_id`` column, so a back-office user goes from
a SQL question to a reprocessing batch in one command; ``--batch N [--status] [--provider]``
is the same with the question written for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain

from sqlalchemy import select

from models.batches import create_batch_from_images
from models.core import Job
from models.db import Database
from models.queries import image_ids
from worker.config import Settings
from worker.errors import UsageError
from worker.service.batches import get_batch
from worker.service.submit import check_credentials, job_options, reuse_age


def batch_query(
    db: Database, batch_id: int, *, statuses: Sequence[str] = (), provider: str | None = None
) -> str:
    """The SQL of "the images of batch N (whose jobs are in ``statuses``, of ``provider``)"."""
    with db.transaction() as session:
        get_batch(session, batch_id)
    query = select(Job.image_id).where(Job.batch_id == batch_id).distinct()
    if statuses:
        query = query.where(Job.status.in_(list(statuses)))
    if provider is not None:
        query = query.where(Job.provider == provider)
    return str(query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))


def reprocess(
    db: Database,
    settings: Settings,
    sql: str,
    providers: Sequence[str],
    options: Mapping[str, str],
    *,
    label: str | None = None,
    force: bool = False,
) -> int:
    """A new batch over the images ``sql`` returns (column ``image_id``), for ``providers``;
    its id. Answers already paid for are reused unless ``force``. A query that is not one
    SELECT, has no ``image_id`` or fails is BadQuery, and nothing is created."""
    per_provider = job_options(providers, options)
    check_credentials(settings, providers)
    ids = image_ids(db.engine, sql)
    first = next(ids, None)  # the query runs (and may fail) before anything is created
    if first is None:
        raise UsageError("the query returned no rows: nothing to reprocess")
    with db.transaction() as session:
        batch = create_batch_from_images(
            session,
            chain([first], ids),
            per_provider,
            label=label,
            sources=[f"query: {sql}"],
            reuse_max_age=reuse_age(settings, force=force),
        )
        return batch.id
