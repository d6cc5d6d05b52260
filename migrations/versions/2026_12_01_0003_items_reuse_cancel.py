"""items, reused answers, cancelled jobs, views per item and provider

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

- ``items``: one row per submitted file, URL or manifest row, with its batch and image
  (two files with the same bytes are two items of one image). Existing batches get one
  item per (batch, image) from ``images.source_uri``, which is then dropped: the other
  paths of identical files were never recorded before this revision.
- ``jobs.options_key`` (the options as one sorted string), ``jobs.reused_from_job_id``
  (the job that paid for a reused answer), status ``cancelled``.
- ``results``: several per job (one per answered call, ``attempt``; 0 for a copy of a
  reused answer, ``reused_from_id``), indexed for "the latest answer for this image from
  this provider".
- ``batches.idempotency_key``: a producer's key, unique.
- Views rebuilt on items: every plate reading with its source file; the latest reading
  per image *and provider* (so a plate is found whichever provider read it); licences and
  car models per source file; reused calls per batch. "Latest" is a NOT EXISTS on the
  answers index, so a filter on an indexed column reaches the index.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES_0002 = ("pending", "queued", "running", "succeeded", "no_result", "invalid_image", "failed")
STATUSES = (*STATUSES_0002, "cancelled")

# A result with no newer answer for the same image from the same provider.
_LATEST = """NOT EXISTS (
            SELECT 1 FROM results n
            WHERE n.image_id = r.image_id AND n.provider = r.provider
              AND (n.created_at > r.created_at OR (n.created_at = r.created_at AND n.id > r.id))
        )"""
# The submitted files of the reading's batch that hold its image.
_ITEMS = "JOIN items it ON it.batch_id = j.batch_id AND it.image_id = r.image_id"
_PLATE_COLUMNS = """it.id AS item_id, it.uri AS source_uri, j.batch_id, p.job_id, p.image_id,
               i.sha256, p.provider, p.position, p.plate_no, p.color, p.color_code,
               p.plate_type, p.confidence, r.created_at AS read_at, r.id AS result_id,
               CASE WHEN r.reused_from_id IS NULL THEN 0 ELSE 1 END AS reused"""
_PLATE_FROM = f"""plate_readings p
        JOIN results r ON r.id = p.result_id
        JOIN jobs j ON j.id = p.job_id
        JOIN images i ON i.id = p.image_id
        {_ITEMS}"""

VIEWS = {
    # Every plate read, with each source file of its image in the reading's batch.
    "v_plate_readings": f"SELECT {_PLATE_COLUMNS} FROM {_PLATE_FROM}",
    # The plates of the latest answer for each image from each plate provider.
    "v_latest_plate": f"SELECT {_PLATE_COLUMNS} FROM {_PLATE_FROM} WHERE {_LATEST}",
    # Every vehicle licence page read, with each source file of its image.
    "v_vehicle_licenses": f"""
        SELECT v.plate_no, v.vin, v.owner, v.side, v.vehicle_type, v.model, v.engine_no,
               v.use_character, v.address, v.register_date, v.issue_date, v.seal, v.file_no,
               v.record, v.warn_codes, v.image_id, it.id AS item_id, it.uri AS source_uri,
               j.batch_id, v.job_id, r.created_at AS read_at,
               CASE WHEN r.reused_from_id IS NULL THEN 0 ELSE 1 END AS reused
        FROM vehicle_licenses v
        JOIN results r ON r.id = v.result_id
        JOIN jobs j ON j.id = v.job_id
        {_ITEMS}
    """,
    # The vendor's best make/model guess from the latest answer for each image.
    "v_top_car_model": f"""
        SELECT c.image_id, it.id AS item_id, it.uri AS source_uri, c.name, c.year, c.score,
               c.color, j.batch_id, c.job_id, r.created_at AS read_at
        FROM car_model_candidates c
        JOIN results r ON r.id = c.result_id
        JOIN jobs j ON j.id = c.job_id
        {_ITEMS}
        WHERE c.rank = 1 AND {_LATEST}
    """,
    # Jobs that ended without a result, by provider, category and vendor code.
    "v_failures": """
        SELECT provider, status, last_error_category AS category,
               last_error_code AS vendor_code, COUNT(*) AS jobs,
               MAX(finished_at) AS last_seen
        FROM jobs
        WHERE status IN ('invalid_image', 'failed')
        GROUP BY provider, status, last_error_category, last_error_code
    """,
    # Vendor calls, billed calls, reused answers and outcomes per batch and provider.
    "v_batch_calls": """
        SELECT j.batch_id, b.label, j.provider,
               COUNT(DISTINCT j.id) AS jobs,
               COUNT(a.id) AS calls,
               COALESCE(SUM(CASE WHEN a.billed THEN 1 ELSE 0 END), 0) AS billed_calls,
               COUNT(DISTINCT CASE WHEN j.reused_from_job_id IS NOT NULL THEN j.id END)
                   AS reused,
               COALESCE(SUM(CASE WHEN a.outcome = 'rate_limited' THEN 1 ELSE 0 END), 0)
                   AS throttled_calls,
               COALESCE(SUM(CASE WHEN a.outcome = 'transient' THEN 1 ELSE 0 END), 0)
                   AS transient_calls
        FROM jobs j
        JOIN batches b ON b.id = j.batch_id
        LEFT JOIN attempts a ON a.job_id = j.id
        GROUP BY j.batch_id, b.label, j.provider
    """,
}


def _status_check(statuses: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def _views_of(revision_id: str) -> dict[str, str]:
    """The views another revision defines (for downgrading to it)."""
    script = op.get_context().script
    assert script is not None
    views: dict[str, str] = script.get_revision(revision_id).module.VIEWS
    return views


def _options_key(options: object) -> str:
    """models.batches.options_key of a job's stored options (JSON text on SQLite)."""
    if isinstance(options, str):
        options = json.loads(options or "{}")
    if not isinstance(options, dict):
        return ""
    return "&".join(f"{k}={options[k]}" for k in sorted(options))


def upgrade() -> None:
    for name in reversed(_views_of("0002")):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_items_batch_id_batches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name=op.f("fk_items_image_id_images")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    with op.batch_alter_table("items") as batch_op:
        batch_op.create_index("ix_items_batch_image", ["batch_id", "image_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_items_image_id"), ["image_id"], unique=False)
    # One item per (batch, image) that existing jobs name, at the image's recorded URI.
    op.execute(
        """
        INSERT INTO items (batch_id, image_id, uri, error, created_at)
        SELECT DISTINCT j.batch_id, j.image_id, i.source_uri, NULL, b.created_at
        FROM jobs j JOIN images i ON i.id = j.image_id JOIN batches b ON b.id = j.batch_id
        """
    )

    with op.batch_alter_table("batches") as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_batches_idempotency_key"), ["idempotency_key"]
        )
    with op.batch_alter_table("images") as batch_op:
        batch_op.drop_column("source_uri")

    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(
            sa.Column("options_key", sa.String(length=400), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("reused_from_job_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_reused_from_job_id_jobs"),
            "jobs",
            ["reused_from_job_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            batch_op.f("ix_jobs_reused_from_job_id"), ["reused_from_job_id"], unique=False
        )
        batch_op.drop_constraint(batch_op.f("ck_jobs_status"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_status"), _status_check(STATUSES))
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("options_key", server_default=None)
    conn = op.get_bind()
    jobs = sa.table("jobs", sa.column("id"), sa.column("options"), sa.column("options_key"))
    keyed = [
        {"b_id": job_id, "options_key": _options_key(options)}
        for job_id, options in conn.execute(sa.select(jobs.c.id, jobs.c.options))
        if _options_key(options)
    ]
    if keyed:
        conn.execute(jobs.update().where(jobs.c.id == sa.bindparam("b_id")), keyed)

    with op.batch_alter_table("results") as batch_op:
        batch_op.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("reused_from_id", sa.Integer(), nullable=True))
        batch_op.drop_index(batch_op.f("ix_results_image_id"))
        batch_op.drop_constraint(batch_op.f("uq_results_job_id"), type_="unique")
        batch_op.create_index(
            "ix_results_answers", ["image_id", "provider", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_results_reused_from_id"), ["reused_from_id"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_results_job_id_attempt"), ["job_id", "attempt"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_results_reused_from_id_results"),
            "results",
            ["reused_from_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("results") as batch_op:
        batch_op.alter_column("attempt", server_default=None)
    # An existing result answers its job's last call.
    op.execute(
        "UPDATE results SET attempt = (SELECT attempts FROM jobs WHERE jobs.id = results.job_id)"
    )
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {select}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    # 0002 keeps one result per job (the latest) and knows no cancelled status.
    op.execute(
        "DELETE FROM results WHERE id NOT IN (SELECT MAX(id) FROM results GROUP BY job_id)"
    )
    op.execute(
        "UPDATE jobs SET status = 'failed', last_error_category = 'cancelled', "
        "last_error_message = 'cancelled' WHERE status = 'cancelled'"
    )
    with op.batch_alter_table("results") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_results_reused_from_id_results"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_results_job_id_attempt"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_results_reused_from_id"))
        batch_op.drop_index("ix_results_answers")
        batch_op.create_unique_constraint(batch_op.f("uq_results_job_id"), ["job_id"])
        batch_op.create_index(batch_op.f("ix_results_image_id"), ["image_id"], unique=False)
        batch_op.drop_column("reused_from_id")
        batch_op.drop_column("attempt")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_status"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_status"), _status_check(STATUSES_0002))
        batch_op.drop_index(batch_op.f("ix_jobs_reused_from_job_id"))
        batch_op.drop_constraint(batch_op.f("fk_jobs_reused_from_job_id_jobs"), type_="foreignkey")
        batch_op.drop_column("reused_from_job_id")
        batch_op.drop_column("options_key")
    with op.batch_alter_table("images") as batch_op:
        batch_op.add_column(sa.Column("source_uri", sa.Text(), nullable=False, server_default=""))
    # The image's first recorded file or URL.
    op.execute(
        "UPDATE images SET source_uri = COALESCE("
        "(SELECT uri FROM items WHERE items.image_id = images.id ORDER BY items.id LIMIT 1), '')"
    )
    with op.batch_alter_table("images") as batch_op:
        batch_op.alter_column("source_uri", server_default=None)
    with op.batch_alter_table("batches") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_batches_idempotency_key"), type_="unique")
        batch_op.drop_column("idempotency_key")
    with op.batch_alter_table("items") as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_image_id"))
        batch_op.drop_index("ix_items_batch_image")
    op.drop_table("items")
    for name, select in _views_of("0002").items():
        op.execute(f"CREATE VIEW {name} AS {select}")
