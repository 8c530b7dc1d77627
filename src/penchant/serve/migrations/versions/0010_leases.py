"""Training-job leases and shared rate limits for service replicas on one database
(:mod:`penchant.serve.leases`): a version in training carries what is needed to run its job again
(``job``), until when its owner's lease holds (``lease_expires_at``, the database's clock, unix
seconds) and how many claims it has had (``attempts``); ``job_claims`` keeps each claim (which
process, when); ``rate_windows`` counts each API key's requests per minute across replicas.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("job", sa.JSON, nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.create_table("job_claims",
                    sa.Column("version", sa.Integer, primary_key=True),
                    sa.Column("attempt", sa.Integer, primary_key=True),
                    sa.Column("owner", sa.String(255), nullable=False),
                    sa.Column("claimed_at", sa.Float, nullable=False))
    op.create_table("rate_windows",
                    sa.Column("key_id", sa.String(32), primary_key=True),
                    sa.Column("minute", sa.BigInteger, primary_key=True),
                    sa.Column("used", sa.Integer, nullable=False),
                    sa.Column("granted", sa.Integer, nullable=False))


def downgrade() -> None:
    op.drop_table("rate_windows")
    op.drop_table("job_claims")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("attempts")
        batch.drop_column("lease_expires_at")
        batch.drop_column("job")
