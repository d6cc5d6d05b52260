"""Batches, images, jobs, attempts, results and provider state: the flow's own tables.

A job is one image x one provider x options; its states and their order are in
:mod:`worker.lifecycle`. The database is the source of truth; the broker only carries
job ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, utcnow
from worker.lifecycle import JobStatus

_STATUS_CHECK = "status IN (" + ", ".join(f"'{s.value}'" for s in JobStatus) + ")"


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str | None] = mapped_column(String(200))
    sources: Mapped[list[str]] = mapped_column(JSONType, default=list)  # the arguments given
    # A producer's idempotency key: the same key always yields this batch.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Image(Base):
    """One distinct image content. URL images get their sha256 once fetched; the files
    and URLs that held it are its items."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Item(Base):
    """One submitted item (a file, a URL, a manifest row) of a batch, and its image: two
    files with the same bytes are two items of one image, each with its own path."""

    __tablename__ = "items"
    __table_args__ = (Index("ix_items_batch_image", "batch_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    uri: Mapped[str] = mapped_column(Text)  # the path or URL as submitted (resolved)
    error: Mapped[str | None] = mapped_column(Text)  # why it could not even be read
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("batch_id", "image_id", "provider"),
        CheckConstraint(_STATUS_CHECK, name="status"),
        Index("ix_jobs_due", "provider", "status", "not_before"),
        Index("ix_jobs_batch_status", "batch_id", "status"),
        # A status's jobs of a provider in id order: the dispatcher takes the oldest due
        # ones without sorting them all, and the reconciler finds running and queued jobs
        # without reading the finished million.
        Index("ix_jobs_status", "status", "provider", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The options as one sorted "k=v&k=v" string: what "the same options" means for reuse.
    options_key: Mapped[str] = mapped_column(String(400), default="")
    # The job that paid for the answer this one reused (no vendor call was made).
    reused_from_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # vendor calls made
    retries: Mapped[int] = mapped_column(Integer, default=0)  # retryable failures so far
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_category: Mapped[str | None] = mapped_column(String(32))
    last_error_code: Mapped[str | None] = mapped_column(String(80))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Attempt(Base):
    """One vendor call: what was sent when, what came back, whether it cost money.

    Written before the request is sent (``outcome`` ``in_flight``, ``billed`` unknown) and
    completed with the answer; ``lost`` when the worker stopped before that.
    """

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 for the job's first call
    provider: Mapped[str] = mapped_column(String(40), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    vendor_code: Mapped[str | None] = mapped_column(String(80))
    vendor_request_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(24))
    error_message: Mapped[str | None] = mapped_column(Text)
    billed: Mapped[bool | None] = mapped_column(Boolean)  # None: unknown (in flight, lost)
    worker: Mapped[str | None] = mapped_column(String(128))


class Result(Base):
    """A vendor's answer (succeeded or no_result, secrets stripped) for a job's call, or a
    copy of an earlier paid answer that the job reused (``reused_from_id``).

    ``created_at`` is when the vendor read the image (a copy keeps the original's), so the
    age of a reused answer is the age of what was paid for. A job retried after an answer
    gets another result for its next call: one per (job, attempt), attempt 0 for a copy.
    """

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt"),
        Index("ix_results_answers", "image_id", "provider", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # the job's call it answers
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    provider: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(24))
    raw: Mapped[Any] = mapped_column(JSONType)
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reused_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("results.id", ondelete="SET NULL"), index=True
    )


class ProviderState(Base):
    """A provider's circuit: open while its credentials or account are wrong."""

    __tablename__ = "provider_states"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    circuit_open_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The credential the vendor refused (its non-secret id): another one closes the circuit.
    credential_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
