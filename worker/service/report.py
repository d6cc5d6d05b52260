"""What the HTML batch report shows (``vrec report BATCH``), read from the database;
:mod:`worker.htmlreport` draws it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from models import batch_report, reports
from models.batch_report import GalleryJob, Throughput
from models.db import Database
from worker.service.batches import get_batch

MAX_INVALID_SHOWN = 200
MAX_ERRORS_SHOWN = 50


@dataclass
class BatchReport:
    batch_id: int
    label: str | None
    created_at: datetime
    sources: list[str]
    files: int
    images: int
    by_provider: dict[str, dict[str, int]]  # provider -> status -> jobs
    calls: dict[str, reports.Calls]  # provider -> calls, billed, throttled, reused
    errors: list[reports.CodeCount]
    invalid: list[tuple[str, str]]  # (file, reason), at most MAX_INVALID_SHOWN
    invalid_more: bool
    throughput: Throughput
    gallery: list[GalleryJob]
    not_pictured: dict[str, int]  # status -> jobs left out of the gallery
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def counts(self) -> dict[str, int]:
        return reports.totals(self.by_provider)

    @property
    def total_calls(self) -> reports.Calls:
        return reports.total_calls(self.calls.values())


def build_report(db: Database, batch_id: int, *, max_images: int = 48) -> BatchReport:
    """Everything the report shows of ``batch_id``; at most ``max_images`` jobs pictured.
    NotFound for an unknown batch."""
    with db.transaction() as session:
        batch = get_batch(session, batch_id)
        files, images = batch_report.sizes(session, batch_id)
        invalid = reports.invalid_files(session, batch_id, limit=MAX_INVALID_SHOWN + 1)
        gallery, not_pictured = batch_report.gallery(session, batch_id, max_images)
        return BatchReport(
            batch_id=batch.id,
            label=batch.label,
            created_at=batch.created_at,
            sources=list(batch.sources or []),
            files=files,
            images=images,
            by_provider=reports.counts_by_provider(session, batch_id),
            calls=reports.calls_by_provider(session, [batch_id])[batch_id],
            errors=reports.errors_by_code(session, batch_id)[:MAX_ERRORS_SHOWN],
            invalid=invalid[:MAX_INVALID_SHOWN],
            invalid_more=len(invalid) > MAX_INVALID_SHOWN,
            throughput=batch_report.throughput(session, batch_id),
            gallery=gallery,
            not_pictured=not_pictured,
        )
