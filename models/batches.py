"""Creating a batch: image rows (deduplicated by content) and one job per image x provider."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping
from itertools import count, islice
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from models.core import Batch, Image, Job
from worker.lifecycle import JobStatus
from worker.sources import Source

ImageKey = tuple[str, str | int]  # ("sha256", hex) | ("uri", uri) | ("unreadable", serial)


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
) -> Batch:
    """Register ``entries`` for each provider in ``options`` (provider -> its job options).

    The same content twice (two paths, or an image already known from an earlier batch)
    is one image row; within a batch it gets one job per provider. An entry that could
    not be read is recorded and its jobs end ``invalid_image`` straight away.
    """
    batch = Batch(label=label, sources=sources or [])
    session.add(batch)
    session.flush()
    conn = session.connection()
    url_ids: dict[ImageKey, int] = {}  # URL images have no content yet: known by URI
    seen: set[tuple[int, str]] = set()
    serial = count()
    for chunk in _chunks(entries, 500):
        # Content already stored, by this batch's earlier chunks too (same transaction).
        shas = {e.facts.sha256 for e in chunk if e.facts}
        known = conn.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(shas)))
        chunk_ids: dict[ImageKey, int] = {("sha256", sha): id_ for sha, id_ in known if sha}
        ids = ChainMap(chunk_ids, url_ids)
        keys = [_image_key(entry, next(serial)) for entry in chunk]
        for key, image_id in _insert_images(conn, chunk, keys, ids).items():
            (url_ids if key[0] == "uri" else chunk_ids)[key] = image_id
        jobs = []
        for entry, key in zip(chunk, keys, strict=True):
            for provider, job_options in options.items():
                if (ids[key], provider) in seen:
                    continue
                seen.add((ids[key], provider))
                jobs.append(_job_row(batch, ids[key], provider, job_options, entry.error))
        if jobs:
            conn.execute(insert(Job), jobs)
    return batch


def _image_key(entry: Source, serial: int) -> ImageKey:
    """What makes two entries one image: their content, else (not yet fetched) the same URL;
    an unreadable file is an image of its own."""
    if entry.facts:
        return ("sha256", entry.facts.sha256)
    if entry.error is None:
        return ("uri", entry.uri)
    return ("unreadable", serial)


def _insert_images(
    conn: Connection,
    chunk: list[Source],
    keys: list[ImageKey],
    known: Mapping[ImageKey, int],
) -> dict[ImageKey, int]:
    """One INSERT for the chunk's images not seen before; their ids by key."""
    new: dict[ImageKey, Source] = {}
    for entry, key in zip(chunk, keys, strict=True):
        if key not in known:
            new.setdefault(key, entry)
    if not new:
        return {}
    rows = [_image_row(e) for e in new.values()]
    stmt = insert(Image).returning(Image.id, sort_by_parameter_order=True)
    return dict(zip(new, conn.execute(stmt, rows).scalars(), strict=True))


def _image_row(entry: Source) -> dict[str, Any]:
    facts = entry.facts
    return {
        "sha256": facts.sha256 if facts else None,
        "source_uri": entry.uri,
        "bytes": facts.size if facts else None,
        "width": facts.width if facts else None,
        "height": facts.height if facts else None,
        "format": facts.format if facts else None,
    }


def _job_row(
    batch: Batch, image_id: int, provider: str, options: Mapping[str, str], error: str | None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "batch_id": batch.id,
        "image_id": image_id,
        "provider": provider,
        "options": dict(options),
        "status": JobStatus.PENDING,
        # Every row has every key: an executemany INSERT takes its columns from the first.
        "last_error_category": None,
        "last_error_message": None,
        "finished_at": None,
    }
    if error is not None:  # it could not be read: terminal at once
        row.update(
            status=JobStatus.INVALID_IMAGE,
            last_error_category="invalid_image",
            last_error_message=error,
            finished_at=batch.created_at,
        )
    return row
