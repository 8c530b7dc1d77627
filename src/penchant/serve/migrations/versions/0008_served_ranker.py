"""Which ranker ordered a served list: for a two-stage version (``rerank``), the ranker's name and
the digest of its embedded artefact (``TwoStage.ranker_identity``), beside the version; empty for
any other model.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("served_lists") as batch:
        batch.add_column(sa.Column("ranker", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("served_lists") as batch:
        batch.drop_column("ranker")
