"""The index follower on real chains and real databases (SQLite, and PostgreSQL when
ZHIXIN_TEST_POSTGRES_URL is set): exactly-once rows, cursor, and rollback when the chain changes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import Engine, func, select, update

from ledger.chain import Chain, Sender, new_account
from ledger.credit import CreditLedgerClient
from ledger.db import credit_records, index_cursor, migrate, role_events
from ledger.deploy import Deployment, decoder
from ledger.index import Indexer
from ledger.records import CreditRecord, RecordKind, replay_head, sign_record
from ledger.roles import Role, RolesClient
from tests.dbs import DB_PARAMS, fresh_database


@pytest.fixture(params=DB_PARAMS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path / "index.db") as eng:
        migrate(eng)
        yield eng


class Writer:
    def __init__(self, chain: Chain, governor: Sender, deployment: Deployment) -> None:
        self.chain = chain
        self.roles = RolesClient(chain, deployment.address("Roles"))
        self.ledger = CreditLedgerClient(chain, deployment.address("CreditLedger"))
        self.relayer = Sender(chain, new_account(), decoder())
        self.agency: LocalAccount = new_account()
        self.roles.grant(governor, Role.AGENCY, self.agency.address)
        self.roles.grant_categories(governor, self.agency.address, [301])
        self.nonce = 0

    def batch(self, n: int) -> list[bytes]:
        now = int(time.time())
        signed = []
        for _ in range(n):
            self.nonce += 1
            rec = CreditRecord(
                kind=RecordKind.RECORD,
                subject_kind=2,
                subject=keccak(b"s%d" % self.nonce),
                category=301,
                occurred_at=now - 10,
                effective_from=now - 10,
                deadline=now + 3600,
                nonce=self.nonce,
            )
            signed.append(sign_record(rec, bytes(self.agency.key), self.ledger.domain()))
        res = self.ledger.submit_batch(self.relayer, signed)
        assert not res.rejected
        return res.accepted_ids


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar_one())


def test_index_follows_exactly_once(
    chain: Chain, governor: Sender, deployment: Deployment, engine: Engine
) -> None:
    w = Writer(chain, governor, deployment)
    ids = w.batch(5) + w.batch(3)
    seen: list[str] = []
    idx = Indexer(
        chain, engine, deployment, page=3, on_records=lambda rs: seen.extend(r.id for r in rs)
    )
    res = idx.sync()
    assert res.records == 8 and res.rolled_back_to is None
    assert seen == ["0x" + i.hex() for i in ids]
    assert count(engine, credit_records) == 8
    # 2 grants (governor at deploy, agency) + 1 scope event
    assert count(engine, role_events) == 3
    # the running hash recomputed from indexed rows equals the contract's head
    with engine.connect() as c:
        rows = c.execute(
            select(credit_records.c.id, credit_records.c.head_after).order_by(credit_records.c.seq)
        ).all()
    assert replay_head(bytes.fromhex(r[0][2:]) for r in rows) == w.ledger.state().head
    assert rows[-1][1] == "0x" + w.ledger.state().head.hex()
    # a second pass, and a pass from a rewound cursor, add nothing
    assert idx.sync().records == 0
    with engine.begin() as c:
        c.execute(update(index_cursor).values(block_number=deployment.deploy_block))
    idx2 = Indexer(chain, engine, deployment)
    with engine.begin() as c:  # make the rewound cursor's hash match the chain
        b = chain.w3.eth.get_block(deployment.deploy_block)
        c.execute(update(index_cursor).values(block_hash="0x" + bytes(b["hash"]).hex()))
    idx2.sync()
    assert count(engine, credit_records) == 8


@pytest.mark.anvil
def test_rollback_when_chain_changes(anvil_chain: Chain, engine: Engine, tmp_path: Path) -> None:
    """evm_snapshot/evm_revert (test-only RPC) stand in for a re-org or a node losing blocks."""
    from ledger.deploy import deploy_contracts

    chain = anvil_chain
    governor = Sender(chain, new_account(), decoder())
    dep = deploy_contracts(chain, governor)
    w = Writer(chain, governor, dep)
    kept = w.batch(2)
    snap = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    lost = w.batch(3)
    idx = Indexer(chain, engine, dep)
    idx.sync()
    assert count(engine, credit_records) == 5
    chain.w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
    w.relayer._nonce = None
    time.sleep(0.5)  # interval mining builds new blocks on the old parent
    replaced = w.batch(1)
    deadline = time.monotonic() + 10
    while chain.head() <= idx.cursor()[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    res = idx.sync()
    assert res.rolled_back_to is not None
    with engine.connect() as c:
        ids = [r[0] for r in c.execute(select(credit_records.c.id).order_by(credit_records.c.seq))]
    assert ids == ["0x" + i.hex() for i in kept + replaced]
    assert not set(ids) & {"0x" + i.hex() for i in lost}
    assert replay_head(bytes.fromhex(i[2:]) for i in ids) == w.ledger.state().head
