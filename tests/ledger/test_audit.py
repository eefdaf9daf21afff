"""The audit replays real chains from logs alone: a clean history passes; every tampering (a
lying node, a gap, a truncated range, a foreign lifecycle record, a ledger that skips the role
check, a bad checkpoint) fails with the right finding."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.audit import check_signed_checkpoint
from ledger.audit_replay import ChainSource, replay
from ledger.chain import Chain, Sender, new_account
from ledger.credit import CreditLedgerClient
from ledger.deploy import Deployment, decoder
from ledger.records import (
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
    seq = [f for f in report.findings if f.check == "record.seq"]
    assert len(seq) == 1 and seq[0].record_id == "0x" + ids[2].hex()
    assert any("state()" in n for n in report.notes)  # the broken ledger has no state()
