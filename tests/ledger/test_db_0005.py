"""Migration 0005 (objection applications, outbox.grid) on SQLite and, when
ZHIXIN_TEST_POSTGRES_URL is set, PostgreSQL: a database at the previous heads upgrades with its
outbox rows kept, the one-open-objection constraint holds, and the branch downgrades cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from ledger.db import migrate, objections, outbox
from tests.dbs import DB_PARAMS, fresh_database

OLD_HEADS = ("0002_challenges", "0003_rules", "0004_auth")


@pytest.fixture(params=DB_PARAMS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database (no migration run yet)."""
    with fresh_database(request.param, tmp_path / "m.db") as eng:
        yield eng


def alembic(engine: Engine, fn: Any, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parents[2] / "ledger" / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        fn(cfg, target)


def outbox_row(i: int) -> dict[str, Any]:
    return {
        "id": "0x" + f"{i:064x}",
        "agency": "0x" + "11" * 20,
        "nonce": str(i),
        "payload": "{}",
        "reason_text": None,
        "status": "final",
        "attempts": 1,
        "accepted_at": 1,
        "updated_at": 1,
    }


def objection_row(oid: str, open_key: str | None) -> dict[str, Any]:
    return {
        "id": oid,
        "record_id": "0x" + "ab" * 32,
        "root_id": "0x" + "ab" * 32,
        "open_key": open_key,
        "subject": "0x" + "cd" * 32,
        "subject_kind": 1,
        "agency": "0x" + "11" * 20,
        "category": 301,
        "reason": "不是我 not me",
        "status": "filed" if open_key else "rejected",
        "created_at": 1,
        "updated_at": 1,
    }


def test_upgrade_from_previous_heads_keeps_rows_and_adds_schema(engine: Engine) -> None:
    for head in OLD_HEADS:
        alembic(engine, command.upgrade, head)
    insp = inspect(engine)
    assert "objections" not in insp.get_table_names()
    assert "grid" not in {c["name"] for c in insp.get_columns("outbox")}
    with engine.begin() as conn:  # an existing row, written before the migration
        conn.execute(
            text(
                "INSERT INTO outbox (id, agency, nonce, payload, status, attempts, accepted_at, "
                "updated_at) VALUES (:id, :agency, :nonce, :payload, :status, :attempts, "
                ":accepted_at, :updated_at)"
            ),
            {k: v for k, v in outbox_row(1).items() if k != "reason_text"},
        )
    migrate(engine)  # every head, 0005 included
    insp = inspect(engine)
    assert "grid" in {c["name"] for c in insp.get_columns("outbox")}
    cols = {c["name"] for c in insp.get_columns("objections")}
    assert {"record_id", "root_id", "open_key", "status", "objection_record"} <= cols
    with engine.begin() as conn:
        assert conn.execute(select(outbox.c.id, outbox.c.grid)).all() == [
            (outbox_row(1)["id"], None)
        ]
        conn.execute(insert(outbox).values(**outbox_row(2), grid="CC-ZM-01"))
        assert conn.execute(select(outbox.c.grid).where(outbox.c.nonce == "2")).scalar() == (
            "CC-ZM-01"
        )
    migrate(engine)  # idempotent


def test_one_open_objection_per_record(engine: Engine) -> None:
    migrate(engine)
    root = "0x" + "ab" * 32
    with engine.begin() as conn:
        conn.execute(insert(objections).values(**objection_row("0x01", root)))
        # closed ones (open_key NULL) never collide, with each other or the open one
        conn.execute(insert(objections).values(**objection_row("0x02", None)))
        conn.execute(insert(objections).values(**objection_row("0x03", None)))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(objections).values(**objection_row("0x04", root)))
    with engine.connect() as conn:
        assert conn.execute(select(objections.c.id).order_by(objections.c.id)).scalars().all() == [
            "0x01",
            "0x02",
            "0x03",
        ]


def test_branch_downgrades_and_upgrades_again(engine: Engine) -> None:
    migrate(engine)
    alembic(engine, command.downgrade, "objections@-1")
    insp = inspect(engine)
    assert "objections" not in insp.get_table_names()
    assert "grid" not in {c["name"] for c in insp.get_columns("outbox")}
    assert "rule_epochs" in insp.get_table_names()  # other branches untouched
    migrate(engine)
    assert "objections" in inspect(engine).get_table_names()


def record_row(i: int, *, kind: int, category: int, subject: int, ts: int) -> dict[str, Any]:
    h = "0x" + f"{i:064x}"
    return {
        "id": h, "seq": i, "kind": kind, "agency": "0x" + "11" * 20, "subject_kind": 1,
        "subject": "0x" + f"{subject:064x}", "category": category, "occurred_at": ts,
        "effective_from": ts, "effective_until": 0, "deadline": ts + 1, "amount": "0",
        "evidence_hash": "0x" + "00" * 32, "reason_hash": "0x" + "00" * 32,
        "ref": "0x" + "00" * 32, "nonce": str(i), "signature": "0x" + "00" * 64,
        "head_after": h, "block_number": i, "block_hash": h, "block_timestamp": ts,
        "tx_hash": h, "log_index": 0,
    }  # fmt: skip


def test_stats_queries_on_both_dialects(engine: Engine) -> None:
    """The thin SQL of ledger.stats (month buckets by CASE, grid join) on SQLite and PG."""
    from ledger.db import credit_records
    from ledger.stats import heatmap_rows, list_sizes, month_windows, records_by_category_rows

    migrate(engine)
    now = 1772298000  # 2026-03-01 01:00 in Foshan
    w = month_windows(now, 2)  # 2026-02, 2026-03
    feb, mar = w[0][1] + 5, w[1][1] + 5
    rows = [
        record_row(1, kind=1, category=301, subject=1, ts=feb),
        record_row(2, kind=1, category=301, subject=1, ts=feb + 9),
        record_row(3, kind=1, category=301, subject=2, ts=mar),
        record_row(4, kind=4, category=301, subject=2, ts=mar),  # lifecycle: not counted
        record_row(5, kind=1, category=103, subject=3, ts=w[0][1] - 1),  # before the window
        record_row(6, kind=1, category=103, subject=3, ts=w[1][2]),  # after it
    ]
    with engine.begin() as conn:
        conn.execute(insert(credit_records), rows)
        for i, grid in ((1, "CC-ZM-01"), (3, "CC-NZ-02"), (4, "CC-NZ-02")):
            conn.execute(insert(outbox).values(**{**outbox_row(i), "grid": grid}))
    got = sorted(records_by_category_rows(engine, w))
    assert got == [
        ("2026-02", 301, "0x" + f"{1:064x}", 2),
        ("2026-03", 301, "0x" + f"{2:064x}", 1),
    ]
    assert sorted(heatmap_rows(engine, w[0][1], w[1][2])) == [
        ("CC-NZ-02", 301, "0x" + f"{2:064x}", 1),
        ("CC-ZM-01", 301, "0x" + f"{1:064x}", 1),
    ]
    assert list_sizes(engine) == []
