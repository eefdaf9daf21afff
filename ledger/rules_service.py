"""Joint reward and punishment as a service: publishing rule sets, evaluation epochs, list
status, measures per agency, Merkle proofs, credit repair.

Invariants:
- A rule set is used only after its version's canonical hash is on chain
  (``RuleRegistry.ruleSetHash(keccak256(id), version_number(version))``); publishing validates
  the document first (:meth:`RuleSet.from_text`), so an invalid document anchors nothing. Every
  use re-checks the chain: a version whose hash is not there is refused
  (:class:`RuleSetNotPublished`). Every evaluation names the id, version and hash it used.
- A full evaluation reads the index (``credit_records``) at an explicit ``as_of`` no later than
  the indexed head's block time, and is anchored as an epoch: ``anchorEpoch(ruleSetHash, asOf,
  listsRoot, memberCount)``. ``listsRoot`` combines the per-list :class:`ListTree` roots of every
  list the rule set declares (built-in red and black included, empty lists too; the formula and
  :func:`~ledger.rules.epochs.evaluate_epoch`, shared with the chain-only audit, are in
  :mod:`ledger.rules.epochs`); ``listRoot`` (see :mod:`ledger.merkle_lists`) already binds its
  own leaf count, and ``memberCount`` is the sum of the list sizes.
  :meth:`RulesService.recompute_epoch` re-runs an epoch from chain logs alone (CreditRecorded
  logs in blocks before the anchoring block, block timestamps as ``recorded_at``) and the
  published document, and must give the same root; so does ``zhixin audit`` without the
  service (:mod:`ledger.audit`).
- The incremental view follows the index: every batch of indexed records re-evaluates the
  touched subjects (:class:`Evaluator`), and each list change is written with its webhook
  deliveries in one transaction. A rebuild (start, new rule set, index rollback) diffs against
  the stored status, so changes are emitted exactly once per transition.
- Repair never deletes: it is a REPAIR record (kind 6) signed by the agency that wrote the
  record and submitted like any record; it is accepted only when the category is repairable,
  the repair date is past ``repairable_from`` and every listing the record explains has its
  rule's exit condition met at that date.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from .catalog import Catalog
from .chain import Sender
from .credit import CreditLedgerClient
from .credit_service import CreditService
from .db import blocks, credit_records
from .errors import ConfigurationError, InvalidInput, NotFound, ZhixinError
from .lifecycle import DAY, LedgerEntry, resolve
from .merkle_lists import ListTree, MembershipProof, NonMembershipProof
from .records import ZERO_HASH, RecordKind, record_from_json
from .rules import Evaluation, Evaluator, ListChange, Membership, evaluate
from .rules.epochs import LISTS_DOMAIN, evaluate_epoch, list_trees, lists_root
from .rules.model import MeasureCatalog, RuleSet
from .rules_db import (
    repair_applications,
    rule_epochs,
    rule_list_changes,
    rule_list_status,
    rule_memberships,
    rule_sets,
)
from .rules_registry import RuleRegistryClient, rule_set_id, version_number
from .webhooks import WebhookService

__all__ = [
    "LISTS_DOMAIN",
    "NoPublisherKey",
    "RepairNotEligible",
    "RepairRejected",
    "RuleSetConflict",
    "RuleSetNotPublished",
    "RulesService",
    "lists_root",
    "proof_to_json",
]


class RuleSetNotPublished(InvalidInput):
    """The rule-set version is unknown here or its hash is not anchored on chain."""

    code = "rule-set-not-published"
    status = 409


class RuleSetConflict(InvalidInput):
    """This version is already on chain with another hash: publish a new version instead."""

    code = "rule-set-conflict"
    status = 409


class RepairNotEligible(InvalidInput):
    code = "repair-not-eligible"
    status = 409


class RepairRejected(InvalidInput):
    """The credit service refused the signed REPAIR record (``problem`` says why)."""

    code = "repair-rejected"


class NoPublisherKey(ZhixinError):
    """The service holds no RULE_PUBLISHER key, so it cannot anchor."""

    code = "no-publisher-key"
    status = 503


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _unhex(s: str, what: str = "value") -> bytes:
    try:
        b = bytes.fromhex(s.removeprefix("0x"))
    except (ValueError, AttributeError):
        raise InvalidInput(f"{what} must be 0x followed by 64 hex digits") from None
    if len(b) != 32:
        raise InvalidInput(f"{what} must be 0x followed by 64 hex digits")
    return b


def _mp_json(p: MembershipProof | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "list": p.list_id,
        "subject": _hex(p.subject),
        "index": p.index,
        "size": p.size,
        "path": [_hex(x) for x in p.path],
    }


def proof_to_json(p: MembershipProof | NonMembershipProof) -> dict[str, Any]:
    if isinstance(p, MembershipProof):
        return {"type": "membership", **(_mp_json(p) or {})}
    return {
        "type": "non-membership",
        "list": p.list_id,
        "subject": _hex(p.subject),
        "size": p.size,
        "left": _mp_json(p.left),
        "right": _mp_json(p.right),
    }


def entry_from_row(r: Mapping[str, Any]) -> LedgerEntry:
    """A ``credit_records`` row as the lifecycle/rules input."""
    ref = _unhex(r["ref"])
    return LedgerEntry(
        id=_unhex(r["id"]),
        kind=int(r["kind"]),
        subject=_unhex(r["subject"]),
        subject_kind=int(r["subject_kind"]),
        category=int(r["category"]),
        agency=r["agency"],
        occurred_at=int(r["occurred_at"]),
        effective_from=int(r["effective_from"]),
        effective_until=int(r["effective_until"]),
        ref=None if ref == ZERO_HASH else ref,
        seq=int(r["seq"]),
        recorded_at=int(r["block_timestamp"]),
        amount=int(r["amount"]),
    )


@dataclass
class _Active:
    rule_set: RuleSet
    hash: bytes
    evaluator: Evaluator | None = None
    last_seq: int = -1


class RulesService:
    def __init__(
        self,
        *,
        engine: Engine,
        registry: RuleRegistryClient,
        ledger: CreditLedgerClient,
        credit: CreditService,
        catalog: Catalog,
        measures: MeasureCatalog,
        publisher: Sender | None,
        webhooks: WebhookService | None = None,
        deploy_block: int = 0,
        sync_index: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.ledger = ledger
        self.credit = credit
        self.catalog = catalog
        self.measures = measures
        self.publisher = publisher
        self.webhooks = webhooks
        self.deploy_block = deploy_block
        self.sync_index = sync_index
        self.clock = clock
        self._lock = threading.RLock()
        self._active: _Active | None = None

    # ---- publishing ----

    def publish(self, text: str | bytes) -> dict[str, Any]:
        """Validate, anchor (unless the same hash is already on chain), store, activate."""
        rs = RuleSet.from_text(text, self.catalog, self.measures)  # raises with positions
        sid, vnum, content = rule_set_id(rs.id), version_number(rs.version), rs.canonical_hash()
        on_chain = self.registry.rule_set_hash(sid, vnum)
        tx_hash: str | None = None
        if on_chain is not None and on_chain != content:
            raise RuleSetConflict(
                f"{rs.id} version {rs.version} is already published with hash {_hex(on_chain)}; "
                "publish a new version",
                published_hash=_hex(on_chain),
            )
        if on_chain is None:
            if self.publisher is None:
                raise NoPublisherKey("this service holds no RULE_PUBLISHER key to anchor with")
            tx = self.registry.publish(self.publisher, sid, vnum, content)
            tx_hash = tx.tx_hash
        pub = self.registry.publication(content)
        assert pub is not None
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(rule_sets.c.content_hash).where(rule_sets.c.content_hash == _hex(content))
            ).first()
            if exists is None:
                conn.execute(
                    insert(rule_sets).values(
                        content_hash=_hex(content),
                        rule_set_id=rs.id,
                        version=rs.version,
                        version_number=str(vnum),
                        document=rs.canonical_json().decode(),
                        tx_hash=tx_hash,
                        block_number=pub.published_at,
                        registered_at=int(self.clock()),
                    )
                )
        with self._lock:
            self._active = _Active(rs, content)
            self._rebuild()
        return {
            "id": rs.id,
            "version": rs.version,
            "hash": _hex(content),
            "rule_set_id": _hex(sid),
            "version_number": str(vnum),
            "tx_hash": tx_hash,
            "block_number": pub.published_at,
            "already_published": tx_hash is None,
        }

    def rule_sets(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(rule_sets).order_by(rule_sets.c.registered_at)).all()
        return [
            {
                "id": r.rule_set_id,
                "version": r.version,
                "hash": r.content_hash,
                "version_number": r.version_number,
                "tx_hash": r.tx_hash,
                "block_number": r.block_number,
            }
            for r in rows
        ]

    def rule_set(
        self, version: str | None = None, set_id: str | None = None
    ) -> tuple[RuleSet, bytes]:
        """A stored rule set whose hash is on chain (newest when no version is given)."""
        stmt = select(rule_sets).order_by(
            rule_sets.c.registered_at.desc(), rule_sets.c.block_number.desc()
        )
        if version is not None:
            stmt = stmt.where(rule_sets.c.version == version)
        if set_id is not None:
            stmt = stmt.where(rule_sets.c.rule_set_id == set_id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt.limit(1)).first()
        what = f"rule set {set_id or '(any)'} version {version or '(latest)'}"
        if row is None:
            raise RuleSetNotPublished(f"{what} has not been published")
        rs = RuleSet.from_text(row.document, self.catalog, self.measures)
        content = rs.canonical_hash()
        on_chain = self.registry.rule_set_hash(rule_set_id(rs.id), version_number(rs.version))
        if on_chain != content:
            raise RuleSetNotPublished(f"{what}: hash {_hex(content)} is not anchored on chain")
        return rs, content

    def _rule_set_by_hash(self, content: bytes) -> RuleSet:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(rule_sets.c.document).where(rule_sets.c.content_hash == _hex(content))
            ).first()
        if row is None:
            raise RuleSetNotPublished(f"no published document with hash {_hex(content)}")
        rs = RuleSet.from_text(row.document, self.catalog, self.measures)
        if rs.canonical_hash() != content:  # pragma: no cover - the table is written by us
            raise ConfigurationError(f"stored rule set {_hex(content)} does not match its hash")
        return rs

    # ---- inputs ----

    def entries_from_index(
        self, subject: bytes | None = None, through_seq: int | None = None
    ) -> list[LedgerEntry]:
        stmt = select(credit_records).order_by(credit_records.c.seq)
        if subject is not None:
            stmt = stmt.where(credit_records.c.subject == _hex(subject))
        if through_seq is not None:
            stmt = stmt.where(credit_records.c.seq > through_seq)
        with self.engine.connect() as conn:
            return [entry_from_row(cast(Mapping[str, Any], r._mapping)) for r in conn.execute(stmt)]

    def entries_from_chain(self, to_block: int | None = None) -> list[LedgerEntry]:
        """Every accepted record read from CreditRecorded logs (no database)."""
        out: list[LedgerEntry] = []
        stamps: dict[int, int] = {}
        w3 = self.ledger.chain.w3
        for e in self.ledger.fetch_records(self.deploy_block, to_block):
            if e.block_number not in stamps:
                n = e.block_number
                block: Any = self.ledger.chain._rpc(lambda n=n: w3.eth.get_block(n))  # type: ignore[misc]
                stamps[n] = int(block["timestamp"])
            rec, log = e.log.signed.record, e.log
            out.append(
                LedgerEntry(
                    id=e.id,
                    kind=rec.kind,
                    subject=rec.subject,
                    subject_kind=rec.subject_kind,
                    category=rec.category,
                    agency=log.signer,
                    occurred_at=rec.occurred_at,
                    effective_from=rec.effective_from,
                    effective_until=rec.effective_until,
                    ref=None if rec.ref == ZERO_HASH else rec.ref,
                    seq=log.seq,
                    recorded_at=stamps[e.block_number],
                    amount=rec.amount,
                )
            )
        return out

    def indexed_head_time(self) -> int:
        with self.engine.connect() as conn:
            ts = conn.execute(select(func.max(blocks.c.timestamp))).scalar()
        return int(ts or 0)

    # ---- full evaluation and epochs ----

    @staticmethod
    def list_trees(rs: RuleSet, ev: Evaluation) -> dict[str, ListTree]:
        return list_trees(rs, ev)

    def evaluate_full(
        self, as_of: int | None = None, version: str | None = None, set_id: str | None = None
    ) -> dict[str, Any]:
        """Evaluate every subject from the index at ``as_of`` and anchor the result as an epoch."""
        rs, content = self.rule_set(version, set_id)
        if self.publisher is None:
            raise NoPublisherKey("this service holds no RULE_PUBLISHER key to anchor with")
        if self.sync_index is not None:
            self.sync_index()
        head_time = self.indexed_head_time()
        as_of = head_time if as_of is None else as_of
        if as_of > head_time:
            raise InvalidInput(
                f"as_of {as_of} is after the indexed ledger's newest block ({head_time}): "
                "an epoch must not depend on records not yet written"
            )
        entries = self.entries_from_index()
        com = evaluate_epoch(rs, self.catalog, entries, as_of)
        ev, root, count = com.evaluation, com.lists_root, com.member_count
        anchor = self.registry.anchor_epoch(self.publisher, content, as_of, root, count)
        list_roots = com.list_roots()
        with self.engine.begin() as conn:
            conn.execute(
                insert(rule_epochs).values(
                    epoch=anchor.epoch,
                    rule_set_hash=_hex(content),
                    as_of=as_of,
                    lists_root=_hex(root),
                    member_count=count,
                    list_roots=json.dumps(list_roots, sort_keys=True),
                    evaluation_hash=_hex(ev.canonical_hash()),
                    record_count=len(entries),
                    tx_hash=anchor.tx_hash or "",
                    block_number=anchor.anchored_at,
                    created_at=int(self.clock()),
                )
            )
            rows = [
                {
                    "epoch": anchor.epoch,
                    "list_id": m.list_id,
                    "subject": _hex(m.subject),
                    "rule_id": m.rule_id,
                    "subject_kind": m.subject_kind,
                    "explanation": json.dumps(m.to_json(), sort_keys=True),
                }
                for m in ev.memberships
            ]
            for i in range(0, len(rows), 500):
                conn.execute(insert(rule_memberships), rows[i : i + 500])
        return {
            "epoch": anchor.epoch,
            "rule_set": {"id": rs.id, "version": rs.version, "hash": _hex(content)},
            "as_of": as_of,
            "lists_root": _hex(root),
            "member_count": count,
            "lists": list_roots,
            "memberships": len(ev.memberships),
            "records": len(entries),
            "evaluation_hash": _hex(ev.canonical_hash()),
            "tx_hash": anchor.tx_hash,
            "block_number": anchor.anchored_at,
            "errors": len(ev.errors),
            "anomalies": len(ev.anomalies),
        }

    def epoch(self, n: int | None = None) -> dict[str, Any]:
        """A stored epoch (newest when ``n`` is None) with its on-chain anchor."""
        stmt = select(rule_epochs).order_by(rule_epochs.c.epoch.desc()).limit(1)
        if n is not None:
            stmt = select(rule_epochs).where(rule_epochs.c.epoch == n)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"no epoch {n}" if n is not None else "no epoch has been anchored")
        rs = self._rule_set_by_hash(_unhex(row.rule_set_hash))
        chain = self.registry.epoch(int(row.epoch))
        return {
            "epoch": int(row.epoch),
            "rule_set": {"id": rs.id, "version": rs.version, "hash": row.rule_set_hash},
            "as_of": int(row.as_of),
            "lists_root": row.lists_root,
            "member_count": int(row.member_count),
            "lists": json.loads(row.list_roots),
            "evaluation_hash": row.evaluation_hash,
            "tx_hash": row.tx_hash,
            "block_number": int(row.block_number),
            "anchored": chain is not None
            and _hex(chain.lists_root) == row.lists_root
            and _hex(chain.rule_set_hash) == row.rule_set_hash
            and chain.as_of == int(row.as_of),
        }

    def recompute_epoch(self, n: int) -> dict[str, Any]:
        """Re-run epoch ``n`` from chain data alone; ``matches`` says if the root reproduces."""
        anchor = self.registry.epoch(n)
        if anchor is None:
            raise NotFound(f"epoch {n} is not anchored on chain")
        rs = self._rule_set_by_hash(anchor.rule_set_hash)
        com = evaluate_epoch(
            rs, self.catalog, self.entries_from_chain(anchor.anchored_at - 1), anchor.as_of
        )
        return {
            "epoch": n,
            "lists_root": _hex(com.lists_root),
            "member_count": com.member_count,
            "anchored_root": _hex(anchor.lists_root),
            "matches": com.matches(anchor.lists_root, anchor.member_count),
            "records": com.records,
        }

    def _epoch_trees(self, n: int) -> tuple[dict[str, Any], dict[str, ListTree]]:
        info = self.epoch(n)
        rs = self._rule_set_by_hash(_unhex(info["rule_set"]["hash"]))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rule_memberships.c.list_id, rule_memberships.c.subject).where(
                    rule_memberships.c.epoch == n
                )
            ).all()
        members: dict[str, set[bytes]] = {lid: set() for lid in rs.list_ids}
        for lid, subj in rows:
            members.setdefault(lid, set()).add(_unhex(subj))
        return info, {lid: ListTree(lid, s) for lid, s in members.items()}

    def proof(self, n: int | None, list_id: str, subject: bytes) -> dict[str, Any]:
        """Membership or non-membership proof of ``subject`` on ``list_id`` at epoch ``n``."""
        if n is None:
            n = self.epoch()["epoch"]
        info, trees = self._epoch_trees(n)
        if list_id not in trees:
            raise NotFound(f"list {list_id!r} is not in epoch {n}'s rule set")
        tree = trees[list_id]
        p: MembershipProof | NonMembershipProof
        p = (
            tree.membership_proof(subject)
            if subject in set(tree.subjects)
            else tree.non_membership_proof(subject)
        )
        return {
            "epoch": n,
            "as_of": info["as_of"],
            "rule_set": info["rule_set"],
            "list": list_id,
            "member": isinstance(p, MembershipProof),
            "proof": proof_to_json(p),
            "list_root": _hex(tree.root),
            "list_roots": {lid: _hex(t.root) for lid, t in sorted(trees.items())},
            "lists_root": info["lists_root"],
            "anchored": info["anchored"],
            "how_to_verify": (
                "verify the proof against list_root (ledger.merkle_lists), then "
                "lists_root = SHA-256(0x03 || 'zhixin.lists.v1' || u16be(n) || for each list id "
                "ascending: u16be(len) || id || root) must equal RuleRegistry.epoch(epoch)"
            ),
        }

    # ---- status, measures, publicity ----

    def _subject_result(
        self, subject: bytes, as_of: int | None
    ) -> tuple[RuleSet, bytes, int, list[Membership], list[LedgerEntry]]:
        rs, content = self.rule_set()
        entries = self.entries_from_index(subject)
        if as_of is None:
            as_of = max([int(self.clock()), *(e.recorded_at for e in entries)])
        ev = evaluate(rs, self.catalog, entries, as_of)
        return rs, content, as_of, list(ev.memberships), entries

    def _explain(self, rs: RuleSet, m: Membership) -> dict[str, Any]:
        rule = next(r for r in rs.rules if r.id == m.rule_id)
        decl = rs.list_decl(m.list_id)
        return {
            **m.to_json(),
            "list_name": {"zh": decl.name_zh, "en": decl.name_en},
            "list_kind": decl.kind,
            "rule_name": {"zh": rule.name_zh, "en": rule.name_en},
            "legal_basis": rule.legal_basis,
            "entry_conditions": {"zh": rule.entry_conditions_zh, "en": rule.entry_conditions_en},
            "exit_conditions": {"zh": rule.exit_conditions_zh, "en": rule.exit_conditions_en},
        }

    def status(self, subject: bytes, as_of: int | None = None) -> dict[str, Any]:
        """Which lists ``subject`` is on at ``as_of``, each with rule and triggering records."""
        rs, content, as_of, mems, _ = self._subject_result(subject, as_of)
        on = sorted({m.list_id for m in mems})
        latest: dict[str, Any] | None = None
        with self.engine.connect() as conn:
            ep = conn.execute(select(func.max(rule_epochs.c.epoch))).scalar()
            if ep is not None:
                lists = conn.execute(
                    select(rule_memberships.c.list_id).where(
                        rule_memberships.c.epoch == ep,
                        rule_memberships.c.subject == _hex(subject),
                    )
                ).all()
                latest = {"epoch": int(ep), "lists": sorted({r[0] for r in lists})}
        return {
            "subject": _hex(subject),
            "as_of": as_of,
            "rule_set": {"id": rs.id, "version": rs.version, "hash": _hex(content)},
            "lists": on,
            "memberships": [self._explain(rs, m) for m in mems],
            "latest_epoch": latest,
        }

    def measures_for(self, subject: bytes, agency: str, as_of: int | None = None) -> dict[str, Any]:
        """The measures ``agency`` (a sector slug, or an address with webhook sectors) applies."""
        if agency.startswith("0x"):
            sectors = self.webhooks.sectors_of(agency) if self.webhooks else set()
        else:
            sectors = {agency}
        known = {m.agency for m in self.measures.measures}
        if not sectors & known:
            raise InvalidInput(
                f"agency {agency!r} applies no published measure; sectors: {sorted(known)}"
            )
        rs, content, as_of, mems, _ = self._subject_result(subject, as_of)
        out: dict[str, dict[str, Any]] = {}
        for m in mems:
            kind = "person" if m.subject_kind == 1 else "entity"
            for mid in m.measures:
                measure = self.measures.get(mid)
                if measure is None or measure.agency not in sectors:
                    continue
                targets = [
                    t
                    for t in measure.targets
                    if t == kind or (t == "legal_representative" and kind == "entity")
                ]
                if not targets:
                    continue
                entry = out.setdefault(
                    mid,
                    {
                        "id": mid,
                        "kind": measure.kind,
                        "agency": measure.agency,
                        "name": {"zh": measure.name_zh, "en": measure.name_en},
                        "description": {"zh": measure.description_zh, "en": measure.description_en},
                        "legal_basis": measure.legal_basis,
                        "targets": targets,
                        "because": [],
                    },
                )
                entry["because"].append(
                    {"list": m.list_id, "rule": m.rule_id, "publicity_until": m.publicity_until}
                )
        return {
            "subject": _hex(subject),
            "agency": agency,
            "sectors": sorted(sectors),
            "as_of": as_of,
            "rule_set": {"id": rs.id, "version": rs.version, "hash": _hex(content)},
            "measures": [out[k] for k in sorted(out)],
        }

    def publicity(
        self, list_id: str, *, include_persons: bool, epoch: int | None = None
    ) -> dict[str, Any]:
        """Entries of ``list_id`` at an epoch still in their publicity period."""
        info = self.epoch(epoch)
        rs = self._rule_set_by_hash(_unhex(info["rule_set"]["hash"]))
        if list_id not in rs.list_ids:
            raise NotFound(f"no list {list_id!r} in rule set {rs.id} {rs.version}")
        stmt = select(rule_memberships).where(
            rule_memberships.c.epoch == info["epoch"], rule_memberships.c.list_id == list_id
        )
        if not include_persons:
            stmt = stmt.where(rule_memberships.c.subject_kind == 2)
        stmt = stmt.order_by(rule_memberships.c.subject, rule_memberships.c.rule_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        as_of = info["as_of"]
        entries = []
        for r in rows:
            exp = json.loads(r.explanation)
            if exp["publicity_until"] and exp["publicity_until"] <= as_of:
                continue
            rule = next(x for x in rs.rules if x.id == r.rule_id)
            entries.append(
                {
                    **exp,
                    "rule_name": {"zh": rule.name_zh, "en": rule.name_en},
                    "exit_conditions": {
                        "zh": rule.exit_conditions_zh,
                        "en": rule.exit_conditions_en,
                    },
                }
            )
        decl = rs.list_decl(list_id)
        return {
            "epoch": info["epoch"],
            "as_of": as_of,
            "list": {
                "id": list_id,
                "kind": decl.kind,
                "name_zh": decl.name_zh,
                "name_en": decl.name_en,
            },
            "rule_set": info["rule_set"],
            "includes_persons": include_persons,
            "entries": entries,
        }

    # ---- incremental ----

    def start(self) -> None:
        """Load the newest published rule set (if any) and build the incremental view."""
        with self._lock:
            try:
                rs, content = self.rule_set()
            except RuleSetNotPublished:
                return
            self._active = _Active(rs, content)
            self._rebuild()

    def _now(self, entries: Iterable[LedgerEntry]) -> int:
        return max([int(self.clock()), *(e.recorded_at for e in entries)])

    def _rebuild(self) -> None:
        """Evaluate everyone with the active rule set and emit the diff to the stored status."""
        active = self._active
        if active is None:
            return
        entries = self.entries_from_index()
        ev = Evaluator(active.rule_set, self.catalog, self._now(entries), entries)
        active.evaluator = ev
        active.last_seq = max((e.seq for e in entries), default=-1)
        current = {m.key(): m for m in ev.evaluation().memberships}
        with self.engine.connect() as conn:
            stored = {
                (r.list_id, _unhex(r.subject), r.rule_id): r
                for r in conn.execute(select(rule_list_status))
            }
        changes: list[ListChange] = []
        for key in sorted(stored.keys() - current.keys()):
            row = stored[key]
            m = _membership_from_json(json.loads(row.explanation))
            changes.append(ListChange("left", key[0], key[1], key[2], m))
        for key in sorted(current.keys() - stored.keys()):
            changes.append(ListChange("entered", key[0], key[1], key[2], current[key]))
        stale = [
            k
            for k in current.keys() & stored.keys()
            if stored[k].rule_set_hash != _hex(active.hash)
        ]
        self._persist(changes, active.last_seq, refresh=[current[k] for k in stale])

    def on_records(self, _records: Sequence[Any] = ()) -> None:
        """Indexer callback: apply every newly indexed record in seq order."""
        with self._lock:
            active = self._active
            if active is None or active.evaluator is None:
                return
            with self.engine.connect() as conn:
                top = conn.execute(select(func.max(credit_records.c.seq))).scalar()
            if top is not None and int(top) < active.last_seq:  # the index rolled back
                self._rebuild()
                return
            new = self.entries_from_index(through_seq=active.last_seq)
            if not new:
                return
            ev = active.evaluator
            changes: list[tuple[ListChange, int]] = []
            as_of = self._now(new)
            if as_of > ev.as_of:
                changes += [(c, -1) for c in ev.advance(as_of)]
            for e in new:
                changes += [(c, e.seq) for c in ev.apply(e)]
            active.last_seq = new[-1].seq
            self._persist_seq(changes)

    def _persist(
        self, changes: list[ListChange], seq: int, refresh: Sequence[Membership] = ()
    ) -> None:
        self._persist_seq([(c, seq) for c in changes], refresh)

    def _persist_seq(
        self, changes: Sequence[tuple[ListChange, int]], refresh: Sequence[Membership] = ()
    ) -> None:
        active = self._active
        assert active is not None
        rs, content = active.rule_set, _hex(active.hash)
        now = int(self.clock())
        queued = 0
        with self.engine.begin() as conn:
            for m in refresh:
                self._upsert_status(conn, m, content, -1, now)
            for change, seq in changes:
                m = change.membership
                where = (
                    (rule_list_status.c.list_id == change.list_id)
                    & (rule_list_status.c.subject == _hex(change.subject))
                    & (rule_list_status.c.rule_id == change.rule_id)
                )
                if change.change == "left":
                    conn.execute(delete(rule_list_status).where(where))
                else:
                    self._upsert_status(conn, m, content, seq, now)
                explanation = json.dumps(m.to_json(), sort_keys=True)
                res = conn.execute(
                    insert(rule_list_changes).values(
                        change=change.change,
                        list_id=change.list_id,
                        subject=_hex(change.subject),
                        rule_id=change.rule_id,
                        rule_set_hash=content,
                        explanation=explanation,
                        seq=seq,
                        created_at=now,
                    )
                )
                change_id = int(cast(Any, res.inserted_primary_key)[0])
                if self.webhooks is not None:
                    queued += self._enqueue(conn, rs, content, change, change_id, seq, now)
        if queued and self.webhooks is not None:
            self.webhooks.wake()

    @staticmethod
    def _upsert_status(conn: Connection, m: Membership, content: str, seq: int, now: int) -> None:
        where = (
            (rule_list_status.c.list_id == m.list_id)
            & (rule_list_status.c.subject == _hex(m.subject))
            & (rule_list_status.c.rule_id == m.rule_id)
        )
        conn.execute(delete(rule_list_status).where(where))
        conn.execute(
            insert(rule_list_status).values(
                list_id=m.list_id,
                subject=_hex(m.subject),
                rule_id=m.rule_id,
                rule_set_hash=content,
                subject_kind=m.subject_kind,
                explanation=json.dumps(m.to_json(), sort_keys=True),
                since_seq=seq,
                updated_at=now,
            )
        )

    def _enqueue(
        self,
        conn: Connection,
        rs: RuleSet,
        content: str,
        change: ListChange,
        change_id: int,
        seq: int,
        now: int,
    ) -> int:
        assert self.webhooks is not None
        m = change.membership
        measures = [self.measures.get(mid) for mid in m.measures]
        found = [x for x in measures if x is not None]
        if not found:
            return 0
        decl = rs.list_decl(change.list_id)
        rule = next(r for r in rs.rules if r.id == change.rule_id)
        body = {
            "id": f"lc-{change_id}",
            "type": f"list.{change.change}",
            "list": {
                "id": decl.id,
                "kind": decl.kind,
                "name_zh": decl.name_zh,
                "name_en": decl.name_en,
            },
            "subject": _hex(change.subject),
            "subject_kind": "person" if m.subject_kind == 1 else "entity",
            "rule": {"id": rule.id, "name_zh": rule.name_zh, "name_en": rule.name_en},
            "rule_set": {"id": rs.id, "version": rs.version, "hash": content},
            "membership": m.to_json(),
            "measures": [
                {
                    "id": x.id,
                    "agency": x.agency,
                    "kind": x.kind,
                    "name_zh": x.name_zh,
                    "name_en": x.name_en,
                    "targets": list(x.targets),
                }
                for x in found
            ],
            "seq": seq,
            "created_at": now,
        }
        return self.webhooks.enqueue(conn, str(body["id"]), {x.agency for x in found}, body)

    def changes(self, subject: bytes | None = None, limit: int = 100) -> list[dict[str, Any]]:
        stmt = select(rule_list_changes).order_by(rule_list_changes.c.id.desc()).limit(limit)
        if subject is not None:
            stmt = stmt.where(rule_list_changes.c.subject == _hex(subject))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            {
                "id": int(r.id),
                "change": r.change,
                "list": r.list_id,
                "subject": r.subject,
                "rule": r.rule_id,
                "rule_set_hash": r.rule_set_hash,
                "seq": int(r.seq),
                "membership": json.loads(r.explanation),
            }
            for r in reversed(rows)
        ]

    # ---- repair ----

    def apply_repair(self, subject: bytes, record_id: str, statement: str) -> dict[str, Any]:
        """A subject asks for repair of one of its records: stored, nothing on chain yet."""
        rid = _hex(_unhex(record_id, "record"))
        if not isinstance(statement, str) or not 1 <= len(statement) <= 4000:
            raise InvalidInput("statement must be a text of 1..4000 characters")
        with self.engine.connect() as conn:
            row = conn.execute(select(credit_records).where(credit_records.c.id == rid)).first()
        if row is None:
            raise NotFound(f"no record {rid} on the ledger")
        if row.subject != _hex(subject):
            raise InvalidInput("the record does not concern this subject")
        if row.kind not in (RecordKind.RECORD, RecordKind.AMEND):
            raise InvalidInput("only a record (or its amendment) can be repaired")
        cat = self.catalog.by_id(row.category)
        if not cat.repairable:
            raise RepairNotEligible(f"records of category {cat.code} cannot be repaired")
        app_id = "0x" + secrets.token_hex(16)
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(
                insert(repair_applications).values(
                    id=app_id,
                    record_id=rid,
                    subject=row.subject,
                    subject_kind=row.subject_kind,
                    agency=row.agency,
                    statement=statement,
                    status="pending",
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.repair(app_id)

    def repair(self, app_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(repair_applications).where(repair_applications.c.id == app_id)
            ).first()
        if row is None:
            raise NotFound(f"no repair application {app_id}")
        return dict(row._mapping)

    def repair_eligibility(self, app_id: str, at: int | None = None) -> dict[str, Any]:
        """Whether the record may be repaired at ``at``: the rules' exit conditions decide."""
        app = self.repair(app_id)
        subject = _unhex(app["subject"])
        rs, _content = self.rule_set()
        entries = self.entries_from_index(subject)
        at = self._now(entries) if at is None else at
        view = resolve(entries, at, with_versions=False)
        target = _unhex(app["record_id"])
        rec = next((c for c in view.current if target in c.chain), None)
        reasons: list[str] = []
        blocking: list[dict[str, Any]] = []
        if rec is None:
            reasons.append("the record is not visible at that date")
        else:
            cat = self.catalog.by_id(rec.category)
            if rec.repaired_from is not None:
                reasons.append("the record was already repaired")
            if rec.withdrawn:
                reasons.append("the record was withdrawn")
            if not cat.repairable:
                reasons.append(f"category {cat.code} is not repairable")
            else:
                since = rec.effective_from + (cat.repair_after_days or 0) * DAY
                if at < since:
                    reasons.append(
                        f"repair is possible from {since} ({cat.repair_after_days} "
                        "days after the record took effect)"
                    )
            ev = evaluate(rs, self.catalog, entries, at)
            for m in ev.memberships:
                if set(m.triggering) & set(rec.chain) and not m.exit_eligible:
                    rule = next(r for r in rs.rules if r.id == m.rule_id)
                    blocking.append(
                        {
                            "list": m.list_id,
                            "rule": m.rule_id,
                            "exit_conditions": {
                                "zh": rule.exit_conditions_zh,
                                "en": rule.exit_conditions_en,
                            },
                        }
                    )
            if blocking:
                reasons.append(
                    "exit conditions not met for: "
                    + ", ".join(f"{b['rule']} ({b['list']})" for b in blocking)
                )
        return {
            "application": app_id,
            "at": at,
            "eligible": not reasons,
            "reasons": reasons,
            "blocking": blocking,
            "record": rec and _hex(rec.id),
            "category": rec and self.catalog.by_id(rec.category).code,
        }

    def prepare_repair(self, app_id: str, effective_from: int | None = None) -> dict[str, Any]:
        """The REPAIR record for the writing agency to sign (checked for eligibility first)."""
        app = self.repair(app_id)
        if app["status"] != "pending":
            raise RepairNotEligible(f"application {app_id} is already {app['status']}")
        elig = self.repair_eligibility(app_id, effective_from)
        if not elig["eligible"]:
            raise RepairNotEligible("; ".join(elig["reasons"]), blocking=elig["blocking"])
        with self.engine.connect() as conn:
            row = conn.execute(
                select(credit_records).where(credit_records.c.id == elig["record"])
            ).first()
        assert row is not None
        return self._prepare_repair_record(app, row, elig["at"])

    def _prepare_repair_record(self, app: Mapping[str, Any], row: Any, at: int) -> dict[str, Any]:
        from .records import CreditRecord, record_digest, record_to_json, typed_data

        now = int(self.clock())
        reason = f"credit repair, application {app['id']}"
        rec = CreditRecord(
            kind=int(RecordKind.REPAIR),
            subject_kind=int(row.subject_kind),
            subject=_unhex(row.subject),
            category=int(row.category),
            occurred_at=at,
            effective_from=at,
            deadline=max(now, at) + 24 * 3600,
            nonce=self.credit.next_nonce(app["agency"]),
            reason_hash=hashlib.sha256(reason.encode()).digest(),
            ref=_unhex(row.id),
        )
        domain = self.credit.domain
        return {
            "application": app["id"],
            "agency": app["agency"],
            "record": record_to_json(rec),
            "id": _hex(record_digest(rec, domain)),
            "typedData": typed_data(rec, domain),
            "reason": reason,
        }

    def approve_repair(self, app_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
        """Submit the agency-signed REPAIR record through the credit service."""
        app = self.repair(app_id)
        if app["status"] != "pending":
            raise RepairNotEligible(f"application {app_id} is already {app['status']}")
        if not isinstance(item, Mapping) or "record" not in item:
            raise InvalidInput("expected a signed record {record, signature}")
        rec = record_from_json(item["record"])
        if rec.kind != RecordKind.REPAIR or _hex(rec.ref) != app["record_id"]:
            raise InvalidInput("the signed record must be a REPAIR of the application's record")
        elig = self.repair_eligibility(app_id, rec.effective_from)
        if not elig["eligible"]:
            raise RepairNotEligible("; ".join(elig["reasons"]), blocking=elig["blocking"])
        result = self.credit.submit([dict(item)])[0]
        if result.status == "rejected":
            p = result.problem or {}
            raise RepairRejected(
                p.get("detail", "repair record rejected"),
                problem=p.get("code"),
                status_code=p.get("status"),
            )
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(
                update(repair_applications)
                .where(repair_applications.c.id == app_id)
                .values(
                    status="approved",
                    repair_id=result.id,
                    effective_from=rec.effective_from,
                    updated_at=now,
                )
            )
        return self.repair(app_id)


def _membership_from_json(d: Mapping[str, Any]) -> Membership:
    return Membership(
        list_id=d["list"],
        subject=_unhex(d["subject"]),
        subject_kind=1 if d["subject_kind"] == "person" else 2,
        rule_id=d["rule"],
        triggering=tuple(_unhex(t) for t in d["triggering"]),
        since=int(d["since"]),
        publicity_until=int(d["publicity_until"]),
        exit_eligible=bool(d["exit_eligible"]),
        measures=tuple(d["measures"]),
    )
