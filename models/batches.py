"""Creating a batch: image rows (deduplicated by content) and one job per image x provider."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.core import Batch, Image, Job, JobStatus


@dataclass(frozen=True)
class SourceEntry:
    """One submitted image as registration saw it. ``error``: it could not even be read."""

    uri: str
    sha256: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    error: str | None = None


def _chunks(items: Iterable[SourceEntry], n: int) -> Iterator[list[SourceEntry]]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


def create_batch(
    session: Session,
    entries: Iterable[SourceEntry],
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
    seen: set[tuple[int, str]] = set()
    url_images: dict[str, int] = {}
    for chunk in _chunks(entries, 500):
        shas = {e.sha256 for e in chunk if e.sha256}
        query = select(Image.sha256, Image.id).where(Image.sha256.in_(shas))
        known: dict[str | None, int] = {sha: id_ for sha, id_ in session.execute(query)}
        for entry in chunk:
            image_id = known.get(entry.sha256) if entry.sha256 else url_images.get(entry.uri)
            if image_id is None:
                image = Image(
                    sha256=entry.sha256,
                    source_uri=entry.uri,
                    bytes=entry.size,
                    width=entry.width,
                    height=entry.height,
                    format=entry.format,
                )
                session.add(image)
                session.flush()
                image_id = image.id
                if entry.sha256:
                    known[entry.sha256] = image_id
                elif entry.error is None:
                    url_images[entry.uri] = image_id
            for provider, job_options in options.items():
                if (image_id, provider) in seen:
                    continue
                seen.add((image_id, provider))
                job = Job(
                    batch_id=batch.id,
                    image_id=image_id,
                    provider=provider,
                    options=dict(job_options),
                    status=JobStatus.PENDING,
                )
                if entry.error is not None:
                    job.status = JobStatus.INVALID_IMAGE
                    job.last_error_category = "invalid_image"
                    job.last_error_message = entry.error
                    job.finished_at = batch.created_at
                session.add(job)
    session.flush()
    return batch
