"""Creating a batch: an item per submitted source, an image per distinct content, and one
job per image x provider; answers already paid for are reused (:mod:`models.reuse`).

Registration streams: sources are taken 500 at a time and nothing is kept between chunks
but the batch's id, so memory stays flat whatever the batch's size. What a chunk must know
of earlier ones (content already stored, a URL already registered in this batch, a job
already created) it asks the database, in the same transaction: each through an index,
so a chunk costs the same at the millionth entry as at the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Select, column, func, insert, literal, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from models import reuse
from models.base import JSONType, UTCDateTime
from models.core import Batch, Image, Item, Job
from models.staging import staged_ids
from worker.lifecycle import JobStatus
from worker.sources import Source

CHUNK = 500
# What makes two sources one image: ("sha256", hex) for content read at registration,
# ("uri", uri) for a URL not fetched yet, ("unreadable", n) for a source of its own.
ImageKey = tuple[str, str | int]


def options_key(options: Mapping[str, str]) -> str:
    """Job options as one canonical string, ``k=v`` sorted by key and joined by ``&``: the
    equality that answer reuse compares (``""`` for no options)."""
    return "&".join(f"{k}={options[k]}" for k in sorted(options))


def _chunks(items: Iterable[Source], n: int) -> Iterator[list[Source]]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


def create_batch(
    session: Session,
    entries: Iterable[Source],
    options: Mapping[str, Mapping[str, str]],
    *,
    label: str | None = None,
    sources: list[str] | None = None,
    idempotency_key: str | None = None,
    reuse_max_age: timedelta | None = None,
    now: datetime | None = None,
) -> Batch:
    """Register ``entries`` for each provider in ``options`` (provider -> its job options).

    Every entry is an item of the batch. The same content twice (two paths, or an image
    already known from an earlier batch) is one image, with one job per provider in this
    batch. An entry that could not be read is recorded, and its jobs end ``invalid_image``
    straight away. With ``reuse_max_age``, a job whose image already has an answer from the
    same provider with the same options, younger than that, reuses it (no vendor call).
    """
    batch = Batch(label=label, sources=sources or [], idempotency_key=idempotency_key)
    if now is not None:
        batch.created_at = now
    session.add(batch)
    session.flush()
    conn = session.connection()
    urls = _UrlImages(conn)
    serial = 0
    for chunk in _chunks(entries, CHUNK):
        keys: list[ImageKey] = []
        for entry in chunk:
            keys.append(_image_key(entry, serial))
            serial += 1
        ids = _image_ids(conn, urls, chunk, keys)
        items = [_item_row(batch, e, ids[k]) for e, k in zip(chunk, keys, strict=True)]
        conn.execute(insert(Item), items)
        rows = {  # one job per image and provider, however often the chunk names the image
            (ids[key], provider): _job_row(batch, ids[key], provider, job_options, entry.error)
            for entry, key in zip(chunk, keys, strict=True)
            for provider, job_options in options.items()
        }
        new_jobs = _insert_jobs(conn, list(rows.values()))
        if reuse_max_age is not None and new_jobs:
            reuse.reuse_answers(conn, new_jobs, batch.created_at, reuse_max_age)
    urls.drop()
    return batch


def create_batch_from_images(
    session: Session,
    image_ids: Iterable[int],
    options: Mapping[str, Mapping[str, str]],
    *,
    label: str | None = None,
    sources: list[str] | None = None,
    reuse_max_age: timedelta | None = None,
    now: datetime | None = None,
) -> Batch:
    """A batch over images already known (``vrec reprocess``): one item per image (however
    often ``image_ids`` names it), at the file or URL that last held it, and one job per
    image x provider. The ids are streamed into a temporary table and everything else is
    one set-based statement each: a million images are never loaded."""
    batch = Batch(label=label, sources=sources or [])
    if now is not None:
        batch.created_at = now
    session.add(batch)
    session.flush()
    conn = session.connection()
    with staged_ids(conn, image_ids) as staged:
        _items_of_images(conn, batch, select(staged.c.id))
    for provider, job_options in options.items():
        _jobs_of_items(conn, batch, provider, job_options)
    if reuse_max_age is not None:
        reuse.reuse_batch(conn, batch.id, batch.created_at, reuse_max_age)
    return batch


def _items_of_images(conn: Connection, batch: Batch, image_ids: Select[tuple[int]]) -> None:
    """An item of ``batch`` for each image ``image_ids`` selects, at the image's latest
    known file or URL."""
    held = aliased(Item)
    latest_uri = (
        select(held.uri)
        .where(held.image_id == Image.id)
        .order_by(held.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = select(
        literal(batch.id),
        Image.id,
        func.coalesce(latest_uri, ""),
        literal(batch.created_at, UTCDateTime),
    ).where(Image.id.in_(image_ids))
    conn.execute(insert(Item).from_select(["batch_id", "image_id", "uri", "created_at"], rows))


def _jobs_of_items(
    conn: Connection, batch: Batch, provider: str, options: Mapping[str, str]
) -> None:
    """One pending job of ``provider`` per image of ``batch``'s items."""
    when = literal(batch.created_at, UTCDateTime)
    rows = select(
        literal(batch.id),
        Item.image_id,
        literal(provider),
        literal(dict(options), JSONType),
        literal(options_key(options)),
        literal(JobStatus.PENDING.value),
        literal(0),
        literal(0),
        when,
        when,
    ).where(Item.batch_id == batch.id)
    columns = [
        "batch_id",
        "image_id",
        "provider",
        "options",
        "options_key",
        "status",
        "attempts",
        "retries",
        "created_at",
        "updated_at",
    ]
    conn.execute(insert(Job).from_select(columns, rows))


def _image_key(entry: Source, serial: int) -> ImageKey:
    if entry.facts:
        return ("sha256", entry.facts.sha256)
    if entry.error is None:
        return ("uri", entry.uri)
    return ("unreadable", serial)


class _UrlImages:
    """The image of each URL this registration has recorded so far, in a temporary table
    of the transaction keyed by the URL's sha256 (a key of fixed length: a btree entry of
    a long URL itself could exceed PostgreSQL's limit).

    Asking ``items`` instead (this batch's items whose image has no content yet) read every
    URL image of the batch for each chunk, as no index leads with the URI: registration
    time grew with the square of the batch (50,000 URLs: 37 s, 22 s this way). The key is
    the table's primary key, so the planner knows each looked-up URL matches at most one
    row without statistics of the table (autovacuum never analyses a temporary table):
    a plain index there made it scan the whole table once a chunk asked for 500 URLs.
    Nothing is held in this process.

    A failed registration rolls its transaction back, and the table with it (PostgreSQL
    would also drop it at commit); :meth:`drop` ends it once the batch is registered.
    """

    NAME = "vrec_batch_urls"

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.created = False
        self.table = table(self.NAME, column("url_key"), column("image_id"))

    @staticmethod
    def key(uri: str) -> str:
        return hashlib.sha256(uri.encode("utf-8", "surrogatepass")).hexdigest()

    def _create(self) -> None:
        on_commit = " ON COMMIT DROP" if self.conn.dialect.name == "postgresql" else ""
        self.conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {self.NAME} "
            "(url_key VARCHAR(64) PRIMARY KEY, image_id BIGINT NOT NULL)" + on_commit
        )
        self.created = True

    def known(self, uris: list[str]) -> list[tuple[str, int]]:
        """(uri, image id) of those of ``uris`` already recorded."""
        if not uris or not self.created:
            return []
        by_key = {self.key(uri): uri for uri in uris}
        rows = self.conn.execute(
            select(self.table.c.url_key, self.table.c.image_id).where(
                self.table.c.url_key.in_(list(by_key))
            )
        )
        return [(by_key[key], int(image_id)) for key, image_id in rows]

    def add(self, pairs: list[tuple[str, int]]) -> None:
        if not pairs:
            return
        if not self.created:
            self._create()
        self.conn.execute(
            insert(self.table),
            [{"url_key": self.key(uri), "image_id": image_id} for uri, image_id in pairs],
        )

    def drop(self) -> None:
        if self.created:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.NAME}")
            self.created = False


def _image_ids(
    conn: Connection, urls: _UrlImages, chunk: list[Source], keys: list[ImageKey]
) -> dict[ImageKey, int]:
    """The image id of every key of the chunk: contents already stored (by any batch,
    earlier chunks included), URLs this registration already recorded, and new rows."""
    shas = [str(k[1]) for k in keys if k[0] == "sha256"]
    uris = [str(k[1]) for k in keys if k[0] == "uri"]
    known = conn.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(shas)))
    ids: dict[ImageKey, int] = {("sha256", sha): id_ for sha, id_ in known if sha}
    ids.update((("uri", uri), image_id) for uri, image_id in urls.known(uris))
    new: dict[ImageKey, Source] = {}
    for entry, key in zip(chunk, keys, strict=True):
        if key not in ids:
            new.setdefault(key, entry)
    if new:
        stmt = insert(Image).returning(Image.id, sort_by_parameter_order=True)
        rows = [_image_row(e) for e in new.values()]
        created = dict(zip(new, conn.execute(stmt, rows).scalars(), strict=True))
        ids.update(created)
        urls.add([(str(key[1]), image_id) for key, image_id in created.items() if key[0] == "uri"])
    return ids


def _image_row(entry: Source) -> dict[str, Any]:
    facts = entry.facts
    return {
        "sha256": facts.sha256 if facts else None,
        "bytes": facts.size if facts else None,
        "width": facts.width if facts else None,
        "height": facts.height if facts else None,
        "format": facts.format if facts else None,
    }


def _item_row(batch: Batch, entry: Source, image_id: int) -> dict[str, Any]:
    return {
        "batch_id": batch.id,
        "image_id": image_id,
        "uri": entry.uri,
        "error": entry.error,
        "created_at": batch.created_at,
    }


def _insert_jobs(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the jobs not in the batch yet (one per image and provider); the new pending
    ones' ids. The unique (batch, image, provider) key drops the others, so the batch
    needs no memory of what earlier chunks created."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(Job).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(Job).on_conflict_do_nothing()
    inserted = conn.execute(stmt.returning(Job.id, Job.status), rows)
    return [job_id for job_id, status in inserted if status == JobStatus.PENDING]


def _job_row(
    batch: Batch, image_id: int, provider: str, options: Mapping[str, str], error: str | None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "batch_id": batch.id,
        "image_id": image_id,
        "provider": provider,
        "options": dict(options),
        "options_key": options_key(options),
        "status": JobStatus.PENDING,
        # Every row has every key: an executemany INSERT takes its columns from the first.
        "last_error_category": None,
        "last_error_message": None,
        "finished_at": None,
        "created_at": batch.created_at,
        "updated_at": batch.created_at,
    }
    if error is not None:  # it could not be read: terminal at once
        row.update(
            status=JobStatus.INVALID_IMAGE,
            last_error_category="invalid_image",
            last_error_message=error,
            finished_at=batch.created_at,
        )
    return row
