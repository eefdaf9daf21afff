"""objections: subjects' objection applications; outbox.grid (off-chain community grid)

Revision ID: 0005_objections
Revises: 0001
Independent branch: ``ledger.db.migrate`` upgrades every head. Tables: ``ledger/db.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_objections"
down_revision = "0001"
branch_labels = ("objections",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grid", sa.String(length=32), nullable=True))
    op.create_table(
        "objections",
        sa.Column("id", sa.String(length=34), nullable=False),
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("root_id", sa.String(length=66), nullable=False),
        sa.Column("open_key", sa.String(length=66), nullable=True),
        sa.Column("subject", sa.String(length=66), nullable=False),
        sa.Column("subject_kind", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(length=42), nullable=False),
        sa.Column("category", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("objection_record", sa.String(length=66), nullable=True),
        sa.Column("resolution_record", sa.String(length=66), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key", name="uq_objections_open"),
    )
    with op.batch_alter_table("objections", schema=None) as batch_op:
        batch_op.create_index("ix_objections_agency", ["agency", "status"], unique=False)
        batch_op.create_index("ix_objections_subject", ["subject"], unique=False)
        batch_op.create_index("ix_objections_record", ["record_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("objections", schema=None) as batch_op:
        batch_op.drop_index("ix_objections_record")
        batch_op.drop_index("ix_objections_subject")
        batch_op.drop_index("ix_objections_agency")
    op.drop_table("objections")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("grid")
