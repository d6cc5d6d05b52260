"""Rows for export: one per submitted file x provider, with the typed fields of its answer.

One streamed query does it all (a server-side cursor on PostgreSQL): the batch's items
joined with their jobs, each job's latest answer, and that answer's first plate (with
every plate ``;``-joined), its licence pages (the front page's value first) and its best
car-model candidate. Exporting a million rows holds one fetch of rows in memory, never
the batch, and costs the database index lookups, not sorts.

A job without an answer (failed, invalid, still pending) has the typed fields empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, Text, and_, cast, func, select
from sqlalchemy.orm import aliased

from models.core import Image, Item, Job, Result
from models.db import READ_ONLY
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense

FETCH = 5000  # rows per round trip

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
REUSED, WARNINGS = COLUMNS.index("reused"), COLUMNS.index("warnings")
Row = tuple[Any, ...]


def _query(where: Sequence[ColumnElement[bool]]) -> Select[*tuple[Any, ...]]:
    newer = aliased(Result)
    plate = aliased(PlateReadingRow)
    every = aliased(PlateReadingRow)
    front = aliased(VehicleLicense)
    back = aliased(VehicleLicense)
    car = aliased(CarModelCandidateRow)
    # The job's latest answer: no answer of the same job for a later call.
    latest = (
        ~select(newer.id)
        .where(newer.job_id == Result.job_id, newer.attempt > Result.attempt)
        .exists()
    )
    plates = (
        select(func.aggregate_strings(every.plate_no, ";"))
        .where(every.result_id == Result.id)
        .scalar_subquery()
    )

    def page(field: str) -> ColumnElement[Any]:
        return func.coalesce(getattr(front, field), getattr(back, field))

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
            Result.created_at,
            func.coalesce(plate.plate_no, front.plate_no, back.plate_no),
            plate.color,
            plate.confidence,
            plates,
            page("vin"),
            page("owner"),
            page("vehicle_type"),
            page("model"),
            page("engine_no"),
            page("register_date"),
            page("file_no"),
            car.name,
            car.year,
            car.score,
            car.color,
            # As text: decoding a million JSON lists costs more than the query itself.
            cast(Result.warnings, Text),
        )
        .select_from(Item)
        .join(Job, (Job.batch_id == Item.batch_id) & (Job.image_id == Item.image_id))
        .join(Image, Image.id == Item.image_id)
        .outerjoin(Result, and_(Result.job_id == Job.id, latest))
        .outerjoin(plate, and_(plate.result_id == Result.id, plate.position == 0))
        .outerjoin(front, and_(front.result_id == Result.id, front.side == "FRONT"))
        .outerjoin(back, and_(back.result_id == Result.id, back.side == "BACK"))
        .outerjoin(car, and_(car.result_id == Result.id, car.rank == 1))
        .where(*where)
        .order_by(Item.id, Job.provider)
    )


def batch_rows(engine: Engine, batch_id: int) -> Iterator[Row]:
    """Every submitted file x provider of the batch, in submission order (COLUMNS)."""
    yield from _stream(engine, _query([Item.batch_id == batch_id]))


def image_rows(engine: Engine, image_ids: Iterator[int], chunk: int = 1000) -> Iterator[Row]:
    """For each image, its latest job per provider, once per file of that job's batch."""
    newer = aliased(Job)
    latest = (
        ~select(newer.id)
        .where(newer.image_id == Job.image_id, newer.provider == Job.provider, newer.id > Job.id)
        .exists()
    )
    while ids := list(islice(image_ids, chunk)):
        yield from _stream(engine, _query([Item.image_id.in_(ids), latest]))


def _stream(engine: Engine, query: Select[*tuple[Any, ...]]) -> Iterator[Row]:
    with engine.connect() as conn:
        conn = conn.execution_options(**{READ_ONLY: True})
        if conn.dialect.name == "postgresql":
            # A server-side cursor is planned for its first 10% of rows (nested loops);
            # an export reads them all, so plan for the whole (hash joins). JIT compiling
            # costs more than it saves on these joins.
            conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
            conn.exec_driver_sql("SET LOCAL jit = off")
        reading = conn.execution_options(stream_results=True, yield_per=FETCH)
        for r in reading.execute(query):
            yield _plain(r)


def _plain(r: Any) -> Row:
    """A row as exported: reused as a flag, the warnings as ``;``-joined text."""
    row = list(r)
    row[REUSED] = row[REUSED] is not None
    warnings = row[WARNINGS]
    row[WARNINGS] = ";".join(map(str, json.loads(warnings))) if warnings not in (None, "[]") else ""
    return tuple(row)
