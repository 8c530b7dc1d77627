"""What the service showed: one row per item of each served list, with the version that chose it
and the probability it had of being shown there (the propensity off-policy evaluation needs).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("impressions",
                    sa.Column("event_id", sa.String(255), primary_key=True),
                    sa.Column("list_id", sa.String(64), nullable=False),
                    sa.Column("user_id", sa.String(255), nullable=False),
                    sa.Column("item_id", sa.String(255), nullable=False),
                    sa.Column("position", sa.Integer, nullable=False),
                    sa.Column("propensity", sa.Float, nullable=False),
                    sa.Column("slate_propensity", sa.Float, nullable=False),
                    sa.Column("version", sa.Integer, nullable=True),
                    sa.Column("policy", sa.String(64), nullable=False),
                    sa.Column("timestamp", sa.Float, nullable=False))
    op.create_index("ix_impressions_user_id", "impressions", ["user_id"])


def downgrade() -> None:
    op.drop_table("impressions")
