"""views for SQL users

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Plain SQL that PostgreSQL and SQLite (>= 3.25, window functions) both run, so the same
query gives the same rows on either. Documented in the README.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = {
    # The most recent plate read for each image, whichever plate provider read it.
    "v_latest_plate": """
        SELECT image_id, source_uri, sha256, plate_no, color, color_code, plate_type,
               confidence, provider, batch_id, job_id, read_at
        FROM (
            SELECT p.image_id, i.source_uri, i.sha256, p.plate_no, p.color, p.color_code,
                   p.plate_type, p.confidence, p.provider, j.batch_id, p.job_id,
                   r.created_at AS read_at,
                   ROW_NUMBER() OVER (
                       PARTITION BY p.image_id ORDER BY r.created_at DESC, r.id DESC, p.position
                   ) AS n
            FROM plate_readings p
            JOIN results r ON r.id = p.result_id
            JOIN jobs j ON j.id = p.job_id
            JOIN images i ON i.id = p.image_id
        ) ranked
        WHERE n = 1
    """,
    # Every vehicle licence page read, with where the image came from.
    "v_vehicle_licenses": """
        SELECT v.plate_no, v.vin, v.owner, v.side, v.vehicle_type, v.model, v.engine_no,
               v.use_character, v.address, v.register_date, v.issue_date, v.seal, v.file_no,
               v.record, v.warn_codes, v.image_id, i.source_uri, j.batch_id, v.job_id,
               r.created_at AS read_at
        FROM vehicle_licenses v
        JOIN results r ON r.id = v.result_id
        JOIN jobs j ON j.id = v.job_id
        JOIN images i ON i.id = v.image_id
    """,
    # The vendor's best make/model guess for each image, from its most recent reading.
    "v_top_car_model": """
        SELECT image_id, source_uri, name, year, score, color, batch_id, job_id, read_at
        FROM (
            SELECT c.image_id, i.source_uri, c.name, c.year, c.score, c.color, j.batch_id,
                   c.job_id, r.created_at AS read_at,
                   ROW_NUMBER() OVER (
                       PARTITION BY c.image_id ORDER BY r.created_at DESC, r.id DESC, c.rank
                   ) AS n
            FROM car_model_candidates c
            JOIN results r ON r.id = c.result_id
            JOIN jobs j ON j.id = c.job_id
            JOIN images i ON i.id = c.image_id
        ) ranked
        WHERE n = 1
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
    # Vendor calls, billed calls and outcomes per batch and provider.
    "v_batch_calls": """
        SELECT j.batch_id, b.label, j.provider,
               COUNT(DISTINCT j.id) AS jobs,
               COUNT(a.id) AS calls,
               SUM(CASE WHEN a.billed THEN 1 ELSE 0 END) AS billed_calls,
               SUM(CASE WHEN a.outcome = 'rate_limited' THEN 1 ELSE 0 END) AS throttled_calls,
               SUM(CASE WHEN a.outcome = 'transient' THEN 1 ELSE 0 END) AS transient_calls
        FROM jobs j
        JOIN batches b ON b.id = j.batch_id
        LEFT JOIN attempts a ON a.job_id = j.id
        GROUP BY j.batch_id, b.label, j.provider
    """,
}


def upgrade() -> None:
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {select}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
