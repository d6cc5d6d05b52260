"""Rows for export: one per submitted file x provider, with the typed fields of its answer.

A batch's rows come from one streamed query (items joined with their jobs and each job's
latest answer), and every ``CHUNK`` of them gets its readings with three queries keyed by
result id, so exporting a million rows holds a chunk in memory, never the batch.

The typed fields of a row: the first plate read (and every plate, ``;``-joined), the
licence's front and back pages merged, the best car-model candidate, and the answer's
warnings. A job without an answer (failed, invalid, still pending) has them empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from itertools import islice
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, func, select
from sqlalchemy.orm import aliased

from models.core import Image, Item, Job, Result
from models.db import READ_ONLY
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense

CHUNK = 5000

COLUMNS = (
    "batch_id",
    "source",
    "image_id",
    "sha256",
    "provider",
    "status",
    "error_category",
    "error_code",
    "error_message",
    "reused",
    "read_at",
    "plate_no",
    "plate_color",
    "plate_confidence",
    "plates",
    "vin",
    "owner",
    "vehicle_type",
    "licence_model",
    "engine_no",
    "register_date",
    "file_no",
    "car_name",
    "car_year",
    "car_score",
    "car_color",
    "warnings",
)
Row = dict[str, Any]


def _latest_result() -> Any:
    """SQL: the id of the job's latest answer (None without one)."""
    answer = aliased(Result)
    return select(func.max(answer.id)).where(answer.job_id == Job.id).scalar_subquery()


def _rows_query(where: Sequence[ColumnElement[bool]]) -> Select[*tuple[Any, ...]]:
    return (
        select(
            Job.batch_id,
            Item.uri,
            Job.image_id,
            Image.sha256,
            Job.provider,
            Job.status,
            Job.last_error_category,
            Job.last_error_code,
            Job.last_error_message,
            Job.reused_from_job_id,
            _latest_result().label("result_id"),
        )
        .join(Job, (Job.batch_id == Item.batch_id) & (Job.image_id == Item.image_id))
        .join(Image, Image.id == Item.image_id)
        .where(*where)
        .order_by(Item.id, Job.provider)
    )


def batch_rows(engine: Engine, batch_id: int) -> Iterator[Row]:
    """Every submitted file x provider of the batch, in submission order."""
    yield from _stream(engine, _rows_query([Item.batch_id == batch_id]))


def image_rows(engine: Engine, image_ids: Iterator[int]) -> Iterator[Row]:
    """For each image, its latest job per provider, once per file of that job's batch."""
    newer = aliased(Job)
    latest = (
        ~select(newer.id)
        .where(newer.image_id == Job.image_id, newer.provider == Job.provider, newer.id > Job.id)
        .exists()
    )
    while chunk := list(islice(image_ids, CHUNK)):
        yield from _stream(engine, _rows_query([Item.image_id.in_(chunk), latest]))


def _stream(engine: Engine, query: Select[*tuple[Any, ...]]) -> Iterator[Row]:
    with engine.connect() as rows_conn, engine.connect() as readings_conn:
        readings_conn = readings_conn.execution_options(**{READ_ONLY: True})
        streaming = rows_conn.execution_options(stream_results=True, yield_per=CHUNK)
        result = streaming.execution_options(**{READ_ONLY: True}).execute(query)
        for part in result.partitions():
            yield from _with_readings(readings_conn, part)


def _with_readings(conn: Any, part: Sequence[Any]) -> Iterator[Row]:
    result_ids = [r.result_id for r in part if r.result_id is not None]
    readings = _readings(conn, result_ids)
    for r in part:
        row: Row = dict.fromkeys(COLUMNS)
        row.update(
            batch_id=r.batch_id,
            source=r.uri,
            image_id=r.image_id,
            sha256=r.sha256,
            provider=r.provider,
            status=r.status,
            error_category=r.last_error_category,
            error_code=r.last_error_code,
            error_message=r.last_error_message,
            reused=r.reused_from_job_id is not None,
        )
        if r.result_id is not None:
            row.update(readings.get(r.result_id, {}))
        yield row


def _readings(conn: Any, result_ids: list[int]) -> dict[int, Row]:
    """result id -> its typed fields (and when it was read, and its warnings)."""
    fields: dict[int, Row] = {}
    if not result_ids:
        return fields
    answers = conn.execute(
        select(Result.id, Result.created_at, Result.warnings).where(Result.id.in_(result_ids))
    )
    for result_id, read_at, warnings in answers:
        fields[result_id] = {"read_at": read_at, "warnings": ";".join(map(str, warnings or []))}
    plate_rows = PlateReadingRow.__table__
    plates = conn.execute(
        select(plate_rows)
        .where(plate_rows.c.result_id.in_(result_ids))
        .order_by(plate_rows.c.result_id, plate_rows.c.position)
    )
    for plate in plates:
        _add_plate(fields[plate.result_id], plate)
    page_rows = VehicleLicense.__table__
    pages = conn.execute(
        select(page_rows)
        .where(page_rows.c.result_id.in_(result_ids))
        .order_by(page_rows.c.result_id, page_rows.c.side.desc())  # FRONT before BACK
    )
    for page in pages:
        _add_page(fields[page.result_id], page)
    car_rows = CarModelCandidateRow.__table__
    cars = conn.execute(
        select(car_rows).where(car_rows.c.result_id.in_(result_ids), car_rows.c.rank == 1)
    )
    for car in cars:
        fields[car.result_id].update(
            car_name=car.name, car_year=car.year, car_score=car.score, car_color=car.color
        )
    return fields


def _add_plate(row: Row, plate: Any) -> None:
    if "plate_no" not in row:
        row.update(plate_no=plate.plate_no, plate_color=plate.color)
        row["plate_confidence"] = plate.confidence
    row["plates"] = ";".join(p for p in (row.get("plates"), plate.plate_no) if p)


def _add_page(row: Row, page: Any) -> None:
    """A licence page's fields; the front page's win where both sides have one."""
    values: dict[str, str | date | None] = {
        "plate_no": page.plate_no,
        "vin": page.vin,
        "owner": page.owner,
        "vehicle_type": page.vehicle_type,
        "licence_model": page.model,
        "engine_no": page.engine_no,
        "register_date": page.register_date,
        "file_no": page.file_no,
    }
    for key, value in values.items():
        if value is not None and row.get(key) is None:
            row[key] = value


def plain(value: object) -> object:
    """A value as export formats write it: dates in ISO form, the rest unchanged."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
