"""Tables of joint reward and punishment: published rule sets, epochs, memberships, incremental
list status and changes, repair applications, webhook subscriptions and deliveries.

Declared on :data:`ledger.db.metadata` and created by migration ``0003_rules`` (an independent
Alembic branch off ``0001``).

Invariants:
- ``rule_sets``, ``rule_epochs`` and ``rule_memberships`` mirror what is anchored on chain
  (a rule set's canonical hash, an epoch's lists root) and can be recomputed from the chain and
  the published documents; ``rule_memberships`` carries each membership's explanation.
- ``rule_list_status`` is the incremental view (one row per list, subject, rule);
  ``rule_list_changes`` is append-only.
- ``webhook_deliveries`` is not rebuildable: a delivery row is written in the same transaction
  as the list change that caused it and is only ever marked delivered, never deleted.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .db import metadata

__all__ = [
    "repair_applications",
    "rule_epochs",
    "rule_list_changes",
    "rule_list_status",
    "rule_memberships",
    "rule_sets",
    "webhook_deliveries",
    "webhook_subscriptions",
]

HASH = String(66)
ADDR = String(42)

rule_sets = Table(
    "rule_sets",
    metadata,
    Column("content_hash", HASH, primary_key=True),  # 0x SHA-256 of the canonical JSON
    Column("rule_set_id", String(64), nullable=False),
    Column("version", String(200), nullable=False),
    Column("version_number", String(20), nullable=False),  # the on-chain uint64, decimal
    Column("document", Text, nullable=False),  # RFC 8785 canonical JSON, as hashed
    Column("tx_hash", HASH, nullable=True),  # None: published on chain by someone else
    Column("block_number", BigInteger, nullable=False),
    Column("registered_at", BigInteger, nullable=False),  # unix s
    UniqueConstraint("rule_set_id", "version", name="uq_rule_sets_version"),
)

rule_epochs = Table(
    "rule_epochs",
    metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("rule_set_hash", HASH, nullable=False),
    Column("as_of", BigInteger, nullable=False),
    Column("lists_root", HASH, nullable=False),
    Column("member_count", BigInteger, nullable=False),
    Column("list_roots", Text, nullable=False),  # JSON {list id: {root, size}}
    Column("evaluation_hash", HASH, nullable=False),  # SHA-256 of Evaluation.canonical_bytes
    Column("record_count", BigInteger, nullable=False),
    Column("tx_hash", HASH, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

rule_memberships = Table(
    "rule_memberships",
    metadata,
    Column("epoch", BigInteger, nullable=False),
    Column("list_id", String(64), nullable=False),
    Column("subject", HASH, nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("subject_kind", Integer, nullable=False),
    Column("explanation", Text, nullable=False),  # Membership.to_json()
    UniqueConstraint("epoch", "list_id", "subject", "rule_id", name="uq_rule_memberships"),
    Index("ix_rule_memberships_subject", "subject", "epoch"),
)

rule_list_status = Table(
    "rule_list_status",
    metadata,
    Column("list_id", String(64), nullable=False),
    Column("subject", HASH, nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("rule_set_hash", HASH, nullable=False),
    Column("subject_kind", Integer, nullable=False),
    Column("explanation", Text, nullable=False),
    Column("since_seq", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("list_id", "subject", "rule_id", name="uq_rule_list_status"),
    Index("ix_rule_list_status_subject", "subject"),
)

rule_list_changes = Table(
    "rule_list_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("change", String(8), nullable=False),  # entered | left
    Column("list_id", String(64), nullable=False),
    Column("subject", HASH, nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("rule_set_hash", HASH, nullable=False),
    Column("explanation", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),  # ledger seq that caused it (-1: time passing)
    Column("created_at", BigInteger, nullable=False),
    Index("ix_rule_list_changes_subject", "subject", "id"),
)

repair_applications = Table(
    "repair_applications",
    metadata,
    Column("id", String(34), primary_key=True),  # 0x + 32 hex
    Column("record_id", HASH, nullable=False),
    Column("subject", HASH, nullable=False),
    Column("subject_kind", Integer, nullable=False),
    Column("agency", ADDR, nullable=False),  # the agency that wrote the record
    Column("statement", Text, nullable=False),  # the applicant's account of the correction
    Column("status", String(16), nullable=False),  # pending | approved
    Column("repair_id", HASH, nullable=True),  # the REPAIR record once submitted
    Column("effective_from", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_repair_applications_record", "record_id"),
)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(34), primary_key=True),
    Column("agency", ADDR, nullable=False),
    Column("url", Text, nullable=False),
    Column("sectors", Text, nullable=False),  # comma-separated measure agency slugs
    Column("secret", Text, nullable=False),  # shared HMAC key (hex)
    Column("active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", String(34), nullable=False),
    Column("event_id", String(80), nullable=False),
    Column("body", Text, nullable=False),  # exactly the bytes signed and sent, every attempt
    Column("status", String(16), nullable=False),  # pending | delivered
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),  # unix ms
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)
