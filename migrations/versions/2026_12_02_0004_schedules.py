"""schedules: named sources on a cron schedule, their runs and their scan state

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

- ``schedules``: name (unique), providers and options, folder globs, cron expression and
  IANA time zone, paused, ``next_run_at`` (the first tick not run yet, UTC; indexed: what
  beat's check asks for).
- ``schedule_sources``: a schedule's folders, CSV manifests and manifest URLs, in order.
- ``schedule_files``: per source, each file (or manifest row) its scans have taken, keyed
  by the sha256 of its path (``path_key``), with size and mtime in ns, and sha256 once read.
- ``schedule_runs``: one per run, with its counts, batch and outcome; a tick is run once
  (``schedule_id, scheduled_for`` unique).

New tables only: nothing existing changes, and downgrading drops them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_DATETIME = models.base.UTCDateTime(timezone=True)


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("providers", JSON, nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("globs", JSON, nullable=False),
        sa.Column("cron", sa.String(length=120), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_schedules_name")),
    )
    with op.batch_alter_table("schedules") as batch_op:
        batch_op.create_index(batch_op.f("ix_schedules_next_run_at"), ["next_run_at"])
    op.create_table(
        "schedule_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.CheckConstraint(
            _one_of("kind", ("folder", "manifest", "url")), name=op.f("ck_schedule_sources_kind")
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_schedule_sources_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_sources")),
        sa.UniqueConstraint(
            "schedule_id", "position", name=op.f("uq_schedule_sources_schedule_id_position")
        ),
    )
    op.create_table(
        "schedule_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("path_key", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("taken_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["schedule_sources.id"],
            name=op.f("fk_schedule_files_source_id_schedule_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_files")),
        sa.UniqueConstraint(
            "source_id", "path_key", name=op.f("uq_schedule_files_source_id_path_key")
        ),
    )
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=10), nullable=False),
        sa.Column("scheduled_for", UTC_DATETIME, nullable=True),
        sa.Column("due_since", UTC_DATETIME, nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        *(
            sa.Column(f"files_{name}", sa.Integer(), nullable=False)
            for name in ("seen", "new", "changed", "skipped", "gone", "read")
        ),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            _one_of("outcome", ("registered", "nothing_new", "failed")),
            name=op.f("ck_schedule_runs_outcome"),
        ),
        sa.CheckConstraint(
            _one_of("trigger", ("beat", "manual")), name=op.f("ck_schedule_runs_trigger")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_schedule_runs_batch_id_batches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_schedule_runs_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_runs")),
        sa.UniqueConstraint(
            "schedule_id",
            "scheduled_for",
            name=op.f("uq_schedule_runs_schedule_id_scheduled_for"),
        ),
    )
    with op.batch_alter_table("schedule_runs") as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_runs_batch_id"), ["batch_id"])
        batch_op.create_index(batch_op.f("ix_schedule_runs_schedule_id"), ["schedule_id"])


def downgrade() -> None:
    op.drop_table("schedule_runs")
    op.drop_table("schedule_files")
    op.drop_table("schedule_sources")
    op.drop_table("schedules")
