"""The outbox's group commit (concurrent accepts share one durable commit, each under its own
savepoint) and the submitter's receipts and finality on real chains."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, text

from ledger.chain import Chain, Sender, new_account
from ledger.db import make_engine, migrate, outbox
from ledger.deploy import Deployment, decoder
from ledger.index import Indexer
from ledger.outbox import GroupCommit, Outbox, Submitter
from ledger.records import SignedRecord, record_digest
from tests.dbs import DB_PARAMS, fresh_database
from tests.ledger.test_index_signers import Agencies


@pytest.fixture(params=DB_PARAMS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path / "outbox.db") as eng:
        migrate(eng)
        yield eng


def rows(engine: Engine, *where: Any) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(outbox).where(*where)).scalar_one())


def _queued(g: GroupCommit, n: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with g._cond:
            if len(g._queue) >= n:
                return
        time.sleep(0.005)
    raise AssertionError("callers did not queue")


def test_callers_that_arrive_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    g = GroupCommit(engine)
    inside = threading.Event()
    release = threading.Event()
    seen_outside: list[int] = []

    def first(conn: Connection) -> str:
        conn.execute(text("INSERT INTO t VALUES (0)"))
        inside.set()
        release.wait(5)
        return "first"

    def insert(k: int) -> Any:
        def work(conn: Connection) -> int:
            conn.execute(text(f"INSERT INTO t VALUES ({k})"))
            with engine.connect() as other:  # nothing is visible before the shared commit
                seen_outside.append(other.execute(text("SELECT count(*) FROM t")).scalar_one())
            if k == 2:
                raise RuntimeError("this caller fails")
            return k

        return work

    results: dict[Any, Any] = {}

    def call(key: Any, work: Any) -> None:
        try:
            results[key] = g.run(work)
        except Exception as exc:
            results[key] = repr(exc)

    t0 = threading.Thread(target=call, args=("first", first))
    t0.start()
    assert inside.wait(5)
    ts = [threading.Thread(target=call, args=(k, insert(k))) for k in (1, 2, 3)]
    for t in ts:
        t.start()
    _queued(g, 3)
    release.set()
    for t in [t0, *ts]:
        t.join(5)
    assert results == {"first": "first", 1: 1, 2: "RuntimeError('this caller fails')", 3: 3}
    assert g.calls == 4 and g.groups == 2  # the leader alone, then the three that waited
    assert seen_outside == [1, 1, 1]  # only the first group's row was committed meanwhile
    with engine.connect() as c:
        assert [r[0] for r in c.execute(text("SELECT k FROM t ORDER BY k"))] == [0, 1, 3]


def test_a_failed_commit_fails_every_caller_of_the_group(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY)")
        c.exec_driver_sql(
            "CREATE TABLE u (k INTEGER REFERENCES t(k) DEFERRABLE INITIALLY DEFERRED)"
        )
    g = GroupCommit(engine)
    with pytest.raises(Exception, match="FOREIGN KEY"):  # checked at COMMIT
        g.run(lambda conn: conn.execute(text("INSERT INTO u VALUES (9)")))
    assert g.run(lambda conn: conn.execute(text("INSERT INTO t VALUES (1)")).rowcount) == 1


class Signed:
    def __init__(self, chain: Chain, governor: Sender, deployment: Deployment) -> None:
        self.w = Agencies(chain, governor, deployment)
        self.domain = self.w.ledger.domain()
        self.agency = self.w.agency()

    def items(self, n: int) -> list[tuple[bytes, str, SignedRecord, str | None]]:
        out: list[tuple[bytes, str, SignedRecord, str | None]] = []
        for _ in range(n):
            s = self.w.sign(self.w.record(), self.agency)
            out.append((record_digest(s.record, self.domain), self.agency.address, s, None))
        return out


def test_concurrent_accepts_store_everything_once(embedded_chain: Chain, engine: Engine) -> None:
    from ledger.deploy import deploy_contracts

    gov = Sender(embedded_chain, new_account(), decoder())
    s = Signed(embedded_chain, gov, deploy_contracts(embedded_chain, gov))
    box = Outbox(engine)
    batches = [s.items(20) for _ in range(8)]
    # a record sent twice in two concurrent requests, and a nonce taken by two different records
    dup = batches[0][0]
    batches[1].append(dup)
    rival_rec = replace(batches[2][0][2].record, amount=99)
    rival = s.w.sign(rival_rec, s.agency)
    batches[3].append((record_digest(rival_rec, s.domain), s.agency.address, rival, None))
    out: dict[int, dict[str, str]] = {}
    barrier = threading.Barrier(len(batches))

    def accept(k: int) -> None:
        barrier.wait()
        out[k] = box.accept(batches[k])

    ts = [threading.Thread(target=accept, args=(k,)) for k in range(len(batches))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    merged = [st for k in out for st in out[k].values()]
    assert merged.count("accepted") == 160
    assert sorted(merged).count("duplicate") + merged.count("nonce-taken") == 2
    assert {out[0]["0x" + dup[0].hex()], out[1]["0x" + dup[0].hex()]} == {"accepted", "duplicate"}
    assert rows(engine) == 160
    assert box.group.calls == 8 and box.group.groups <= 8


def test_submitter_sends_polls_and_finalises(
    chain: Chain, governor: Sender, deployment: Deployment, engine: Engine
) -> None:
    s = Signed(chain, governor, deployment)
    box = Outbox(engine)
    box.accept(s.items(30))
    sub = Submitter(
        box,
        s.w.ledger,
        Sender(chain, new_account(), decoder()),
        batch_size=10,
        final_depth=0,
        settle_s=0.0,
    )
    assert sub.step() == 30 and len(sub._inflight) == 3
    deadline = time.monotonic() + 20
    while sub._inflight and time.monotonic() < deadline:
        sub.poll()
        time.sleep(0.05)
    assert not sub._inflight and rows(engine, outbox.c.status == "onchain") == 30
    Indexer(chain, engine, deployment).sync()
    sub.reconcile()
    assert rows(engine, outbox.c.status == "final") == 30
    with engine.connect() as c:
        txs = {r[0] for r in c.execute(select(outbox.c.tx_hash))}
    assert len(txs) == 3 and sub.gas_used > 0


def test_receipts_are_asked_for_only_when_the_head_moved(
    embedded_chain: Chain, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.deploy import deploy_contracts

    gov = Sender(embedded_chain, new_account(), decoder())
    s = Signed(embedded_chain, gov, deploy_contracts(embedded_chain, gov))
    box = Outbox(engine)
    box.accept(s.items(4))
    sub = Submitter(box, s.w.ledger, Sender(embedded_chain, new_account(), decoder()))
    sub.batch_size, sub.receipt_timeout = 2, 60.0
    assert sub.step() == 4
    head = [10]
    asked: list[str] = []
    monkeypatch.setattr(embedded_chain, "head", lambda: head[0])
    monkeypatch.setattr(sub, "_receipt", lambda h: asked.append(h))  # never mined
    sub.poll()
    assert len(asked) == 2
    sub.poll()
    sub.poll()
    assert len(asked) == 2  # same head: no transaction can have been mined since
    head[0] = 11
    sub.poll()
    assert len(asked) == 4
    sub.receipt_timeout = 0.0  # overdue: asked again even at the same head, then resent
    sub.poll()
    assert len(asked) == 6 and not sub._inflight
    assert rows(engine, outbox.c.status == "pending") == 4


def test_take_reads_the_stored_payload_when_the_cache_has_no_record(
    embedded_chain: Chain, engine: Engine
) -> None:
    """After a restart (a new Outbox) the submitter sends exactly what was accepted."""
    from ledger.deploy import deploy_contracts

    gov = Sender(embedded_chain, new_account(), decoder())
    s = Signed(embedded_chain, gov, deploy_contracts(embedded_chain, gov))
    items = s.items(5)
    box = Outbox(engine)
    box.accept(items)
    assert len(box._signed) == 5
    cold = Outbox(engine)._take(10)
    warm = box._take(10)
    assert not box._signed  # taken records leave the cache
    expected = [("0x" + i.hex(), sig, 0, ag) for i, ag, sig, _ in items]
    assert sorted(cold) == sorted(warm) == sorted(expected)


def test_nonce_bitmap_by_hand_equals_the_contract_call(
    chain: Chain, governor: Sender, deployment: Deployment
) -> None:
    s = Signed(chain, governor, deployment)
    records = []
    for n in (1, 2, 300):
        s.w.nonce = n - 1
        records.append(s.w.sign(s.w.record(), s.agency))
    s.w.send(records)
    ledger, a = s.w.ledger, s.agency.address
    for word, bits in ((0, 0b110), (1, 1 << 44), (2, 0)):
        assert ledger.nonce_bitmap(a, word) == bits
        assert int(ledger.contract.functions.nonceBitmap(a, word).call()) == bits
