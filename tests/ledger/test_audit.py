"""The audit replays real chains from logs alone: a clean history passes; every tampering (a
lying node, a gap, a truncated range, a foreign lifecycle record, a ledger that skips the role
check, a bad checkpoint) fails with the right finding."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.audit import (
    ROLE_GRANTED_TOPIC,
    SCOPE_GRANTED_TOPIC,
    Auditor,
    AuditState,
    check_signed_checkpoint,
    record_items,
)
from ledger.audit_replay import ChainSource, FactsPool, replay
from ledger.chain import Chain, Sender, new_account
from ledger.credit import CreditLedgerClient
from ledger.deploy import Deployment, decoder
from ledger.records import (
    RECORDED_TOPIC,
    ZERO_HASH,
    CreditRecord,
    Eip712Domain,
    RecordKind,
    record_digest,
    sign_record,
)
from ledger.roles import Role, RolesClient
from ledger.tlog import MerkleTree, leaf_hash
from ledger.tlog_service import Anchorer, TransparencyLog, anchor_calldata, log_origin


class History:
    """Writes real records through the deployed CreditLedger."""

    def __init__(self, chain: Chain, governor: Sender, deployment: Deployment) -> None:
        self.chain, self.governor, self.deployment = chain, governor, deployment
        self.roles = RolesClient(chain, deployment.address("Roles"))
        self.ledger = CreditLedgerClient(chain, deployment.address("CreditLedger"))
        self.relayer = Sender(chain, new_account(), decoder())
        self.nonce = 0
        self.subjects: dict[bytes, bytes] = {}

    def agency(self, categories: list[int]) -> LocalAccount:
        acct = new_account()
        self.roles.grant(self.governor, Role.AGENCY, acct.address)
        self.roles.grant_categories(self.governor, acct.address, categories)
        return acct

    def write(
        self,
        agency: LocalAccount,
        n: int = 1,
        *,
        kind: int = RecordKind.RECORD,
        ref: bytes = ZERO_HASH,
        category: int = 301,
    ) -> list[bytes]:
        now = int(time.time())
        signed = []
        for _ in range(n):
            self.nonce += 1
            subject = self.subjects.get(ref) or keccak(b"subject%d" % self.nonce)
            rec = CreditRecord(
                kind=kind,
                subject_kind=2,
                subject=subject,
                category=category,
                occurred_at=now - 10,
                effective_from=now - 10,
                deadline=now + 3600,
                nonce=self.nonce,
                ref=ref,
            )
            signed.append(sign_record(rec, bytes(agency.key), self.ledger.domain()))
        res = self.ledger.submit_batch(self.relayer, signed)
        assert not res.rejected, res.rejected
        for s, rid in zip(signed, res.accepted_ids, strict=True):
            self.subjects[rid] = s.record.subject
        return res.accepted_ids

    def publisher(self) -> Sender:
        pub = Sender(self.chain, new_account(), decoder())
        self.roles.grant(self.governor, Role.RULE_PUBLISHER, pub.address)
        return pub


def checks(report: Any) -> set[str]:
    return {f.check for f in report.findings}


def test_clean_history_passes(chain: Chain, governor: Sender, deployment: Deployment) -> None:
    h = History(chain, governor, deployment)
    a, b = h.agency([301]), h.agency([301, 302])
    ids = h.write(a, 3)
    h.write(b, 2, category=302)
    h.write(a, kind=RecordKind.AMEND, ref=ids[0])
    h.write(a, kind=RecordKind.WITHDRAW, ref=ids[1])
    h.write(b, kind=RecordKind.OBJECTION, ref=h.write(b)[0])
    log = TransparencyLog(
        log_origin(chain.chain_id, h.ledger.address), Ed25519PrivateKey.generate()
    )
    log.extend(e.id for e in h.ledger.fetch_records(deployment.deploy_block))
    if "RuleRegistry" in deployment.contracts:
        anchorer = Anchorer(log, h.publisher(), deployment.address("RuleRegistry"), 1, 60)
        assert anchorer.maybe_anchor(time.time()) is not None, anchorer.last_error

    report = replay(chain, deployment, page=7)
    assert report.ok, report.findings
    assert not report.partial
    assert report.counts["records"] == 9 and report.counts["lifecycle"] == 3
    assert report.head == "0x" + h.ledger.state().head.hex()
    assert report.tree_root == log.tree.root().hex()
    if "RuleRegistry" in deployment.contracts:
        assert report.counts["checkpoints"] == 1
    assert check_signed_checkpoint(log.checkpoint(), log.verifier_key, log.origin, log.tree) == []


@pytest.fixture
def embedded_history(
    embedded_chain: Chain,
) -> tuple[Chain, Deployment, History, list[bytes]]:
    from ledger.deploy import deploy_contracts

    gov = Sender(embedded_chain, new_account(), decoder())
    dep = deploy_contracts(embedded_chain, gov)
    h = History(embedded_chain, gov, dep)
    a = h.agency([301])
    ids = h.write(a, 3) + h.write(a, 3)
    return embedded_chain, dep, h, ids


class Lying(ChainSource):
    """A node that alters the logs it returns."""

    def __init__(self, chain: Chain, tamper: Any) -> None:
        super().__init__(chain)
        self.tamper = tamper

    def logs(self, addresses: list[str], start: int, end: int) -> list[Any]:
        return self.tamper([dict(lg) for lg in super().logs(addresses, start, end)])


def _record_logs(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from ledger.records import RECORDED_TOPIC

    return [lg for lg in logs if bytes(lg["topics"][0]) == RECORDED_TOPIC]


def test_lying_node_block_hash(embedded_history: Any) -> None:
    chain, dep, _h, ids = embedded_history

    def tamper(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for lg in _record_logs(logs):
            if bytes(lg["topics"][1]) == ids[2]:
                lg["blockHash"] = b"\x11" * 32
        return logs

    report = replay(Lying(chain, tamper), dep)
    bad = [f for f in report.findings if f.check == "log.block-hash"]
    assert len(bad) == 1 and bad[0].record_id == "0x" + ids[2].hex()
    assert bad[0].actual == "0x" + "11" * 32 and bad[0].block and bad[0].tx
    assert "ledger.state" in checks(report)  # the contract counted a record the audit refused


def test_gap_in_seq(embedded_history: Any) -> None:
    chain, dep, _h, ids = embedded_history

    def drop(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [lg for lg in logs if bytes(lg["topics"][1]) != ids[4]]

    report = replay(Lying(chain, drop), dep)
    seq = [f for f in report.findings if f.check == "record.seq"]
    assert len(seq) == 1 and seq[0].record_id == "0x" + ids[5].hex()
    assert "1 record(s) missing" in seq[0].detail
    assert {"record.head", "ledger.state"} <= checks(report)


def test_gap_found_through_either_log_path(
    chain: Chain, governor: Sender, deployment: Deployment
) -> None:
    """Anvil's logs come through raw JSON-RPC (web3's formatters are skipped for speed), the
    embedded chain's through web3: same shape, same findings."""
    h = History(chain, governor, deployment)
    ids = h.write(h.agency([301]), 3)
    logs = ChainSource(chain).logs([deployment.address("CreditLedger")], 0, chain.head())
    assert [bytes(lg["topics"][1]) for lg in logs] == ids
    assert all(isinstance(lg["blockNumber"], int) and len(bytes(lg["data"])) == 288 for lg in logs)

    def drop(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [lg for lg in logs if not lg["topics"] or bytes(lg["topics"][-1]) != ids[1]]

    report = replay(Lying(chain, drop), deployment, workers=2)
    assert [(f.check, f.record_id) for f in report.findings if f.check == "record.seq"] == [
        ("record.seq", "0x" + ids[2].hex())
    ]


def test_truncated_history_is_partial(embedded_history: Any, tmp_path: Path) -> None:
    chain, dep, h, _ids = embedded_history
    entries = h.ledger.fetch_records(dep.deploy_block)
    mid = entries[3].block_number - 1
    resume = tmp_path / "audit.json"
    part = replay(chain, dep, to_block=mid, resume=resume)
    assert part.ok and part.partial and part.counts["records"] == 3
    assert any("partial" in n for n in part.notes)
    rest = replay(chain, dep, resume=resume)
    assert rest.ok and not rest.partial and rest.counts["records"] == 6
    assert rest.head == "0x" + h.ledger.state().head.hex()
    late = replay(chain, dep, from_block=mid + 1)
    assert late.ok and late.partial and late.counts["records"] == 3


def test_lifecycle_by_another_agency(embedded_history: Any) -> None:
    _chain, dep, h, ids = embedded_history
    other = h.agency([301])
    wid = h.write(other, kind=RecordKind.WITHDRAW, ref=ids[0])[0]
    report = replay(h.chain, dep)
    bad = [f for f in report.findings if f.check == "lifecycle.agency"]
    assert len(bad) == 1 and bad[0].record_id == "0x" + wid.hex()


def test_wrong_checkpoint_anchor(embedded_history: Any) -> None:
    chain, dep, h, ids = embedded_history
    if "RuleRegistry" not in dep.contracts:
        pytest.skip("RuleRegistry not deployed")
    pub = h.publisher()
    pub.send(dep.address("RuleRegistry"), anchor_calldata(2, b"\x42" * 32), gas=150_000)
    report = replay(chain, dep)
    bad = [f for f in report.findings if f.check == "checkpoint.root"]
    assert len(bad) == 1
    assert bad[0].expected == "0x" + MerkleTree([leaf_hash(i) for i in ids[:2]]).root().hex()
    outsider = Sender(chain, new_account(), decoder())
    with pytest.raises(Exception, match="Unauthorized"):
        outsider.send(dep.address("RuleRegistry"), anchor_calldata(9, b"\x42" * 32))


def test_wrong_checkpoint_signature() -> None:
    tree = MerkleTree([leaf_hash(keccak(b"%d" % i)) for i in range(5)])
    log = TransparencyLog("zhixin.example/credit-log/1/0xabc", Ed25519PrivateKey.generate())
    log.extend(keccak(b"%d" % i) for i in range(5))
    impostor = TransparencyLog(log.origin, Ed25519PrivateKey.generate())
    impostor.extend(keccak(b"%d" % i) for i in range(5))
    bad = check_signed_checkpoint(impostor.checkpoint(), log.verifier_key, log.origin, tree)
    assert [f.check for f in bad] == ["tlog.checkpoint-signature"]
    forged = log.checkpoint().replace("\n5\n", "\n4\n")
    assert [
        f.check for f in check_signed_checkpoint(forged, log.verifier_key, log.origin, tree)
    ] == ["tlog.checkpoint-signature"]


def _compile_broken() -> tuple[list[Any], bytes]:
    import solcx

    import ledger.contracts as lc

    src = Path(__file__).parent.parent / "contracts" / "BrokenLedger.sol"
    std = {
        "language": "Solidity",
        "sources": {"BrokenLedger.sol": {"content": src.read_text()}},
        "settings": lc.COMPILER_SETTINGS,
    }
    out = solcx.compile_standard(std, solc_binary=str(lc.SOLC_WRAPPER))
    c = out["contracts"]["BrokenLedger.sol"]["BrokenLedger"]
    return c["abi"], bytes.fromhex(c["evm"]["bytecode"]["object"])


def test_ledger_that_skips_the_role_check(embedded_history: Any) -> None:
    chain, dep, _h, _ids = embedded_history
    abi, code = _compile_broken()
    gov = Sender(chain, new_account(), decoder())
    broken = str(gov.deploy(code, what="deploy BrokenLedger").receipt["contractAddress"])
    contract = chain.contract(broken, abi)
    domain = Eip712Domain(chain.chain_id, broken)
    rogue = new_account()  # holds no role at all
    head, now, ids = ZERO_HASH, int(time.time()), []
    for seq in (0, 1, 3):  # seq 2 is missing
        rec = CreditRecord(
            kind=1, subject_kind=1, subject=keccak(b"p%d" % seq), category=301,
            occurred_at=now, effective_from=now, deadline=now + 600, nonce=seq,
        )  # fmt: skip
        s = sign_record(rec, bytes(rogue.key), domain)
        rid = record_digest(rec, domain)
        head = keccak(head + rid)
        meta = rec.meta | seq << 160
        words = [
            meta.to_bytes(32, "big"),
            rec.times.to_bytes(32, "big"),
            rec.subject,
            rec.evidence_hash,
            rec.reason_hash,
            rec.nonce.to_bytes(32, "big"),
            s.r,
            s.vs,
            head,
        ]  # fmt: skip  (the layout decode_recorded_log reads)
        gov.send(broken, bytes.fromhex(contract.encode_abi("emitRecord", [rid, words])[2:]))
        ids.append(rid)
    bent = Deployment(
        chain_id=dep.chain_id,
        contracts={**dep.contracts, "CreditLedger": broken},
        deploy_block=dep.deploy_block,
        artifact_hashes=dep.artifact_hashes,
        governor=dep.governor,
    )
    report = replay(chain, bent)
    role = [f for f in report.findings if f.check == "record.role"]
    assert [f.record_id for f in role] == ["0x" + i.hex() for i in ids]
    assert rogue.address in role[0].detail
    gaps = [f for f in report.findings if f.check == "record.seq"]
    assert len(gaps) == 1 and gaps[0].record_id == "0x" + ids[2].hex()
    assert any("state()" in n for n in report.notes)  # the broken ledger has no state()


# ---- chain-free: every tampering case through the bulk path, inline and in worker processes ----

_LEDGER, _ROLES = "0x" + "b2" * 20, "0x" + "a1" * 20
_DOMAIN = Eip712Domain(31337, _LEDGER)


def _word(addr: bytes) -> str:
    return "0x" + (bytes(12) + addr).hex()


def _synthetic_history() -> tuple[list[dict[str, Any]], dict[str, set[int]]]:
    """Raw JSON-RPC logs: roles, 300 clean records, then one tampering per record; and, per
    check, the indices of the records it must name."""
    from eth_abi import encode

    keys = {n: keccak(b"audit-test-%s" % n.encode()) for n in ("a", "b", "c")}
    addr = {n: bytes.fromhex(Account.from_key(k).address[2:]) for n, k in keys.items()}
    gov = b"\xc3" * 20
    logs: list[dict[str, Any]] = []

    def add(address: str, topics: list[bytes], data: bytes, block: int) -> None:
        logs.append({
            "address": address, "topics": ["0x" + t.hex() for t in topics],
            "data": "0x" + data.hex(), "blockNumber": hex(block),
            "blockHash": "0x" + keccak(b"b%d" % block).hex(),
            "transactionHash": "0x" + keccak(b"t%d" % block).hex(),
            "logIndex": hex(len(logs)), "removed": False,
        })  # fmt: skip

    add(_ROLES, [ROLE_GRANTED_TOPIC, Role.GOVERNOR.id, bytes(12) + gov, bytes(12) + gov], b"", 1)
    for n in ("a", "c"):  # b holds no role
        add(_ROLES, [ROLE_GRANTED_TOPIC, Role.AGENCY.id, bytes(12) + addr[n], bytes(12) + gov],
            b"", 1)  # fmt: skip
        add(_ROLES, [SCOPE_GRANTED_TOPIC, bytes(12) + addr[n], bytes(12) + gov],
            encode(["uint16[]"], [[301]]), 1)  # fmt: skip
    state: dict[str, Any] = {"seq": 0, "head": ZERO_HASH}
    ids: list[bytes] = []
    subjects: list[bytes] = []

    def rec(signer: str = "a", **kw: Any) -> tuple[CreditRecord, bytes, bytes]:
        base: dict[str, Any] = dict(
            kind=1, subject_kind=1, subject=keccak(b"s%d" % len(ids)), category=301,
            occurred_at=1, effective_from=1, deadline=2**40, nonce=len(ids) + 1,
        )  # fmt: skip
        base.update(kw)
        r = CreditRecord(**base)
        return r, sign_record(r, keys[signer], _DOMAIN).signature, record_digest(r, _DOMAIN)

    def emit(r: CreditRecord, sig: bytes, rid: bytes, *, seq: int | None = None,
             head: bytes | None = None, data_edit: Any = None, ref_word: bool | None = None,
             counted: bool = True) -> int:  # fmt: skip
        s_ = state["seq"] if seq is None else seq
        h = keccak(state["head"] + rid) if head is None else head
        lifecycle = r.kind != 1 if ref_word is None else ref_word
        data = (
            (r.meta | s_ << 160).to_bytes(32, "big") + r.times.to_bytes(32, "big") + r.subject
            + r.evidence_hash + r.reason_hash + r.nonce.to_bytes(32, "big") + sig + h
            + (r.ref if lifecycle else b"")
        )  # fmt: skip
        if data_edit is not None:
            data = data_edit(data)
        add(_LEDGER, [RECORDED_TOPIC, rid], data, 2 + len(ids) // 100)
        if counted:  # the auditor applied it: seq and head move on
            state["seq"] = s_ + 1
            state["head"] = keccak(state["head"] + rid)
        ids.append(rid)
        subjects.append(r.subject)
        return len(ids) - 1

    for _ in range(300):
        emit(*rec())
    want: dict[str, set[int]] = {}

    def expect(i: int, *checks_: str) -> None:
        for c in checks_:
            want.setdefault(c, set()).add(i)

    r, sig, rid = rec()  # a signed field changed after signing: id is not the digest
    expect(emit(r, sig, rid, data_edit=lambda d: d[:96] + keccak(b"ev") + d[128:]), "record.id")
    r, sig, rid = rec()
    vs = 1 << 255 | (0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2 + 1)
    expect(emit(r, sig[:32] + vs.to_bytes(32, "big"), rid, counted=False), "record.signature")
    expect(emit(*rec(), ref_word=True, counted=False), "record.decode")
    expect(emit(*rec("b")), "record.role")
    expect(emit(*rec(category=302)), "record.scope")
    expect(emit(*rec(nonce=1)), "record.nonce")
    expect(emit(*rec(kind=RecordKind.WITHDRAW, ref=keccak(b"nothing"))), "lifecycle.unknown-ref")
    expect(emit(*rec(kind=RecordKind.WITHDRAW, ref=ids[0])), "lifecycle.subject")
    r0: dict[str, Any] = dict(subject=subjects[0], ref=ids[0])
    expect(emit(*rec(kind=RecordKind.RESOLUTION_UPHELD, **r0)), "lifecycle.ref-kind")
    expect(emit(*rec("c", kind=RecordKind.AMEND, **r0)), "lifecycle.agency")
    expect(emit(*rec(), head=keccak(b"lie")), "record.head")
    state["seq"] += 2
    expect(emit(*rec()), "record.seq")
    r, sig, rid = rec(nonce=1, subject=keccak(b"s0"))  # record 0 again, later
    expect(emit(r, sig, rid), "record.nonce", "record.duplicate-id")
    expect(emit(*rec(category=0)), "record.shape", "record.scope")
    assert state["seq"] == len(ids)  # two logs refused (no seq), two seq numbers skipped
    return logs, want


def _audit(logs: list[dict[str, Any]], workers: int) -> Any:
    auditor = Auditor(31337, {"Roles": _ROLES, "CreditLedger": _LEDGER}, AuditState(1))
    with FactsPool(31337, _LEDGER, workers) as pool:
        auditor.feed(logs, pool.submit(record_items(logs, _LEDGER))())
    return auditor.finish(from_block=1, to_block=9, head_block=9, now=0)


def test_every_tampering_is_found_in_worker_processes_too() -> None:
    logs, want = _synthetic_history()
    ids = [lg["topics"][1] for lg in logs[5:]]
    inline, pooled = _audit(logs, 1), _audit(logs, 2)
    assert inline.findings == pooled.findings and inline.head == pooled.head
    got: dict[str, set[int]] = {}
    for f in inline.findings:
        assert f.record_id == ids[f.log_index - 5]
        got.setdefault(f.check, set()).add(f.log_index - 5)
    assert got == want
    assert inline.counts["records"] == len(ids) and inline.tree_size == len(ids) - 3
    alone = Auditor(31337, {"Roles": _ROLES, "CreditLedger": _LEDGER}, AuditState(1))
    alone.feed(logs)  # checks computed inline when not given
    assert alone.finish(from_block=1, to_block=9, head_block=9, now=0).findings == inline.findings
