"""Service replicas on one PostgreSQL (:mod:`penchant.serve.fleet`): model versions' files stored in
the database as chunks, each version's manifest (size and SHA-256 per file), the fleet's change
counters (one row: versions and items, keys), and per-user event counters (65,536 slots by CRC-32
of the user id) that the answer cache of every replica reads. SQLite stores carry the tables too
and leave them empty (one process's data folder is the truth there).

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("files", sa.JSON, nullable=True))
    op.create_table("version_chunks",
                    sa.Column("version", sa.Integer, primary_key=True),
                    sa.Column("path", sa.String(255), primary_key=True),
                    sa.Column("chunk", sa.Integer, primary_key=True),
                    sa.Column("data", sa.LargeBinary, nullable=False))
    fleet = op.create_table("fleet_state",
                            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                            sa.Column("generation", sa.BigInteger, nullable=False),
                            sa.Column("keys", sa.BigInteger, nullable=False))
    op.bulk_insert(fleet, [{"id": 1, "generation": 0, "keys": 0}])
    op.create_table("user_event_counts",
                    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("events", sa.BigInteger, nullable=False))


def downgrade() -> None:
    op.drop_table("user_event_counts")
    op.drop_table("fleet_state")
    op.drop_table("version_chunks")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("files")
