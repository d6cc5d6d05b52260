"""indexes that keep the dispatcher, reconciler and plate lookups flat at a million rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

- ``ix_jobs_status`` (status, provider, id): the dispatcher takes a provider's oldest due
  jobs in id order without sorting every pending one, and the reconciler finds the running
  and queued jobs without reading the finished ones (it skip-scanned
  ``ix_jobs_batch_status``, a cost that grew with the table).
- ``ix_plate_readings_plate_no`` rebuilt with ``varchar_pattern_ops`` on PostgreSQL, so
  the README's ``plate_no LIKE '粤B%'`` reaches it (a plain index serves LIKE only under
  the "C" collation); it still serves ``=``. SQLite keeps its plain index.

The views are unchanged: since 0003 "the latest answer" is a NOT EXISTS on
``ix_results_answers``, so a filter on a reading's column reaches that column's index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_status", "jobs", ["status", "provider", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_plate_readings_plate_no", table_name="plate_readings")
        op.create_index(
            "ix_plate_readings_plate_no",
            "plate_readings",
            ["plate_no"],
            unique=False,
            postgresql_ops={"plate_no": "varchar_pattern_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_plate_readings_plate_no", table_name="plate_readings")
        op.create_index("ix_plate_readings_plate_no", "plate_readings", ["plate_no"], unique=False)
    op.drop_index("ix_jobs_status", table_name="jobs")
