"""The sign-in tables of the service database (SQLAlchemy Core, on ``ledger.db.metadata``).

Invariants:

* ``auth_nonces``: one row per SIWE nonce the service handed out; ``used_at`` is set at most
  once, by a single ``UPDATE ... WHERE used_at IS NULL AND expires_at > now`` (single use lives
  in SQL, so two concurrent sign-ins with one nonce cannot both pass).
* ``auth_sessions`` never holds a usable token: only its SHA-256 (``token_hash``). A session is
  live while ``revoked_at`` is NULL and ``expires_at`` is in the future; sign-out sets
  ``revoked_at``.
* No personal identifier is stored: a citizen's session keeps the holder DID and the keyed
  pseudonym (already on chain for anyone with records), never the resident identity number.
* Times are unix milliseconds (as the outbox's and the challenges').
* The schema changes only through Alembic (``ledger/migrations/versions/0004_auth.py``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from ledger.db import metadata

__all__ = ["auth_nonces", "auth_sessions"]

auth_nonces = Table(
    "auth_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Index("ix_auth_nonces_expires", "expires_at"),
)

auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 hex of the bearer token
    Column("kind", String(8), nullable=False),  # siwe | did
    Column("address", String(42), nullable=True),  # EIP-55, SIWE sessions
    Column("did", String(512), nullable=True),  # holder DID, DID sessions
    Column("pseudonym", String(66), nullable=True),  # 0x + 64 hex, from an identity credential
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_auth_sessions_expires", "expires_at"),
)
