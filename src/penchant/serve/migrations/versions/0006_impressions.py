"""What the service showed: one row per served list, with the items in order, the probability each
had of being shown at its slot (the propensities off-policy evaluation needs), the list's own
probability, and the version and policy that chose it.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("served_lists",
                    sa.Column("list_id", sa.String(64), primary_key=True),
                    sa.Column("user_id", sa.String(255), nullable=False),
                    sa.Column("items", sa.JSON, nullable=False),
                    sa.Column("propensities", sa.JSON, nullable=False),
                    sa.Column("slate_propensity", sa.Float, nullable=False),
                    sa.Column("version", sa.Integer, nullable=True),
                    sa.Column("policy", sa.String(64), nullable=False),
                    sa.Column("timestamp", sa.Float, nullable=False))
    op.create_index("ix_served_lists_user_id", "served_lists", ["user_id"])


def downgrade() -> None:
    op.drop_table("served_lists")
