"""attempts written before the call: in flight, lost, billing unknown

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

A vendor call's row is now written before the request is sent (outcome ``in_flight``)
and completed with the answer; a call whose worker stopped first is ``lost``. Neither
knows whether the vendor billed it, so ``attempts.billed`` may be NULL (unknown).
``v_batch_calls`` counts those calls as ``lost_calls`` (they are among ``calls``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH_CALLS = """
        SELECT j.batch_id, b.label, j.provider,
               COUNT(DISTINCT j.id) AS jobs,
               COUNT(a.id) AS calls,
               COALESCE(SUM(CASE WHEN a.billed THEN 1 ELSE 0 END), 0) AS billed_calls,
               COUNT(DISTINCT CASE WHEN j.reused_from_job_id IS NOT NULL THEN j.id END)
                   AS reused,
               COALESCE(SUM(CASE WHEN a.outcome = 'rate_limited' THEN 1 ELSE 0 END), 0)
                   AS throttled_calls,
               COALESCE(SUM(CASE WHEN a.outcome = 'transient' THEN 1 ELSE 0 END), 0)
                   AS transient_calls,
               COALESCE(SUM(CASE WHEN a.outcome IN ('in_flight', 'lost') THEN 1 ELSE 0 END), 0)
                   AS lost_calls
        FROM jobs j
        JOIN batches b ON b.id = j.batch_id
        LEFT JOIN attempts a ON a.job_id = j.id
        GROUP BY j.batch_id, b.label, j.provider
    """


def _views_of(revision_id: str) -> dict[str, str]:
    """The views another revision defines."""
    script = op.get_context().script
    assert script is not None
    views: dict[str, str] = script.get_revision(revision_id).module.VIEWS
    return views


def _views() -> dict[str, str]:
    """Every view at this revision: 0003's, with ``v_batch_calls`` replaced. (A later
    revision that replaces views should read them from here, not from a ``VIEWS``.)"""
    return {**_views_of("0003"), "v_batch_calls": _BATCH_CALLS}


def _drop(views: dict[str, str]) -> None:
    for name in reversed(views):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def _create(views: dict[str, str]) -> None:
    for name, select in views.items():
        op.execute(f"CREATE VIEW {name} AS {select}")


def upgrade() -> None:
    # SQLite's batch mode copies the table: no view may name it meanwhile.
    _drop(_views_of("0003"))
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.alter_column("billed", existing_type=sa.Boolean(), nullable=True)
    _create(_views())


def downgrade() -> None:
    _drop(_views())
    # 0005 knows only finished calls: one whose answer never came is a transient failure,
    # not billed as far as it can tell.
    op.execute(
        "UPDATE attempts SET outcome = 'transient', billed = false "
        "WHERE outcome IN ('in_flight', 'lost')"
    )
    op.execute("UPDATE attempts SET billed = false WHERE billed IS NULL")
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.alter_column("billed", existing_type=sa.Boolean(), nullable=False)
    _create(_views_of("0003"))
