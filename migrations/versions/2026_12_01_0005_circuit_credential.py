"""circuits remember which credential the vendor refused

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``provider_states.credential_id``: the non-secret id of the credential whose use opened
the circuit. Once a provider is configured with another credential, the dispatcher closes
the circuit on its next pass instead of waiting for the cooldown or `vrec resume`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provider_states") as batch_op:
        batch_op.add_column(sa.Column("credential_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_states") as batch_op:
        batch_op.drop_column("credential_id")
