"""Typed tables of what the vendors read, one row per reading, for people querying SQL.

Each table's columns match a reading dataclass in :mod:`worker.providers.base` plus the
keys (result, job, image, provider), so storing one is ``Table(**asdict(reading), ...)``.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType


class _ReadingKeys:
    """Columns every reading table has: where the reading came from."""

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    provider: Mapped[str] = mapped_column(String(40))


class VehicleLicense(_ReadingKeys, Base):
    """One page of a vehicle licence (行驶证): FRONT (主页) or BACK (副页)."""

    __tablename__ = "vehicle_licenses"

    side: Mapped[str] = mapped_column(String(8))
    plate_no: Mapped[str | None] = mapped_column(String(32), index=True)
    vehicle_type: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    address: Mapped[str | None] = mapped_column(Text)
    use_character: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    vin: Mapped[str | None] = mapped_column(String(32), index=True)
    engine_no: Mapped[str | None] = mapped_column(String(64))
    register_date: Mapped[date | None] = mapped_column(Date)
    issue_date: Mapped[date | None] = mapped_column(Date)
    seal: Mapped[str | None] = mapped_column(String(200))
    file_no: Mapped[str | None] = mapped_column(String(64))
    allow_num: Mapped[str | None] = mapped_column(String(32))
    total_mass: Mapped[str | None] = mapped_column(String(32))
    curb_weight: Mapped[str | None] = mapped_column(String(32))
    load_quality: Mapped[str | None] = mapped_column(String(32))
    external_size: Mapped[str | None] = mapped_column(String(64))
    total_quasi_mass: Mapped[str | None] = mapped_column(String(32))
    marks: Mapped[str | None] = mapped_column(Text)
    record: Mapped[str | None] = mapped_column(Text)
    fuel_type: Mapped[str | None] = mapped_column(String(32))
    sub_page_code: Mapped[str | None] = mapped_column(String(64))
    warn_codes: Mapped[list[int]] = mapped_column(JSONType, default=list)
    warn_msgs: Mapped[list[str]] = mapped_column(JSONType, default=list)


class PlateReadingRow(_ReadingKeys, Base):
    """One licence plate read in an image (several per image where the vendor finds several)."""

    __tablename__ = "plate_readings"
    # Pattern operators on PostgreSQL, so ``plate_no LIKE '粤B%'`` reaches the index as well
    # as ``=``: a database whose collation is not "C" cannot use a plain index for LIKE.
    __table_args__ = (
        Index(
            "ix_plate_readings_plate_no",
            "plate_no",
            postgresql_ops={"plate_no": "varchar_pattern_ops"},
        ),
    )

    position: Mapped[int] = mapped_column(Integer)
    plate_no: Mapped[str | None] = mapped_column(String(32))
    color: Mapped[str | None] = mapped_column(String(16))
    color_code: Mapped[int | None] = mapped_column(Integer)
    plate_type: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)
    box: Mapped[list[int] | None] = mapped_column(JSONType)
    quad: Mapped[list[dict[str, int]] | None] = mapped_column(JSONType)
    brightness: Mapped[int | None] = mapped_column(Integer)
    direction: Mapped[int | None] = mapped_column(Integer)


class CarModelCandidateRow(_ReadingKeys, Base):
    """One make/model guess for the largest car in an image, ranked by the vendor's score."""

    __tablename__ = "car_model_candidates"

    rank: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    year: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    baike_url: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    color: Mapped[str | None] = mapped_column(String(32))
