"""Conversations kept between requests.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("conversations", sa.Column("id", sa.String(32), primary_key=True),
                    sa.Column("user_id", sa.String(255), nullable=True), sa.Column("state", sa.JSON, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False), sa.Column("updated_at", sa.Float, nullable=False))


def downgrade() -> None:
    op.drop_table("conversations")
