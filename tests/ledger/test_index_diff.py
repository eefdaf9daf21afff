"""The index against the chain: a clean index has no difference; one changed column of one row,
a deleted row and an invented row are each found and named."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, insert, select, update

from ledger.chain import Chain, Sender, new_account
from ledger.db import credit_records, make_engine, migrate, role_events
from ledger.deploy import decoder, deploy_contracts
from ledger.index import Indexer
from ledger.index_diff import diff_index
from tests.ledger.test_audit import History


def test_index_diff(embedded_chain: Chain, tmp_path: Path) -> None:
    gov = Sender(embedded_chain, new_account(), decoder())
    dep = deploy_contracts(embedded_chain, gov)
    h = History(embedded_chain, gov, dep)
    ids = h.write(h.agency([301]), 4)
    engine = make_engine(f"sqlite:///{tmp_path / 'i.db'}")
    migrate(engine)
    Indexer(embedded_chain, engine, dep).sync()
    clean = diff_index(embedded_chain, dep, engine)
    assert clean.ok and clean.records == 4 and clean.role_events >= 3, clean.findings

    target = "0x" + ids[2].hex()
    with engine.begin() as c:
        c.execute(update(credit_records).where(credit_records.c.id == target).values(amount="9"))
    diff = diff_index(embedded_chain, dep, engine)
    assert [(f.check, f.record_id, f.field, f.expected, f.actual) for f in diff.findings] == [
        ("index.altered", target, "amount", "0", "9")
    ]
    assert diff.findings[0].block and diff.findings[0].tx

    with engine.begin() as c:
        row = dict(
            c.execute(select(credit_records).where(credit_records.c.id == target)).one()._mapping
        )
        c.execute(delete(credit_records).where(credit_records.c.id == target))
        c.execute(insert(credit_records).values({**row, "id": "0x" + "77" * 32, "log_index": 99}))
        c.execute(update(role_events).where(role_events.c.id == 2).values(account=gov.address))
    checks = sorted((f.check, f.record_id or f.field or "") for f in diff_index(
        embedded_chain, dep, engine).findings)  # fmt: skip
    assert checks == [
        ("index.altered", "account"),
        ("index.extra", "0x" + "77" * 32),
        ("index.missing", target),
    ]
    engine.dispose()
