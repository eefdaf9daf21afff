"""Who the index says signed a record: the outbox's agency for records this service accepted
(same id and signature bytes), the recovered signer for every other record; and the record
listeners run off the follower thread, in order.

Decision under test (ledger/index.py): the follower takes the outbox's agency only as a memo of
the recovery the service made at acceptance, keyed by (id, signature); recovery depends on those
two alone. A different signature for the same id (another key signing the same struct) is
recovered. An outbox row altered behind the service's back is indexed as stored: the index
trusts its own database, and ``zhixin audit --index`` (ledger/index_diff.py, which recovers every
signer from chain data) names the altered agency.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import Engine, select, update

from ledger import records
from ledger.chain import Chain, Sender, new_account
from ledger.credit import CreditLedgerClient
from ledger.db import credit_records, make_engine, migrate, outbox
from ledger.deploy import Deployment, decoder
from ledger.index import IndexedRecord, Indexer, RecordFanout
from ledger.index_diff import diff_index
from ledger.outbox import Outbox
from ledger.records import CreditRecord, RecordKind, SignedRecord, sign_record
from ledger.roles import Role, RolesClient


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    migrate(eng)
    return eng


class Agencies:
    def __init__(self, chain: Chain, governor: Sender, deployment: Deployment) -> None:
        self.ledger = CreditLedgerClient(chain, deployment.address("CreditLedger"))
        self.roles = RolesClient(chain, deployment.address("Roles"))
        self.relayer = Sender(chain, new_account(), decoder())
        self.governor = governor
        self.nonce = 0

    def agency(self) -> LocalAccount:
        acct = new_account()
        self.roles.grant(self.governor, Role.AGENCY, acct.address)
        self.roles.grant_categories(self.governor, acct.address, [301])
        return acct

    def record(self) -> CreditRecord:
        self.nonce += 1
        now = int(time.time())
        return CreditRecord(
            kind=RecordKind.RECORD,
            subject_kind=2,
            subject=keccak(b"subject %d" % self.nonce),
            category=301,
            occurred_at=now - 10,
            effective_from=now - 10,
            deadline=now + 3600,
            nonce=self.nonce,
        )

    def sign(self, rec: CreditRecord, who: LocalAccount) -> SignedRecord:
        return sign_record(rec, bytes(who.key), self.ledger.domain())

    def send(self, signed: list[SignedRecord]) -> list[bytes]:
        res = self.ledger.submit_batch(self.relayer, signed)
        assert not res.rejected
        return res.accepted_ids


def agency_of(engine: Engine, rid: bytes) -> str:
    with engine.connect() as c:
        return str(
            c.execute(
                select(credit_records.c.agency).where(credit_records.c.id == "0x" + rid.hex())
            ).scalar_one()
        )


class CountRecoveries:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = records._recover_digest

        def counting(signed: SignedRecord, digest: bytes) -> str:
            self.n += 1
            return real(signed, digest)

        monkeypatch.setattr(records, "_recover_digest", counting)


def test_records_accepted_here_take_the_outbox_agency_others_are_recovered(
    chain: Chain,
    governor: Sender,
    deployment: Deployment,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = Agencies(chain, governor, deployment)
    mine, theirs = w.agency(), w.agency()
    accepted = [w.sign(w.record(), mine) for _ in range(3)]
    relayed = [w.sign(w.record(), theirs) for _ in range(2)]  # written by another relayer
    box = Outbox(engine)
    domain = w.ledger.domain()
    box.accept([(records.record_digest(s.record, domain), mine.address, s, None) for s in accepted])
    ids = w.send(accepted[:2] + relayed[:1] + accepted[2:] + relayed[1:])
    recoveries = CountRecoveries(monkeypatch)
    Indexer(chain, engine, deployment).sync()
    assert recoveries.n == 2  # only the relayed records
    assert [agency_of(engine, i) for i in ids] == [
        mine.address,
        mine.address,
        theirs.address,
        mine.address,
        theirs.address,
    ]
    assert diff_index(chain, deployment, engine).ok


def test_same_id_signed_by_another_key_is_recovered(
    chain: Chain, governor: Sender, deployment: Deployment, engine: Engine
) -> None:
    """The struct carries no agency: two agencies can sign the same record (same id). The
    outbox holds one signature; the chain has the other one's record, whose signer is its own."""
    w = Agencies(chain, governor, deployment)
    mine, other = w.agency(), w.agency()
    rec = w.record()
    domain = w.ledger.domain()
    rid = records.record_digest(rec, domain)
    Outbox(engine).accept([(rid, mine.address, w.sign(rec, mine), None)])
    (onchain,) = w.send([w.sign(rec, other)])
    assert onchain == rid
    idx = Indexer(chain, engine, deployment)
    idx.sync()
    assert agency_of(engine, rid) == other.address
    assert diff_index(chain, deployment, engine).ok


def test_an_altered_outbox_agency_is_indexed_as_stored_and_index_diff_names_it(
    chain: Chain, governor: Sender, deployment: Deployment, engine: Engine
) -> None:
    w = Agencies(chain, governor, deployment)
    mine = w.agency()
    signed = [w.sign(w.record(), mine) for _ in range(2)]
    domain = w.ledger.domain()
    ids = [records.record_digest(s.record, domain) for s in signed]
    Outbox(engine).accept([(i, mine.address, s, None) for i, s in zip(ids, signed, strict=True)])
    forged = new_account().address
    with engine.begin() as c:  # behind the service's back: recovery cannot give this address
        c.execute(update(outbox).where(outbox.c.id == "0x" + ids[1].hex()).values(agency=forged))
    w.send(signed)
    Indexer(chain, engine, deployment).sync()
    assert agency_of(engine, ids[0]) == mine.address
    assert agency_of(engine, ids[1]) == forged
    diff = diff_index(chain, deployment, engine)
    assert [(f.check, f.record_id, f.field, f.expected, f.actual) for f in diff.findings] == [
        ("index.altered", "0x" + ids[1].hex(), "agency", mine.address, forged)
    ]
    # with the memo off (as an auditor's rebuild would), the index is the chain's again
    with engine.begin() as c:
        c.execute(credit_records.delete())
    idx = Indexer(chain, engine, deployment, name="rebuild")
    idx.outbox_signers = False
    with engine.begin() as c:
        c.execute(update(outbox).where(outbox.c.id == "0x" + ids[1].hex()).values(agency=forged))
    idx.sync()
    assert agency_of(engine, ids[1]) == mine.address


def test_the_pool_recovers_only_unknown_signers(
    embedded_chain: Chain, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large page with a process pool: known signers inline, the rest in the workers, rows in
    log order."""
    from concurrent.futures import ThreadPoolExecutor

    from ledger.deploy import deploy_contracts

    gov = Sender(embedded_chain, new_account(), decoder())
    dep = deploy_contracts(embedded_chain, gov)
    w = Agencies(embedded_chain, gov, dep)
    mine, theirs = w.agency(), w.agency()
    domain = w.ledger.domain()
    batch = [w.sign(w.record(), mine if i % 3 else theirs) for i in range(210)]
    Outbox(engine).accept(
        [
            (records.record_digest(s.record, domain), mine.address, s, None)
            for i, s in enumerate(batch)
            if i % 3
        ]
    )
    ids = w.send(batch)
    idx = Indexer(embedded_chain, engine, dep)
    submitted: list[int] = []
    with ThreadPoolExecutor(2) as pool:

        class Spy:
            def submit(self, fn, items):  # type: ignore[no-untyped-def]
                submitted.append(len(items))
                return pool.submit(fn, items)

        idx.pool, idx.pool_workers = Spy(), 2
        idx.sync()
    assert sum(submitted) == 70 and len(submitted) == 2
    with engine.connect() as c:
        rows = c.execute(
            select(credit_records.c.id, credit_records.c.agency).order_by(credit_records.c.seq)
        ).all()
    assert [r[0] for r in rows] == ["0x" + i.hex() for i in ids]
    assert [r[1] for r in rows] == [mine.address if i % 3 else theirs.address for i in range(210)]


def test_payload_signature_reads_the_stored_json() -> None:
    import json

    from ledger.index import _payload_signature

    acct = new_account()
    rec = CreditRecord(
        kind=1,
        subject_kind=1,
        subject=keccak(b"x"),
        category=301,
        occurred_at=1,
        effective_from=1,
        deadline=2,
        nonce=7,
    )
    signed = sign_record(rec, bytes(acct.key), records.Eip712Domain(1, acct.address))
    payload = json.dumps(records.signed_record_to_json(signed), sort_keys=True)
    assert _payload_signature(payload) == signed.signature
    assert _payload_signature(payload.replace(": ", ":")) == signed.signature  # json fallback
    assert _payload_signature("{}") is None


# ---- listeners off the follower thread ----


def _recs(*seqs: int) -> list[IndexedRecord]:
    return [IndexedRecord(f"0x{s:064x}", s, s, "0x") for s in seqs]


def test_fanout_delivers_in_order_joins_what_piled_up_and_survives_a_failure() -> None:
    got: list[list[int]] = []
    gate = threading.Event()

    def deliver(rs: list[IndexedRecord]) -> None:
        gate.wait(5)
        got.append([r.seq for r in rs])
        if rs[0].seq == 3:
            raise RuntimeError("listener bug")

    f = RecordFanout(deliver)
    f.start()
    f.put(_recs(1, 2))
    time.sleep(0.05)  # the thread is now blocked in the first call
    f.put(_recs(3))
    f.put(_recs(4, 5))  # joined with the previous one
    gate.set()
    assert f.flush(5)
    f.put(_recs(6))
    f.stop()  # delivers what is queued before returning
    assert got == [[1, 2], [3, 4, 5], [6]]


def test_follower_does_not_wait_for_a_slow_listener(embedded_chain: Chain, engine: Engine) -> None:
    from ledger.deploy import deploy_contracts

    gov = Sender(embedded_chain, new_account(), decoder())
    dep = deploy_contracts(embedded_chain, gov)
    w = Agencies(embedded_chain, gov, dep)
    a = w.agency()
    release = threading.Event()
    seen: list[str] = []

    def slow(rs: list[IndexedRecord]) -> None:
        release.wait(10)
        seen.extend(r.id for r in rs)

    fanout = RecordFanout(slow)
    fanout.start()
    idx = Indexer(embedded_chain, engine, dep, on_records=fanout.put, page=1)
    first = w.send([w.sign(w.record(), a) for _ in range(2)])
    t0 = time.monotonic()
    assert idx.sync().records == 2
    second = w.send([w.sign(w.record(), a)])
    assert idx.sync().records == 1  # indexed while the listener still holds the first batch
    assert time.monotonic() - t0 < 5 and not seen
    release.set()
    fanout.stop()
    assert seen == ["0x" + i.hex() for i in first + second]
