"""rules: rule sets, epochs, memberships, list status, repairs, webhooks

Revision ID: 0003_rules
Revises: 0001
Independent branch: ``ledger.db.migrate`` upgrades every head. Tables: ``ledger/rules_db.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_rules"
down_revision = "0001"
branch_labels = ("rules",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_sets",
        sa.Column("content_hash", sa.String(length=66), nullable=False),
        sa.Column("rule_set_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("version_number", sa.String(length=20), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("content_hash"),
        sa.UniqueConstraint("rule_set_id", "version", name="uq_rule_sets_version"),
    )
    op.create_table(
        "rule_epochs",
        sa.Column("epoch", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("rule_set_hash", sa.String(length=66), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=False),
        sa.Column("lists_root", sa.String(length=66), nullable=False),
        sa.Column("member_count", sa.BigInteger(), nullable=False),
        sa.Column("list_roots", sa.Text(), nullable=False),
        sa.Column("evaluation_hash", sa.String(length=66), nullable=False),
        sa.Column("record_count", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("epoch"),
    )
    op.create_table(
        "rule_memberships",
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("list_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=66), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("subject_kind", sa.Integer(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.UniqueConstraint("epoch", "list_id", "subject", "rule_id", name="uq_rule_memberships"),
    )
    op.create_index("ix_rule_memberships_subject", "rule_memberships", ["subject", "epoch"])
    op.create_table(
        "rule_list_status",
        sa.Column("list_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=66), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("rule_set_hash", sa.String(length=66), nullable=False),
        sa.Column("subject_kind", sa.Integer(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("since_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("list_id", "subject", "rule_id", name="uq_rule_list_status"),
    )
    op.create_index("ix_rule_list_status_subject", "rule_list_status", ["subject"])
    op.create_table(
        "rule_list_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("list_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=66), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("rule_set_hash", sa.String(length=66), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rule_list_changes_subject", "rule_list_changes", ["subject", "id"])
    op.create_table(
        "repair_applications",
        sa.Column("id", sa.String(length=34), nullable=False),
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("subject", sa.String(length=66), nullable=False),
        sa.Column("subject_kind", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(length=42), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("repair_id", sa.String(length=66), nullable=True),
        sa.Column("effective_from", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_repair_applications_record", "repair_applications", ["record_id"])
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(length=34), nullable=False),
        sa.Column("agency", sa.String(length=42), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sectors", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=34), nullable=False),
        sa.Column("event_id", sa.String(length=80), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscriptions")
    op.drop_index("ix_repair_applications_record", table_name="repair_applications")
    op.drop_table("repair_applications")
    op.drop_index("ix_rule_list_changes_subject", table_name="rule_list_changes")
    op.drop_table("rule_list_changes")
    op.drop_index("ix_rule_list_status_subject", table_name="rule_list_status")
    op.drop_table("rule_list_status")
    op.drop_index("ix_rule_memberships_subject", table_name="rule_memberships")
    op.drop_table("rule_memberships")
    op.drop_table("rule_epochs")
    op.drop_table("rule_sets")
