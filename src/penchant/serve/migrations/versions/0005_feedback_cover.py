"""A covering index for a user's events (user, item, type): the read every recommendation makes is
answered from the index alone. It replaces the index on the user alone, its prefix.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_feedback_user_item_type", "feedback", ["user_id", "item_id", "type"])
    op.drop_index("ix_feedback_user_id", table_name="feedback")


def downgrade() -> None:
    op.create_index("ix_feedback_user_id", "feedback", ["user_id"])
    op.drop_index("ix_feedback_user_item_type", table_name="feedback")
