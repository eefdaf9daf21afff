"""initial index and outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-26 10:51:30.412664
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocks",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("parent_hash", sa.String(length=66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "credit_records",
        sa.Column("id", sa.String(length=66), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(length=42), nullable=False),
        sa.Column("subject_kind", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=66), nullable=False),
        sa.Column("category", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("effective_from", sa.BigInteger(), nullable=False),
        sa.Column("effective_until", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("evidence_hash", sa.String(length=66), nullable=False),
        sa.Column("reason_hash", sa.String(length=66), nullable=False),
        sa.Column("ref", sa.String(length=66), nullable=False),
        sa.Column("nonce", sa.String(length=80), nullable=False),
        sa.Column("signature", sa.String(length=130), nullable=False),
        sa.Column("head_after", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("block_hash", "tx_hash", "log_index", name="uq_credit_records_log"),
    )
    with op.batch_alter_table("credit_records", schema=None) as batch_op:
        batch_op.create_index("ix_credit_records_agency", ["agency", "seq"], unique=False)
        batch_op.create_index("ix_credit_records_block", ["block_number"], unique=False)
        batch_op.create_index("ix_credit_records_category", ["category", "seq"], unique=False)
        batch_op.create_index("ix_credit_records_ref", ["ref"], unique=False)
        batch_op.create_index("ix_credit_records_seq", ["seq"], unique=False)
        batch_op.create_index("ix_credit_records_subject", ["subject", "seq"], unique=False)

    op.create_table(
        "index_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=66), nullable=False),
        sa.Column("agency", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=80), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("reject_reason", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("accepted_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agency", "nonce", name="uq_outbox_agency_nonce"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_status", ["status", "accepted_at"], unique=False)

    op.create_table(
        "role_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("block_hash", "tx_hash", "log_index", name="uq_role_events_log"),
    )
    with op.batch_alter_table("role_events", schema=None) as batch_op:
        batch_op.create_index("ix_role_events_block", ["block_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("role_events", schema=None) as batch_op:
        batch_op.drop_index("ix_role_events_block")

    op.drop_table("role_events")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status")

    op.drop_table("outbox")
    op.drop_table("index_cursor")
    with op.batch_alter_table("credit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_records_subject")
        batch_op.drop_index("ix_credit_records_seq")
        batch_op.drop_index("ix_credit_records_ref")
        batch_op.drop_index("ix_credit_records_category")
        batch_op.drop_index("ix_credit_records_block")
        batch_op.drop_index("ix_credit_records_agency")

    op.drop_table("credit_records")
    op.drop_table("blocks")
