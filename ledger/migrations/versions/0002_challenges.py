"""identity: verifier challenges, issuer status lists, issued credential indexes

Revision ID: 0002_challenges
Revises: 0001
Create Date: 2026-11-26 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_challenges"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "challenges",
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("challenge"),
    )
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.create_index("ix_challenges_expires", ["expires_at"], unique=False)
    op.create_table(
        "issuer_status_lists",
        sa.Column("registry", sa.String(length=42), nullable=False),
        sa.Column("issuer", sa.String(length=42), nullable=False),
        sa.Column("revocation_list_id", sa.BigInteger(), nullable=False),
        sa.Column("suspension_list_id", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("registry", "issuer"),
    )
    op.create_table(
        "issued_credentials",
        sa.Column("credential_id", sa.String(length=100), nullable=False),
        sa.Column("registry", sa.String(length=42), nullable=False),
        sa.Column("issuer", sa.String(length=42), nullable=False),
        sa.Column("revocation_list_id", sa.BigInteger(), nullable=False),
        sa.Column("suspension_list_id", sa.BigInteger(), nullable=False),
        sa.Column("status_index", sa.Integer(), nullable=False),
        sa.Column("credential_hash", sa.String(length=66), nullable=True),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("credential_id"),
        sa.UniqueConstraint(
            "registry", "revocation_list_id", "status_index", name="uq_issued_credentials_index"
        ),
    )
    with op.batch_alter_table("issued_credentials", schema=None) as batch_op:
        batch_op.create_index("ix_issued_credentials_hash", ["credential_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issued_credentials", schema=None) as batch_op:
        batch_op.drop_index("ix_issued_credentials_hash")
    op.drop_table("issued_credentials")
    op.drop_table("issuer_status_lists")
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_challenges_expires")
    op.drop_table("challenges")
