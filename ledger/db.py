"""The service's SQL schema (SQLAlchemy Core) and engine set-up: SQLite by default, PostgreSQL
at scale.

Invariants:
- The index tables (``blocks``, ``credit_records``, ``role_events``, ``index_cursor``) are
  rebuildable from the chain; the ``outbox`` is not, so it is written with durable commits
  (SQLite WAL with ``synchronous=FULL``; PostgreSQL's default).
- Every indexed log row is unique on (block_hash, tx_hash, log_index): re-reading a block is a
  no-op.
- The schema is created and upgraded only through Alembic migrations (``ledger/migrations``);
  :func:`migrate` runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)

__all__ = [
    "blocks",
    "credit_records",
    "index_cursor",
    "make_engine",
    "metadata",
    "migrate",
    "objections",
    "outbox",
    "role_events",
    "sqlite_url",
]

metadata = MetaData()

HASH = String(66)  # 0x + 64 hex, lower case
ADDR = String(42)  # EIP-55 checksum

blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", HASH, nullable=False),
    Column("parent_hash", HASH, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

index_cursor = Table(
    "index_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", HASH, nullable=False),
)

credit_records = Table(
    "credit_records",
    metadata,
    Column("id", HASH, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("kind", Integer, nullable=False),
    Column("agency", ADDR, nullable=False),
    Column("subject_kind", Integer, nullable=False),
    Column("subject", HASH, nullable=False),
    Column("category", Integer, nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("effective_from", BigInteger, nullable=False),
    Column("effective_until", BigInteger, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("amount", String(40), nullable=False),
    Column("evidence_hash", HASH, nullable=False),
    Column("reason_hash", HASH, nullable=False),
    Column("ref", HASH, nullable=False),
    Column("nonce", String(80), nullable=False),
    Column("signature", String(130), nullable=False),
    Column("head_after", HASH, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", HASH, nullable=False),
    Column("block_timestamp", BigInteger, nullable=False),
    Column("tx_hash", HASH, nullable=False),
    Column("log_index", Integer, nullable=False),
    UniqueConstraint("block_hash", "tx_hash", "log_index", name="uq_credit_records_log"),
    Index("ix_credit_records_subject", "subject", "seq"),
    Index("ix_credit_records_agency", "agency", "seq"),
    Index("ix_credit_records_category", "category", "seq"),
    Index("ix_credit_records_block", "block_number"),
    Index("ix_credit_records_ref", "ref"),
    Index("ix_credit_records_seq", "seq"),
)

role_events = Table(
    "role_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", String(32), nullable=False),  # granted | revoked | scope+ | scope-
    Column("role", String(32), nullable=False),
    Column("account", ADDR, nullable=False),
    Column("categories", Text, nullable=False),  # comma-separated ids for scope events
    Column("sender", ADDR, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", HASH, nullable=False),
    Column("tx_hash", HASH, nullable=False),
    Column("log_index", Integer, nullable=False),
    UniqueConstraint("block_hash", "tx_hash", "log_index", name="uq_role_events_log"),
    Index("ix_role_events_block", "block_number"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", HASH, primary_key=True),  # the record id (EIP-712 digest)
    Column("agency", ADDR, nullable=False),
    Column("nonce", String(80), nullable=False),
    Column("payload", Text, nullable=False),  # signed record JSON, exactly as accepted
    Column("reason_text", Text, nullable=True),  # off-chain text whose hash is on chain
    # pending -> submitted -> onchain -> final ; or rejected
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("tx_hash", HASH, nullable=True),
    Column("block_number", BigInteger, nullable=True),
    Column("reject_reason", String(64), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("accepted_at", BigInteger, nullable=False),  # unix ms
    Column("updated_at", BigInteger, nullable=False),
    # off-chain community grid (网格) code the writing agency gave (ledger/data/grids.json);
    # never on chain, not part of the record id or signature (migration 0005)
    Column("grid", String(32), nullable=True),
    UniqueConstraint("agency", "nonce", name="uq_outbox_agency_nonce"),
    Index("ix_outbox_status", "status", "accepted_at"),
)

objections = Table(
    "objections",
    metadata,
    Column("id", String(34), primary_key=True),  # 0x + 32 hex
    Column("record_id", HASH, nullable=False),  # the disputed record (version) id
    Column("root_id", HASH, nullable=False),  # its logical record (the original RECORD)
    # root_id while the objection is open (filed | disputed), NULL once resolved: the unique
    # constraint allows one open objection per logical record (NULLs never collide)
    Column("open_key", HASH, nullable=True),
    Column("subject", HASH, nullable=False),
    Column("subject_kind", Integer, nullable=False),
    Column("agency", ADDR, nullable=False),  # the agency that wrote the record
    Column("category", Integer, nullable=False),
    Column("reason", Text, nullable=False),  # the subject's text; its SHA-256 goes on chain
    # filed -> disputed (OBJECTION record accepted) -> upheld | rejected (RESOLUTION accepted)
    Column("status", String(16), nullable=False),
    Column("objection_record", HASH, nullable=True),
    Column("resolution_record", HASH, nullable=True),
    Column("resolution_note", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),  # unix s
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("open_key", name="uq_objections_open"),
    Index("ix_objections_agency", "agency", "status"),
    Index("ix_objections_subject", "subject"),
    Index("ix_objections_record", "record_id"),
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with durable, concurrent-friendly settings for the dialect."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")  # independent branches (rules, audit) may each add one
