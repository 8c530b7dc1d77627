"""The first schema: users, items, feedback, API keys, model versions.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("users", sa.Column("id", sa.String(255), primary_key=True),
                    sa.Column("attributes", sa.JSON, nullable=False), sa.Column("created_at", sa.Float, nullable=False))
    op.create_table("items", sa.Column("id", sa.String(255), primary_key=True), sa.Column("title", sa.Text),
                    sa.Column("text", sa.Text), sa.Column("categories", sa.JSON, nullable=False),
                    sa.Column("attributes", sa.JSON, nullable=False), sa.Column("created_at", sa.Float, nullable=False))
    op.create_table("feedback", sa.Column("event_id", sa.String(255), primary_key=True),
                    sa.Column("user_id", sa.String(255), nullable=False), sa.Column("item_id", sa.String(255), nullable=False),
                    sa.Column("type", sa.String(64), nullable=False), sa.Column("value", sa.Float, nullable=False),
                    sa.Column("timestamp", sa.Float, nullable=False))
    op.create_index("ix_feedback_user_id", "feedback", ["user_id"])
    op.create_index("ix_feedback_item_id", "feedback", ["item_id"])
    op.create_table("api_keys", sa.Column("id", sa.String(32), primary_key=True), sa.Column("name", sa.String(255), nullable=False),
                    sa.Column("hash", sa.String(64), nullable=False), sa.Column("scopes", sa.String(64), nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False), sa.Column("revoked_at", sa.Float))
    op.create_table("model_versions", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("model", sa.String(64), nullable=False), sa.Column("params", sa.JSON, nullable=False),
                    sa.Column("status", sa.String(16), nullable=False), sa.Column("progress", sa.Float, nullable=False),
                    sa.Column("metrics", sa.JSON), sa.Column("error", sa.Text), sa.Column("path", sa.Text),
                    sa.Column("events", sa.Integer), sa.Column("active", sa.Boolean, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False), sa.Column("finished_at", sa.Float))


def downgrade() -> None:
    for table in ("model_versions", "api_keys", "feedback", "items", "users"):
        op.drop_table(table)
