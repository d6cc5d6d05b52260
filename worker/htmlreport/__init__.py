"""The HTML batch report: one self-contained file (inline CSS and SVG, thumbnails as
``data:`` JPEGs; nothing is fetched from anywhere when it is opened).

Rendered by Jinja2 from ``templates/report.html.j2`` with autoescaping on: every text from
users or vendors (file names, plates, owners, messages) is escaped, and the page's
Content-Security-Policy allows no script and no fetch at all, so a hostile file name or
vendor answer shows as text. Its size is bounded: at most ``max_images`` thumbnails (the
rest counted by status), each at most :data:`~.thumbnails.THUMB_SIDE` px.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

import jinja2

from models.batch_report import GalleryJob
from worker.config import FitMode
from worker.htmlreport.chart import throughput_chart
from worker.htmlreport.thumbnails import Thumbnail, thumbnail
from worker.lifecycle import ACTIVE, JobStatus
from worker.providers.base import CarModelCandidate, PlateReading, Reading, VehicleLicenseReading
from worker.service.report import BatchReport

STATUS_ORDER = [s.value for s in JobStatus]
LICENCE_FIELDS = (
    ("plate", "plate_no"),
    ("type", "vehicle_type"),
    ("owner", "owner"),
    ("address", "address"),
    ("model", "model"),
    ("VIN", "vin"),
    ("engine", "engine_no"),
    ("registered", "register_date"),
    ("issued", "issue_date"),
    ("file no", "file_no"),
    ("seats", "allow_num"),
    ("total mass", "total_mass"),
    ("record", "record"),
)


@dataclass(frozen=True)
class Card:
    """One picture of the gallery: an image as one provider read it."""

    job_id: int
    provider: str
    status: str
    source: str
    name: str
    thumbnail: Thumbnail
    lines: list[tuple[str, str]]
    reused: bool
    error: str | None


def _plate_lines(plates: list[PlateReading]) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    for i, p in enumerate(plates):
        name = "plate" if len(plates) == 1 else f"plate {i + 1}"
        extra = [p.color or "", f"{p.confidence:.2f}" if p.confidence is not None else ""]
        lines.append((name, " ".join([p.plate_no or "?", *(e for e in extra if e)])))
    return lines


def _licence_lines(licence: VehicleLicenseReading) -> list[tuple[str, str]]:
    lines = [("side", licence.side)]
    for label, attr in LICENCE_FIELDS:
        value = getattr(licence, attr)
        if value not in (None, ""):
            lines.append((label, str(value)))
    if licence.warn_msgs:
        lines.append(("warnings", "; ".join(licence.warn_msgs)))
    return lines


def _car_lines(cars: list[CarModelCandidate]) -> list[tuple[str, str]]:
    lines = []
    for car in cars[:3]:
        score = f" ({car.score:.2f})" if car.score is not None else ""
        lines.append((f"#{car.rank}", f"{car.name or '?'} {car.year or ''}".strip() + score))
    if cars and cars[0].color:
        lines.append(("colour", cars[0].color))
    return lines


def reading_lines(readings: list[Reading]) -> list[tuple[str, str]]:
    """What a vendor read, as (label, value) lines beside the picture."""
    plates = [r for r in readings if isinstance(r, PlateReading)]
    cars = [r for r in readings if isinstance(r, CarModelCandidate)]
    lines = _plate_lines(plates) + _car_lines(cars)
    for licence in (r for r in readings if isinstance(r, VehicleLicenseReading)):
        lines += _licence_lines(licence)
    return lines


def card(job: GalleryJob, fits: Mapping[str, FitMode] | None = None) -> Card:
    error = None
    if job.error_message and job.status not in (JobStatus.SUCCEEDED, JobStatus.NO_RESULT):
        error = job.error_message + (f" [{job.error_code}]" if job.error_code else "")
    return Card(
        job_id=job.job_id,
        provider=job.provider,
        status=job.status,
        source=job.source_uri,
        name=PurePath(job.source_uri).name or job.source_uri,
        thumbnail=thumbnail(
            job.source_uri, job.provider, job.readings, (fits or {}).get(job.provider)
        ),
        lines=reading_lines(job.readings),
        reused=job.reused,
        error=error,
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("worker.htmlreport", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda t: "" if t is None else f"{t:%Y-%m-%d %H:%M:%S} UTC"
    return env


def render_report(report: BatchReport, fits: Mapping[str, FitMode] | None = None) -> str:
    """The report's HTML; ``fits``: each provider's image fitting, as configured (else its
    default), so thumbnails are the frames the vendors received."""
    counts = report.counts
    statuses = [s for s in STATUS_ORDER if counts.get(s)]
    active = sum(counts.get(s, 0) for s in ACTIVE)
    started: datetime | None = report.throughput.start
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            r=report,
            counts=counts,
            statuses=statuses,
            active=active,
            total=sum(counts.values()),
            calls=report.total_calls,
            started=started,
            chart=throughput_chart(report.throughput),
            cards=[card(job, fits) for job in report.gallery],
            not_pictured=sum(report.not_pictured.values()),
        )
    )
