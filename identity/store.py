"""The identity tables of the service database (SQLAlchemy Core, on ``ledger.db.metadata``).

Invariants:

* ``challenges``: one row per challenge a verifier asked for; ``used_at`` is set at most once,
  by a single ``UPDATE ... WHERE used_at IS NULL`` (the single-use guarantee lives in SQL, not
  in Python), so two concurrent presentations of one challenge cannot both pass.
* ``issuer_status_lists`` and ``issued_credentials`` keep no personal data: list ids, indexes,
  credential ids and hashes only. They are keyed by the CredentialRegistry address, so rows of
  an earlier deployment (a new embedded chain) are never reused.
* ``(registry, revocation_list_id, status_index)`` is unique: a status index is handed out once.
* Times are unix milliseconds (as the outbox's).
* The schema changes only through Alembic (``ledger/migrations/versions/0002_challenges.py``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, UniqueConstraint

from ledger.db import metadata

__all__ = ["challenges", "issued_credentials", "issuer_status_lists"]

_ADDR = String(42)
_HASH = String(66)

challenges = Table(
    "challenges",
    metadata,
    Column("challenge", String(64), primary_key=True),
    Column("domain", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Index("ix_challenges_expires", "expires_at"),
)

issuer_status_lists = Table(
    "issuer_status_lists",
    metadata,
    Column("registry", _ADDR, primary_key=True),
    Column("issuer", _ADDR, primary_key=True),
    Column("revocation_list_id", BigInteger, nullable=False),
    Column("suspension_list_id", BigInteger, nullable=False),
    Column("length", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

issued_credentials = Table(
    "issued_credentials",
    metadata,
    Column("credential_id", String(100), primary_key=True),
    Column("registry", _ADDR, nullable=False),
    Column("issuer", _ADDR, nullable=False),
    Column("revocation_list_id", BigInteger, nullable=False),
    Column("suspension_list_id", BigInteger, nullable=False),
    Column("status_index", Integer, nullable=False),
    Column("credential_hash", _HASH, nullable=True),  # set once anchored
    Column("issued_at", BigInteger, nullable=False),
    UniqueConstraint(
        "registry", "revocation_list_id", "status_index", name="uq_issued_credentials_index"
    ),
    Index("ix_issued_credentials_hash", "credential_hash"),
)
