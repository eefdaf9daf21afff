"""Independent audit of the ledger from chain logs alone: pure verifiers and the report model.

The auditor trusts nothing the service wrote. It folds the logs of the deployment's contracts
(Roles, CreditLedger, DIDRegistry, CredentialRegistry, RuleRegistry) in chain order and checks:
every record's EIP-712 id and signature, that its signer held AGENCY with the category in scope
*at that log's position* (role state rebuilt from Roles events, never from calls at past blocks:
the node is pruned), seq continuity, the running hash per record and against ``state()``, nonce
reuse, lifecycle references (earlier record, same agency as the original's writer, same subject,
right target kind), ISSUER for DID recoveries / credential anchors / status changes,
RULE_PUBLISHER for rule sets, list epochs and log checkpoints, and every anchored checkpoint root
against the RFC 9162 tree of the record ids seen so far.

Invariants:
- Pure (python-tuf style): logs, block headers and ``now`` in, findings out; no I/O, no clock.
  :mod:`ledger.audit_replay` is the I/O adapter.
- Never raises on data: every defect becomes a :class:`Finding` naming the check, record id,
  block, tx and log index. Logs must be fed in chain order; out-of-order, duplicate or
  ``removed`` logs are reported and not applied.
- Records are decoded only through :func:`ledger.records.decode_recorded_log` (which recovers
  the signer from the id topic and the signature, as the ledger did); the auditor then checks
  that the id is :func:`~ledger.records.record_digest` of the decoded fields. Nothing here
  depends on the event's word layout.
- :func:`record_facts` (decode, hash, ecrecover) is stateless and runs in worker processes;
  :class:`Auditor` (order-dependent state) runs in one process. :class:`AuditState` is JSON
  serialisable so a long replay resumes where it stopped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from eth_abi import decode as abi_decode
from eth_utils import keccak as _eth_keccak
from eth_utils import to_checksum_address

from .errors import InvalidInput
from .records import (
    RECORDED_TOPIC,
    ZERO_HASH,
    Eip712Domain,
    InvalidSignature,
    decode_recorded_log,
    record_digest,
)
from .roles import Role, role_from_id
from .tlog import (
    Checkpoint,
    MerkleTree,
    TlogError,
    leaf_hash,
    open_checkpoint,
)

try:  # safe-pysha3: ~5x faster per call than eth_utils.keccak (which adds type dispatch)
    import sha3 as _sha3

    def keccak(data: bytes) -> bytes:
        return _sha3.keccak_256(data).digest()

except ImportError:  # pragma: no cover - pinned dependency

    def keccak(data: bytes) -> bytes:
        return _eth_keccak(data)


__all__ = [
    "CHECKPOINT_TOPIC",
    "CREDENTIAL_ANCHORED_TOPIC",
    "DID_RECOVERED_TOPIC",
    "EPOCH_TOPIC",
    "ROLE_GRANTED_TOPIC",
    "ROLE_REVOKED_TOPIC",
    "RULESET_TOPIC",
    "SCOPE_GRANTED_TOPIC",
    "SCOPE_REVOKED_TOPIC",
    "STATUS_CHANGED_TOPIC",
    "STATUS_LIST_CREATED_TOPIC",
    "AuditReport",
    "AuditState",
    "Auditor",
    "BlockHeader",
    "Finding",
    "RecordFacts",
    "RuleSetDoc",
    "check_signed_checkpoint",
    "record_facts",
    "role_event_row",
]

ROLE_GRANTED_TOPIC = _eth_keccak(text="RoleGranted(bytes32,address,address)")
ROLE_REVOKED_TOPIC = _eth_keccak(text="RoleRevoked(bytes32,address,address)")
SCOPE_GRANTED_TOPIC = _eth_keccak(text="AgencyScopeGranted(address,uint16[],address)")
SCOPE_REVOKED_TOPIC = _eth_keccak(text="AgencyScopeRevoked(address,uint16[],address)")
DID_RECOVERED_TOPIC = _eth_keccak(text="DIDOwnerRecovered(address,address,address,bytes32,uint256)")
CREDENTIAL_ANCHORED_TOPIC = _eth_keccak(
    text="CredentialAnchored(bytes32,address,bytes32,uint64,uint64,uint256,uint256)"
)
STATUS_LIST_CREATED_TOPIC = _eth_keccak(text="StatusListCreated(uint256,address,uint8,uint256)")
STATUS_CHANGED_TOPIC = _eth_keccak(text="StatusChanged(uint256,uint256,bool,address)")
RULESET_TOPIC = _eth_keccak(text="RuleSetPublished(bytes32,uint64,bytes32,address)")
EPOCH_TOPIC = _eth_keccak(text="ListEpochAnchored(uint256,bytes32,uint64,bytes32,uint64,address)")
CHECKPOINT_TOPIC = _eth_keccak(text="CheckpointAnchored(uint64,bytes32,address)")

_ROLE_TOPICS = (ROLE_GRANTED_TOPIC, ROLE_REVOKED_TOPIC, SCOPE_GRANTED_TOPIC, SCOPE_REVOKED_TOPIC)
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _N // 2
_S_MASK = (1 << 255) - 1
_U64 = (1 << 64) - 1
_U128 = (1 << 128) - 1
_RECORD, _AMEND, _WITHDRAW, _OBJECTION, _UPHELD, _REPAIR, _REJECTED = range(1, 8)
_KIND_NAMES = {
    1: "RECORD",
    2: "AMEND",
    3: "WITHDRAW",
    4: "OBJECTION",
    5: "RESOLUTION_UPHELD",
    6: "REPAIR",
    7: "RESOLUTION_REJECTED",
}
# kinds whose ref must name a record or an amendment; resolutions must name an objection
_VERSION_TARGETS = (_AMEND, _WITHDRAW, _OBJECTION, _REPAIR)


# ---- small helpers ----


def _raw(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def _int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16) if value.startswith(("0x", "0X")) else int(value)
    return int(value)


def _hex(b: bytes | None) -> str | None:
    return None if b is None else "0x" + bytes(b).hex()


def _addr(b: bytes) -> str:
    return to_checksum_address(b[-20:])


# ---- model ----


@dataclass(frozen=True)
class Finding:
    """One failed check, with everything needed to find the log on any explorer."""

    check: str
    detail: str
    record_id: str | None = None
    block: int | None = None
    tx: str | None = None
    log_index: int | None = None
    field: str | None = None
    expected: str | None = None
    actual: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Finding:
        return cls(**{k: doc.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class BlockHeader:
    """The header fields the audit compares logs against (fetched by the adapter)."""

    number: int
    hash: bytes
    timestamp: int


@dataclass(frozen=True)
class RuleSetDoc:
    """A rule-set document available to the auditor: its on-chain id, version and hash."""

    name: str
    set_id: bytes
    version: int
    content_hash: bytes


class RecordFacts(NamedTuple):
    """What one CreditRecorded log says, plus what recomputing it gave (order-free work)."""

    id: bytes
    agency: bytes  # 20 bytes: recovered from the id and signature (the log does not name it)
    subject: bytes
    kind: int
    subject_kind: int
    category: int
    ref: bytes
    nonce: int
    seq: int
    head_after: bytes
    deadline: int
    digest: bytes | None  # recomputed EIP-712 digest; None: the log did not decode
    signer: bytes | None  # recovered 20-byte address; None: the log did not decode
    problems: tuple[tuple[str, str], ...]  # (check, detail) that need no chain state


# ---- order-free stage: decode, hash, recover ----


@lru_cache(maxsize=16)
def _domain(chain_id: int, ledger: str) -> Eip712Domain:
    return Eip712Domain(chain_id, ledger)


def _shape_problems(
    kind: int, subject_kind: int, category: int, subject: bytes, ref: bytes, eff: int, until: int
) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    if kind not in _KIND_NAMES:
        out.append(("record.shape", f"unknown record kind {kind}"))
    elif kind == _RECORD and ref != ZERO_HASH:
        out.append(("record.shape", "an original RECORD carries a ref"))
    elif kind != _RECORD and ref == ZERO_HASH:
        out.append(("record.shape", f"{_KIND_NAMES[kind]} names no record (ref is zero)"))
    if category == 0:
        out.append(("record.shape", "category 0 is reserved"))
    if subject_kind not in (1, 2):
        out.append(("record.shape", f"subject kind {subject_kind} is not 1 or 2"))
    if subject == ZERO_HASH:
        out.append(("record.shape", "subject pseudonym is zero"))
    if until != 0 and until < eff:
        out.append(("record.shape", f"effectiveUntil {until} is before effectiveFrom {eff}"))
    return tuple(out)


def _facts(topics: Any, data: Any, domain: Eip712Domain) -> RecordFacts:
    t = [_raw(x) for x in topics]
    rid = t[1] if len(t) > 1 else ZERO_HASH
    try:
        dec = decode_recorded_log({"topics": t, "data": _raw(data)})
    except Exception as exc:
        check = "record.signature" if isinstance(exc, InvalidSignature) else "record.decode"
        detail = getattr(exc, "detail", None) or str(exc)
        return RecordFacts(
            rid, bytes(20), ZERO_HASH, 0, 0, 0, ZERO_HASH, 0, -1, ZERO_HASH, 0, None, None,
            ((check, f"CreditRecorded log rejected: {detail}"),),
        )  # fmt: skip
    rec = dec.signed.record
    problems = _shape_problems(
        rec.kind, rec.subject_kind, rec.category, rec.subject, rec.ref,
        rec.effective_from, rec.effective_until,
    )  # fmt: skip
    signer = bytes.fromhex(dec.signer[2:])
    return RecordFacts(
        rid, signer, rec.subject, rec.kind, rec.subject_kind, rec.category, rec.ref, rec.nonce,
        dec.seq, dec.head_after, rec.deadline, record_digest(rec, domain), signer, problems,
    )  # fmt: skip


def record_facts(items: Sequence[tuple[Any, Any]], chain_id: int, ledger: str) -> list[RecordFacts]:
    """Decode (recovering the signer from the id and signature) and re-hash CreditRecorded
    logs given as (topics, data) pairs. Stateless, so it runs in worker processes."""
    domain = _domain(chain_id, ledger)
    return [_facts(topics, data, domain) for topics, data in items]


# ---- role events (pure decoding, same row shape as the index) ----


def role_event_row(log: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``role_events`` row the index should hold for a Roles log (None: not a role event)."""
    topics = [_raw(t) for t in log["topics"]]
    if not topics or topics[0] not in _ROLE_TOPICS:
        return None
    t0 = topics[0]
    if t0 in (ROLE_GRANTED_TOPIC, ROLE_REVOKED_TOPIC):
        role = role_from_id(topics[1])
        event = "granted" if t0 == ROLE_GRANTED_TOPIC else "revoked"
        role_name = role.value if role else "0x" + topics[1].hex()
        account, sender, cats = _addr(topics[2]), _addr(topics[3]), ""
    else:
        event = "scope+" if t0 == SCOPE_GRANTED_TOPIC else "scope-"
        role_name, account, sender = "AGENCY", _addr(topics[1]), _addr(topics[2])
        (values,) = abi_decode(["uint16[]"], _raw(log["data"]))
        cats = ",".join(str(c) for c in values)
    return {
        "event": event,
        "role": role_name,
        "account": account,
        "categories": cats,
        "sender": sender,
        "block_number": _int(log["blockNumber"]),
        "block_hash": "0x" + _raw(log["blockHash"]).hex(),
        "tx_hash": "0x" + _raw(log["transactionHash"]).hex(),
        "log_index": _int(log["logIndex"]),
    }


# ---- order-dependent state ----


@dataclass
class AuditState:
    """Everything the fold needs to continue after block ``next_block - 1``; JSON round-trips."""

    next_block: int
    seq: int | None = 0  # next expected seq; None: unknown (replay started mid-history)
    head: bytes | None = ZERO_HASH  # running hash so far; None: unknown
    partial_start: bool = False
    last_pos: tuple[int, int] = (-1, -1)
    roles: dict[str, set[bytes]] = field(default_factory=dict)
    scope: dict[bytes, set[int]] = field(default_factory=dict)
    agencies: list[bytes] = field(default_factory=list)
    # record id -> (agency index, kind, subject); insertion order = ledger order
    records: dict[bytes, tuple[int, int, bytes]] = field(default_factory=dict)
    nonces: dict[int, set[int]] = field(default_factory=dict)
    checkpoint_size: int = 0
    epoch: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "next_block": self.next_block,
            "seq": self.seq,
            "head": _hex(self.head),
            "partial_start": self.partial_start,
            "last_pos": list(self.last_pos),
            "roles": {r: sorted(a.hex() for a in s) for r, s in self.roles.items()},
            "scope": {a.hex(): sorted(c) for a, c in self.scope.items()},
            "agencies": [a.hex() for a in self.agencies],
            "records": [[k.hex(), a, kind, s.hex()] for k, (a, kind, s) in self.records.items()],
            "nonces": {str(a): sorted(n) for a, n in self.nonces.items()},
            "checkpoint_size": self.checkpoint_size,
            "epoch": self.epoch,
            "counts": self.counts,
            "findings": [f.to_json() for f in self.findings],
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditState:
        if doc.get("version") != 1:
            raise InvalidInput(f"unsupported audit checkpoint version {doc.get('version')!r}")
        return cls(
            next_block=int(doc["next_block"]),
            seq=doc["seq"],
            head=None if doc["head"] is None else _raw(doc["head"]),
            partial_start=bool(doc["partial_start"]),
            last_pos=(int(doc["last_pos"][0]), int(doc["last_pos"][1])),
            roles={r: {bytes.fromhex(a) for a in s} for r, s in doc["roles"].items()},
            scope={bytes.fromhex(a): set(c) for a, c in doc["scope"].items()},
            agencies=[bytes.fromhex(a) for a in doc["agencies"]],
            records={
                bytes.fromhex(k): (int(a), int(kind), bytes.fromhex(s))
                for k, a, kind, s in doc["records"]
            },
            nonces={int(a): set(n) for a, n in doc["nonces"].items()},
            checkpoint_size=int(doc["checkpoint_size"]),
            epoch=doc["epoch"],
            counts=dict(doc["counts"]),
            findings=[Finding.from_json(f) for f in doc["findings"]],
            notes=list(doc["notes"]),
        )


@dataclass(frozen=True)
class AuditReport:
    """The outcome: ``ok`` iff no finding; ``partial`` when the range did not cover it all."""

    chain_id: int
    contracts: dict[str, str]
    from_block: int
    to_block: int
    head_block: int
    partial: bool
    counts: dict[str, int]
    head: str | None
    tree_size: int
    tree_root: str
    findings: list[Finding]
    notes: list[str]
    checked_at: int

    @property
    def ok(self) -> bool:
        return not self.findings

    def failed_checks(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.check] = out.get(f.check, 0) + 1
        return dict(sorted(out.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "partial": self.partial,
            "chain_id": self.chain_id,
            "contracts": self.contracts,
            "from_block": self.from_block,
            "to_block": self.to_block,
            "head_block": self.head_block,
            "checked_at": self.checked_at,
            "counts": self.counts,
            "running_hash": self.head,
            "log": {"size": self.tree_size, "root": self.tree_root},
            "failed_checks": self.failed_checks(),
            "findings": [f.to_json() for f in self.findings],
            "notes": self.notes,
        }


class Auditor:
    """Folds logs in chain order into :class:`AuditState`, collecting findings."""

    def __init__(
        self,
        chain_id: int,
        contracts: Mapping[str, str],
        state: AuditState,
        *,
        rule_sets: Sequence[RuleSetDoc] = (),
    ) -> None:
        self.chain_id = chain_id
        self.contracts = dict(contracts)
        self.state = state
        self.ledger = self.contracts["CreditLedger"]
        self._names = {a.lower(): n for n, a in self.contracts.items()}
        self._agency_index = {a: i for i, a in enumerate(state.agencies)}
        self._rule_sets = list(rule_sets)
        self._by_hash = {d.content_hash: d for d in rule_sets}
        self.tree = MerkleTree()
        self._pending: list[bytes] = []
        if state.records and not state.partial_start:
            self.tree.append_many([leaf_hash(k) for k in state.records])
        if "RuleRegistry" not in self.contracts:
            self._note(
                "RuleRegistry is not deployed: rule-set, list-epoch and checkpoint-anchor "
                "checks were skipped"
            )

    # ---- bookkeeping ----

    def _note(self, text: str) -> None:
        if text not in self.state.notes:
            self.state.notes.append(text)

    def _count(self, key: str, n: int = 1) -> None:
        self.state.counts[key] = self.state.counts.get(key, 0) + n

    def _find(self, check: str, detail: str, where: tuple[int, str, int], **kw: Any) -> None:
        block, tx, li = where
        self.state.findings.append(Finding(check, detail, block=block, tx=tx, log_index=li, **kw))

    def _has(self, role: Role, account: bytes) -> bool:
        return account in self.state.roles.get(role.value, ())

    def _flush_tree(self) -> None:
        if self._pending:
            self.tree.append_many(self._pending)
            self._pending = []

    # ---- feeding ----

    def feed(
        self,
        logs: Sequence[Mapping[str, Any]],
        facts: Iterable[RecordFacts] | None = None,
        blocks: Mapping[int, BlockHeader] | None = None,
    ) -> None:
        """Apply one page of logs (all contracts, chain order).

        ``facts``: :func:`record_facts` of this page's CreditRecorded logs of the ledger, in the
        same order (computed here when None). ``blocks``: headers the logs must match.
        """
        ledger_lc = self.ledger.lower()
        if facts is None:
            items = [
                (lg["topics"], lg["data"])
                for lg in logs
                if str(lg["address"]).lower() == ledger_lc
                and lg["topics"]
                and _raw(lg["topics"][0]) == RECORDED_TOPIC
            ]
            facts = record_facts(items, self.chain_id, self.ledger)
        fit: Iterator[RecordFacts] = iter(facts)
        seen_hash: dict[int, bytes] = {}
        st = self.state
        for lg in logs:
            try:
                bn, li = _int(lg["blockNumber"]), _int(lg["logIndex"])
                tx = "0x" + _raw(lg["transactionHash"]).hex()
                bh = _raw(lg["blockHash"])
                topics = lg["topics"]
                t0 = _raw(topics[0]) if topics else b""
                name = self._names.get(str(lg["address"]).lower())
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                self.state.findings.append(
                    Finding("log.malformed", f"log lacks a field or has a bad one: {exc!r}")
                )
                continue
            is_record = name == "CreditLedger" and t0 == RECORDED_TOPIC
            f = next(fit, None) if is_record else None
            where = (bn, tx, li)
            rid = _hex(_raw(topics[1])) if is_record and len(topics) > 1 else None
            if lg.get("removed"):
                self._find("log.removed", "the node returned a log marked removed (re-org)",
                           where, record_id=rid)  # fmt: skip
                continue
            if (bn, li) <= st.last_pos:
                what = "repeats" if (bn, li) == st.last_pos else "comes before"
                self._find(
                    "log.order",
                    f"log {bn}/{li} {what} the previous log {st.last_pos[0]}/{st.last_pos[1]}",
                    where,
                    record_id=rid,
                )
                continue
            if bn < st.next_block:
                self._find("log.range", f"log of block {bn} is below the replayed range",
                           where, record_id=rid)  # fmt: skip
                continue
            if seen_hash.setdefault(bn, bh) != bh:
                self._find(
                    "log.block-hash",
                    f"two logs of block {bn} carry different block hashes",
                    where,
                    record_id=rid,
                    expected=_hex(seen_hash[bn]),
                    actual=_hex(bh),
                )
                continue
            header = blocks.get(bn) if blocks is not None else None
            if blocks is not None and header is None:
                self._find("log.block-hash", f"no header for block {bn} to check the log against",
                           where, record_id=rid)  # fmt: skip
                continue
            if header is not None and header.hash != bh:
                self._find(
                    "log.block-hash",
                    f"log's blockHash is not the hash of block {bn}",
                    where,
                    record_id=rid,
                    expected=_hex(header.hash),
                    actual=_hex(bh),
                )
                continue
            st.last_pos = (bn, li)
            if name is None:
                continue
            raw_topics = [_raw(t) for t in topics]
            if is_record:
                if f is None:
                    self._find("log.malformed", "no facts computed for this record log", where)
                    continue
                self._record(f, where, header)
            elif name == "Roles" and t0 in _ROLE_TOPICS:
                self._role(lg, raw_topics, where)
            elif name == "DIDRegistry" and t0 == DID_RECOVERED_TOPIC:
                self._issuer(raw_topics[2], "did.recovery-role", "DID recovery", where)
            elif name == "CredentialRegistry" and t0 == CREDENTIAL_ANCHORED_TOPIC:
                self._issuer(raw_topics[2], "credential.issuer-role", "credential anchor", where)
            elif name == "CredentialRegistry" and t0 == STATUS_LIST_CREATED_TOPIC:
                self._issuer(raw_topics[2], "status.issuer-role", "status list creation", where)
            elif name == "CredentialRegistry" and t0 == STATUS_CHANGED_TOPIC:
                self._issuer(raw_topics[3], "status.issuer-role", "status change", where)
            elif name == "RuleRegistry":
                self._rules(t0, raw_topics, _raw(lg["data"]), where)
        self._flush_tree()

    def advance(self, next_block: int) -> None:
        """Every log below ``next_block`` has been fed (the adapter finished a page)."""
        self.state.next_block = max(self.state.next_block, next_block)

    # ---- per event ----

    def _record(
        self, f: RecordFacts, where: tuple[int, str, int], header: BlockHeader | None
    ) -> None:
        st = self.state
        rid = "0x" + f.id.hex()
        self._count("records")

        def bad(check: str, detail: str, **kw: Any) -> None:
            self._find(check, detail, where, record_id=rid, **kw)

        for check, detail in f.problems:
            bad(check, detail)
        if f.digest is None:
            return  # undecodable: nothing else can be checked, and seq/head stay put
        if f.digest != f.id:
            bad("record.id", "the log's id is not the EIP-712 digest of its fields, so the "
                "signature recovered from it is not over this record",
                expected=_hex(f.digest), actual=rid)  # fmt: skip
        # seq continuity and running hash (our own recomputation, never the log's)
        if st.seq is not None and f.seq != st.seq:
            gap = f.seq - st.seq
            detail = (
                f"seq {f.seq} after {st.seq - 1}: {gap} record(s) missing"
                if gap > 0
                else f"seq {f.seq} repeats or goes back (expected {st.seq})"
            )
            bad("record.seq", detail, expected=str(st.seq), actual=str(f.seq))
        st.seq = f.seq + 1
        if st.head is not None:
            expected = keccak(st.head + f.id)
            if expected != f.head_after:
                bad("record.head", "headAfter is not keccak256(previous head, id)",
                    expected=_hex(expected), actual=_hex(f.head_after))  # fmt: skip
            st.head = expected
        else:
            st.head = f.head_after
        # authority at this log's position
        agency = f.signer if f.signer is not None else f.agency
        if not self._has(Role.AGENCY, agency):
            bad("record.role", f"signer {_addr(agency)} did not hold AGENCY at block {where[0]}")
        elif f.category not in st.scope.get(agency, ()):
            bad(
                "record.scope",
                f"category {f.category} was not in {_addr(agency)}'s scope at block {where[0]}",
            )
        if header is not None and f.deadline < header.timestamp:
            bad("record.deadline", f"deadline {f.deadline} is before the block's timestamp "
                f"{header.timestamp}")  # fmt: skip
        ai = self._agency_index.get(f.agency)
        if ai is None:
            ai = self._agency_index[f.agency] = len(st.agencies)
            st.agencies.append(f.agency)
        used = st.nonces.setdefault(ai, set())
        if f.nonce in used:
            bad("record.nonce", f"nonce {f.nonce} of {_addr(f.agency)} was already used")
        used.add(f.nonce)
        if f.id in st.records:
            bad("record.duplicate-id", "a record with this id is already on the ledger")
            return
        if f.kind != _RECORD and f.ref != ZERO_HASH:
            self._count("lifecycle")
            self._lifecycle(f, ai, bad)
        st.records[f.id] = (ai, f.kind, f.subject)
        self._pending.append(leaf_hash(f.id))

    def _lifecycle(self, f: RecordFacts, ai: int, bad: Any) -> None:
        target = self.state.records.get(f.ref)
        name = _KIND_NAMES.get(f.kind, str(f.kind))
        ref = "0x" + f.ref.hex()
        if target is None:
            if self.state.partial_start:
                self._count("lifecycle_unresolved")
                return
            bad("lifecycle.unknown-ref", f"{name} refers to {ref}, which is not an earlier record")
            return
        t_ai, t_kind, t_subject = target
        if t_ai != ai:
            bad(
                "lifecycle.agency",
                f"{name} of {ref} was signed by {_addr(f.agency)}, but the record was written by "
                f"{_addr(self.state.agencies[t_ai])}",
            )
        if t_subject != f.subject:
            bad("lifecycle.subject", f"{name} changes the subject of {ref}")
        want = (_RECORD, _AMEND) if f.kind in _VERSION_TARGETS else (_OBJECTION,)
        if t_kind not in want:
            bad(
                "lifecycle.ref-kind",
                f"{name} must refer to {' or '.join(_KIND_NAMES[k] for k in want)}, "
                f"not {_KIND_NAMES.get(t_kind, t_kind)}",
            )

    def _role(self, lg: Mapping[str, Any], t: list[bytes], where: tuple[int, str, int]) -> None:
        st = self.state
        self._count("role_events")
        try:
            row = role_event_row(lg)
        except Exception as exc:
            self._find("log.malformed", f"Roles event does not decode: {exc}", where)
            return
        assert row is not None
        sender = bytes.fromhex(row["sender"][2:])
        account = bytes.fromhex(row["account"][2:])
        bootstrap = (
            row["event"] == "granted"
            and row["role"] == Role.GOVERNOR.value
            and not st.roles.get(Role.GOVERNOR.value)
        )
        if not bootstrap and not self._has(Role.GOVERNOR, sender):
            self._find("roles.governor", f"role change by {row['sender']}, who was not GOVERNOR",
                       where)  # fmt: skip
        if row["event"] in ("granted", "revoked"):
            members = st.roles.setdefault(row["role"], set())
            if row["event"] == "granted":
                members.add(account)
            else:
                members.discard(account)
        else:
            cats = {int(c) for c in row["categories"].split(",") if c}
            scope = st.scope.setdefault(account, set())
            if row["event"] == "scope+":
                scope |= cats
            else:
                scope -= cats

    def _issuer(self, account: bytes, check: str, what: str, where: tuple[int, str, int]) -> None:
        self._count("issuer_events")
        if not self._has(Role.ISSUER, account[-20:]):
            self._find(check, f"{what} by {_addr(account)}, who did not hold ISSUER at that block",
                       where)  # fmt: skip

    def _rules(self, t0: bytes, t: list[bytes], data: bytes, where: tuple[int, str, int]) -> None:
        st = self.state
        try:
            if t0 == RULESET_TOPIC:
                self._count("rule_sets")
                publisher, content = t[3], data[:32]
                self._publisher(publisher, "rules.publisher-role", "rule-set publication", where)
                doc = self._by_hash.get(content)
                set_id, version = t[1], int.from_bytes(t[2], "big")
                same = [d for d in self._rule_sets if d.set_id == set_id and d.version == version]
                if doc is not None:
                    self._count("rule_sets_recomputed")
                elif same:
                    self._find(
                        "rules.content",
                        f"published hash of {same[0].name} differs from the document's hash",
                        where,
                        expected=_hex(same[0].content_hash),
                        actual=_hex(content),
                    )
                else:
                    self._count("rule_sets_not_available")
            elif t0 == EPOCH_TOPIC:
                self._count("list_epochs")
                epoch = int.from_bytes(t[1], "big")
                self._publisher(t[3], "rules.publisher-role", "list epoch", where)
                if st.epoch is not None and epoch <= st.epoch:
                    self._find("rules.epoch", f"epoch {epoch} does not follow epoch {st.epoch}",
                               where)  # fmt: skip
                st.epoch = epoch
                self._note(
                    "list epochs: publisher role and order checked; re-evaluating the lists "
                    "(listsRoot, memberCount) is left to the rules engine's audit"
                )
            elif t0 == CHECKPOINT_TOPIC:
                self._count("checkpoints")
                size, root = int.from_bytes(t[1], "big"), data[:32]
                self._publisher(t[2], "checkpoint.publisher-role", "checkpoint anchor", where)
                if size <= st.checkpoint_size:
                    self._find("checkpoint.size", f"tree size {size} is not above the previous "
                               f"anchored size {st.checkpoint_size}", where)  # fmt: skip
                st.checkpoint_size = max(st.checkpoint_size, size)
                self._flush_tree()
                if st.partial_start:
                    self._count("checkpoints_unverifiable")
                elif size > self.tree.size:
                    self._find(
                        "checkpoint.size",
                        f"anchored tree size {size} exceeds the {self.tree.size} records on the "
                        f"ledger at block {where[0]}",
                        where,
                    )
                elif self.tree.root(size) != root:
                    self._find(
                        "checkpoint.root",
                        f"anchored root for size {size} is not the root of the first {size} "
                        "record ids",
                        where,
                        expected=_hex(self.tree.root(size)),
                        actual=_hex(root),
                    )
        except (IndexError, ValueError) as exc:
            self._find("log.malformed", f"RuleRegistry event does not decode: {exc}", where)

    def _publisher(
        self, account: bytes, check: str, what: str, where: tuple[int, str, int]
    ) -> None:
        if not self._has(Role.RULE_PUBLISHER, account[-20:]):
            self._find(check, f"{what} by {_addr(account)}, who did not hold RULE_PUBLISHER",
                       where)  # fmt: skip

    # ---- the end ----

    def finish(
        self,
        *,
        from_block: int,
        to_block: int,
        head_block: int,
        now: int,
        ledger_state: tuple[bytes, int] | None = None,
        ledger_state_note: str | None = None,
    ) -> AuditReport:
        """The report. ``ledger_state``: the contract's ``state()`` at ``to_block``."""
        self._flush_tree()
        st = self.state
        findings = list(st.findings)
        notes = list(st.notes)
        partial = st.partial_start or to_block < head_block
        if to_block < head_block:
            notes.append(
                f"partial: replayed to block {to_block}, but the chain head is {head_block}"
            )
        if st.partial_start:
            notes.append(
                f"partial: replay started at block {from_block}, after the deployment; "
                "running hash and references before it were not verified"
            )
        if ledger_state is not None:
            head, count = ledger_state
            if st.head is not None and head != st.head:
                findings.append(
                    Finding(
                        "ledger.state",
                        f"the contract's running hash at block {to_block} is not the replayed one",
                        block=to_block,
                        field="head",
                        expected=_hex(st.head),
                        actual=_hex(head),
                    )
                )
            if st.seq is not None and count != st.seq:
                findings.append(
                    Finding(
                        "ledger.state",
                        f"the contract counts {count} records at block {to_block}, the logs "
                        f"{st.seq}",
                        block=to_block,
                        field="count",
                        expected=str(st.seq),
                        actual=str(count),
                    )
                )
        elif ledger_state_note:
            notes.append(ledger_state_note)
        counts = dict(st.counts)
        counts.setdefault("records", 0)
        return AuditReport(
            chain_id=self.chain_id,
            contracts=self.contracts,
            from_block=from_block,
            to_block=to_block,
            head_block=head_block,
            partial=partial,
            counts=counts,
            head=_hex(st.head),
            tree_size=self.tree.size,
            tree_root=self.tree.root().hex(),
            findings=findings,
            notes=notes,
            checked_at=now,
        )


# ---- served checkpoints ----


def check_signed_checkpoint(
    note: str, verifier_key: str, origin: str, tree: MerkleTree
) -> list[Finding]:
    """A checkpoint served by the log: signed by the key, for this origin, on this tree."""
    try:
        cp: Checkpoint = open_checkpoint(note, [verifier_key], origin=origin)
    except TlogError as exc:
        return [Finding("tlog.checkpoint-signature", exc.detail)]
    if cp.size > tree.size:
        return [
            Finding(
                "tlog.checkpoint-size",
                f"checkpoint claims {cp.size} leaves; the chain has {tree.size} records",
            )
        ]
    if tree.root(cp.size) != cp.root_hash:
        return [
            Finding(
                "tlog.checkpoint-root",
                f"checkpoint root for size {cp.size} is not the root of the chain's records",
                expected=base64.b64encode(tree.root(cp.size)).decode(),
                actual=base64.b64encode(cp.root_hash).decode(),
            )
        ]
    return []
