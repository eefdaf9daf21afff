"""The chain-only audit re-evaluates every anchored list epoch from the replayed records and the
rule-set documents (whose hashes alone are on chain): a clean history matches; a wrong anchored
root, a missing document and a replay that starts late are each reported precisely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

import ledger
from ledger.audit import AuditState
from ledger.audit_replay import load_rule_sets, replay
from ledger.catalog import load_catalog
from ledger.chain import Chain, Sender, new_account
from ledger.deploy import decoder, deploy_contracts
from ledger.rules import load_measures, load_rule_set
from ledger.rules.epochs import EpochCommitment, evaluate_epoch
from ledger.rules_registry import EpochAnchor, RuleRegistryClient, rule_set_id, version_number
from ledger.rules_service import RulesService
from tests.ledger.test_audit import History

RULES_DIR = Path(ledger.__file__).parent / "data" / "rules"
COURT, TAX = 201, 301  # court.judgment_defaulter lists an entity on black + serious_dishonesty


class EpochHistory:
    """A deployment with records, the starter rule set published and epochs anchored the way
    the service anchors them (its chain-log path: ``RulesService.entries_from_chain``)."""

    def __init__(self, chain: Chain) -> None:
        gov = Sender(chain, new_account(), decoder())
        self.chain = chain
        self.dep = deploy_contracts(chain, gov)
        self.h = History(chain, gov, self.dep)
        self.agency = self.h.agency([COURT, TAX])
        self.pub = self.h.publisher()
        self.registry = RuleRegistryClient(chain, self.dep.address("RuleRegistry"))
        self.catalog = load_catalog()
        measures = load_measures()
        self.rs = load_rule_set(self.catalog, measures)
        self.content = self.rs.canonical_hash()
        self.service = RulesService(
            engine=cast(Any, None),  # entries_from_chain reads the chain only
            registry=self.registry,
            ledger=self.h.ledger,
            credit=cast(Any, None),
            catalog=self.catalog,
            measures=measures,
            publisher=self.pub,
            deploy_block=self.dep.deploy_block,
        )

    def write(self, n: int, category: int = COURT) -> list[bytes]:
        return self.h.write(self.agency, n, category=category)

    def publish(self) -> None:
        sid, vnum = rule_set_id(self.rs.id), version_number(self.rs.version)
        self.registry.publish(self.pub, sid, vnum, self.content)

    def anchor(self, root: bytes | None = None) -> tuple[EpochAnchor, EpochCommitment]:
        """Evaluate at the head block's time and anchor (``root``: anchor this one instead)."""
        w3 = self.chain.w3
        as_of = int(w3.eth.get_block(self.chain.head())["timestamp"])
        com = evaluate_epoch(self.rs, self.catalog, self.service.entries_from_chain(), as_of)
        assert com.member_count > 0  # a non-trivial root
        anchor = self.registry.anchor_epoch(
            self.pub, self.content, as_of, root or com.lists_root, com.member_count
        )
        return anchor, com


@pytest.fixture
def epochs(embedded_chain: Chain) -> EpochHistory:
    return EpochHistory(embedded_chain)


def findings(report: Any, check: str) -> list[Any]:
    return [f for f in report.findings if f.check == check]


def test_clean_history_reevaluates_every_epoch(epochs: EpochHistory) -> None:
    epochs.write(2)
    epochs.write(1, TAX)
    epochs.publish()
    first, com1 = epochs.anchor()
    epochs.write(1)  # after the first epoch: only the second one sees it
    second, com2 = epochs.anchor()
    assert com2.member_count > com1.member_count

    docs = load_rule_sets(RULES_DIR)
    report = replay(epochs.chain, epochs.dep, rule_sets=docs, page=5)
    assert report.ok, report.findings
    assert report.counts["rule_sets_recomputed"] == 1
    assert report.counts["epochs_reevaluated"] == 2 and "epochs_not_evaluated" not in report.counts
    summary = report.to_json()["list_epochs"]
    assert (summary["anchored"], summary["reevaluated"], summary["matched"]) == (2, 2, 2)
    e1, e2 = summary["epochs"]
    assert (e1["epoch"], e1["block"], e1["records"], e1["status"]) == (
        1,
        first.anchored_at,
        3,
        "match",
    )
    assert e1["recomputed_root"] == e1["anchored_root"] == "0x" + com1.lists_root.hex()
    assert e1["lists"] == com1.list_roots() and e1["rule_set_version"] == epochs.rs.version
    assert (e2["epoch"], e2["records"], e2["recomputed_members"]) == (2, 4, com2.member_count)
    assert e2["anchored_root"] == "0x" + second.lists_root.hex()
    # without documents (the service's /v1/audit/run path) nothing is claimed about epochs
    bare = replay(epochs.chain, epochs.dep)
    assert bare.ok and bare.counts["epochs_not_evaluated"] == 2
    assert any("no rule-set documents" in n for n in bare.notes)


def test_wrong_anchored_root_is_an_epoch_root_mismatch(epochs: EpochHistory) -> None:
    epochs.write(2)
    epochs.publish()
    anchor, com = epochs.anchor(root=b"\x42" * 32)  # the publisher key anchors a wrong root
    report = replay(epochs.chain, epochs.dep, rule_sets=load_rule_sets(RULES_DIR))
    assert not report.ok
    (bad,) = findings(report, "epoch-root-mismatch")
    assert bad.epoch == 1 and bad.block == anchor.anchored_at and bad.tx == anchor.tx_hash
    assert bad.field == "listsRoot"
    assert bad.expected == "0x" + com.lists_root.hex() and bad.actual == "0x" + "42" * 32
    assert "serious_dishonesty 2" in bad.detail and "black 2" in bad.detail
    assert [f.check for f in report.findings] == ["epoch-root-mismatch"]
    assert report.to_json()["list_epochs"]["mismatched"] == 1


def test_missing_rule_set_document_is_a_finding_not_a_crash(
    epochs: EpochHistory, tmp_path: Path
) -> None:
    epochs.write(1)
    epochs.publish()
    epochs.anchor()
    (tmp_path / "other.yaml").write_text(
        (RULES_DIR / "district-joint-credit.yaml").read_text().replace('"2025.1"', '"2099.9"')
    )
    report = replay(epochs.chain, epochs.dep, rule_sets=load_rule_sets(tmp_path))
    (missing,) = findings(report, "rule-set-document-missing")
    assert missing.actual == "0x" + epochs.content.hex() and "--rules-dir" in missing.detail
    (ep,) = report.list_epochs
    assert ep["status"] == "not-evaluated" and ep["reason"].startswith("rule-set-document-missing")
    assert report.counts["epochs_not_evaluated"] == 1 and not findings(
        report, "epoch-root-mismatch"
    )


def test_late_start_skips_epochs_and_resume_keeps_them(
    epochs: EpochHistory, tmp_path: Path
) -> None:
    ids = epochs.write(1) + epochs.write(1)  # two blocks
    epochs.publish()
    anchor, _com = epochs.anchor()
    docs = load_rule_sets(RULES_DIR)
    records = epochs.h.ledger.fetch_records(epochs.dep.deploy_block)
    mid = next(r.block_number for r in records if r.id == ids[1])

    late = replay(epochs.chain, epochs.dep, from_block=mid, rule_sets=docs)
    assert late.ok and late.partial
    (ep,) = late.list_epochs
    assert ep["status"] == "not-evaluated" and "after the deploy block" in ep["reason"]
    assert any("list epochs not re-evaluated" in n for n in late.notes)

    resume = tmp_path / "audit.json"
    part = replay(epochs.chain, epochs.dep, to_block=mid, resume=resume, rule_sets=docs)
    assert part.ok and part.partial and not part.list_epochs
    saved = json.loads(resume.read_text())["state"]
    assert saved["version"] == 2 and AuditState.from_json(saved).entries is not None
    rest = replay(epochs.chain, epochs.dep, resume=resume, rule_sets=docs)
    assert rest.ok and not rest.partial, rest.findings
    assert [(e["epoch"], e["status"], e["records"]) for e in rest.list_epochs] == [(1, "match", 2)]
    assert rest.list_epochs[0]["block"] == anchor.anchored_at
