"""A-versus-B choices, and the kind of each model version (recommender or preference).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("comparisons", sa.Column("event_id", sa.String(255), primary_key=True),
                    sa.Column("user_id", sa.String(255), nullable=True), sa.Column("winner", sa.String(255), nullable=False),
                    sa.Column("loser", sa.String(255), nullable=False), sa.Column("timestamp", sa.Float, nullable=False))
    op.create_index("ix_comparisons_user_id", "comparisons", ["user_id"])
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="recommender"))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("kind")
    op.drop_table("comparisons")
