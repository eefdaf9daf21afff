"""Databases for tests that run on SQLite and, when ``ZHIXIN_TEST_POSTGRES_URL`` is set, on a
fresh PostgreSQL database of their own (created and dropped around the test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from ledger.db import make_engine

__all__ = ["DB_PARAMS", "PG_URL", "fresh_database"]

PG_URL = os.environ.get("ZHIXIN_TEST_POSTGRES_URL")

# params for a fixture that yields one engine per database kind
DB_PARAMS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="ZHIXIN_TEST_POSTGRES_URL not set"),
        ],
    ),
]


@contextmanager
def fresh_database(kind: str, sqlite_file: Path) -> Iterator[Engine]:
    """An empty database (no migration run): the SQLite file, or a new PostgreSQL database."""
    if kind == "sqlite":
        eng = make_engine(f"sqlite:///{sqlite_file}")
        try:
            yield eng
        finally:
            eng.dispose()
        return
    assert PG_URL is not None
    name = "zx_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    eng = make_engine(PG_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()
