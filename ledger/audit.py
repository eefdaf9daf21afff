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

Rule sets and list epochs (given the rule-set documents, which the chain holds only the hash
of): every published content hash must be the SHA-256 of a given document's RFC 8785 form
(``rule-set-document-missing`` otherwise), and every anchored list epoch is re-evaluated with
:func:`ledger.rules.epochs.evaluate_epoch` (what the service anchors) over the records replayed
from the logs in blocks before the anchoring block, at the epoch's ``asOf``; its ``listsRoot``
and ``memberCount`` must be the anchored ones (``epoch-root-mismatch``). That needs every record
from the deploy block: a replay that starts later reports its epochs as not evaluated, and so
does one without documents (the service's ``/v1/audit/run``, which re-runs epochs itself).

Invariants:
- Pure (python-tuf style): logs, block headers and ``now`` in, findings out; no I/O, no clock.
  :mod:`ledger.audit_replay` is the I/O adapter.
- Never raises on data: every defect becomes a :class:`Finding` naming the check, record id,
  block, tx and log index. Logs must be fed in chain order; out-of-order, duplicate or
  ``removed`` logs are reported and not applied.
- Records are decoded only through :mod:`ledger.records` (:func:`~ledger.records.verify_recorded`
  recomputes the EIP-712 digest and recovers the signer from the id topic and the signature,
  as the ledger did, with the checks of :func:`~ledger.records.decode_recorded_log`); the
  auditor then checks that the id is that digest. Nothing here depends on the event's word
  layout.
- :func:`verify_records` (digest, exactly one ecrecover per record) is stateless and runs in
  worker processes on raw bytes, returning 21 bytes per record; :class:`Auditor`
  (order-dependent state) runs in one process, reading the other fields itself. A million
  records cost ~75 µs of ecrecover each, so that is where the time goes; everything else is
  kept to a few µs per log. :class:`AuditState` is JSON serialisable so a long replay resumes
  where it stopped.
- Epoch inputs are kept only when documents are given: 180 bytes per record (``_ENTRY``: the
  log's id, meta, times and subject words, ref, block, block timestamp, agency index), in one
  ``bytearray`` that the resume file carries too.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Mapping, Sequence
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
    recorded_fields,
    verify_recorded,
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
    from sha3 import keccak_256 as _keccak256
except ImportError:  # pragma: no cover - pinned dependency
    from Crypto.Hash import keccak as _ck

    def _keccak256(data: bytes) -> Any:
        return _ck.new(data=data, digest_bits=256)


def keccak(data: bytes) -> bytes:
    return _keccak256(data).digest()


_PARTIAL_EPOCHS = (
    "the replay started after the deploy block, and an epoch is re-evaluated over every record "
    "before it: audit from the deploy block (or continue a --resume checkpoint that did)"
)


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
    "RecordChecks",
    "RuleSetDoc",
    "check_signed_checkpoint",
    "record_items",
    "role_event_row",
    "verify_records",
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

_AGENCY = Role.AGENCY.value
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
# an epoch input kept per record: id, then the log's meta word (4 pad, seq, amount, category,
# subject kind, kind), times word (deadline, until, effective from, occurred at) and subject
# word as logged, then ref, block number, block timestamp, agency index
_ENTRY = struct.Struct(">32s4xQ16sHBBQQQQ32s32sQQI")
_ENTRY_TAIL = struct.Struct(">QQI")


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


def _topic_id(topics: Any) -> bytes:
    """The id topic for a finding about a log that did not decode (zero when absent)."""
    try:
        return _raw(topics[1]) if len(topics) > 1 else ZERO_HASH
    except (ValueError, TypeError):
        return ZERO_HASH


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
    epoch: int | None = None

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
    """A rule-set document available to the auditor: its on-chain id, version and hash.

    ``rule_set``: the validated :class:`ledger.rules.RuleSet` to re-evaluate epochs with (None:
    ``problem`` says why it did not validate)."""

    name: str
    set_id: bytes
    version: int
    content_hash: bytes
    rule_set: Any = None
    problem: str | None = None


class RecordChecks(NamedTuple):
    """The order-free verdicts on a page's CreditRecorded logs, compact so workers return
    21 bytes per record instead of pickled objects."""

    items: Sequence[bytes]  # record_items(): id ‖ data per log (b"": not decodable as one)
    signers: bytes  # 20 bytes per item: recovered from the id topic and the signature
    status: bytes  # 1 byte per item: 0 id is the digest, 1 id is not, 2 rejected (see errors)
    errors: Mapping[int, tuple[str, str]]  # item index -> (check, detail), status 2 only


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


def _is_record_log(lg: Mapping[str, Any], ledger_lc: str) -> bool:
    try:
        topics = lg["topics"]
        return bool(
            topics and str(lg["address"]).lower() == ledger_lc and _raw(topics[0]) == RECORDED_TOPIC
        )
    except (KeyError, ValueError, TypeError):
        return False


class _RecordLogTest:
    """:func:`_is_record_log` memoised on (address, topic0) for one page: those repeat."""

    def __init__(self, ledger: str) -> None:
        self.ledger_lc = ledger.lower()
        self.memo: dict[Any, bool] = {}

    def __call__(self, lg: Mapping[str, Any]) -> bool:
        try:
            key = (lg["address"], lg["topics"][0])
            hit = self.memo.get(key)
        except (KeyError, IndexError, TypeError):
            return _is_record_log(lg, self.ledger_lc)
        if hit is None:
            hit = self.memo[key] = _is_record_log(lg, self.ledger_lc)
        return hit


def record_items(logs: Iterable[Mapping[str, Any]], ledger: str) -> list[bytes]:
    """``id ‖ data`` of the ledger's CreditRecorded logs in order, hex decoded once: what the
    workers verify and the fold reads. b"" for a log that cannot be one (topic count, bad hex)."""
    is_record = _RecordLogTest(ledger)
    out: list[bytes] = []
    for lg in logs:
        if not is_record(lg):
            continue
        try:
            topics = lg["topics"]
            rid = _raw(topics[1]) if len(topics) == 2 else b""
            out.append(rid + _raw(lg["data"]) if len(rid) == 32 else b"")
        except (KeyError, ValueError, TypeError):
            out.append(b"")
    return out


def verify_records(items: Sequence[bytes], chain_id: int, ledger: str) -> RecordChecks:
    """Digest and signer of each :func:`record_items` item, one ecrecover each. Stateless, so it
    runs in worker processes; ``items`` is left empty in the result (the caller has them)."""
    sep = _domain(chain_id, ledger).separator
    signers = bytearray()
    status = bytearray()
    errors: dict[int, tuple[str, str]] = {}
    z20, topic = bytes(20), RECORDED_TOPIC
    for i, item in enumerate(items):
        rid = item[:32]
        try:
            digest, signer = verify_recorded(2 if item else 0, topic, rid, item[32:], sep)
        except Exception as exc:
            check = "record.signature" if isinstance(exc, InvalidSignature) else "record.decode"
            detail = getattr(exc, "detail", None) or str(exc)
            errors[i] = (check, f"CreditRecorded log rejected: {detail}")
            signers += z20
            status.append(2)
            continue
        signers += signer
        status.append(0 if digest == rid else 1)
    return RecordChecks((), bytes(signers), bytes(status), errors)


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
    # epoch inputs, ``_ENTRY`` per record in ledger order (None: not kept, ``entries_note`` why)
    entries: bytearray | None = None
    entries_note: str | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)  # one per anchored list epoch

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 2,
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
            "entries": None
            if self.entries is None
            else base64.b64encode(bytes(self.entries)).decode(),
            "entries_note": self.entries_note,
            "epochs": self.epochs,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditState:
        version = doc.get("version")
        if version not in (1, 2):
            raise InvalidInput(f"unsupported audit checkpoint version {version!r}")
        entries = (
            None if doc.get("entries") is None else bytearray(base64.b64decode(doc["entries"]))
        )
        if entries is not None and len(entries) % _ENTRY.size:
            raise InvalidInput("the checkpoint's epoch inputs are truncated")
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
            entries=entries,
            entries_note=doc.get("entries_note")
            or (
                "resumed from a version-1 audit checkpoint, which holds no record contents"
                if version == 1
                else None
            ),
            epochs=list(doc.get("epochs", [])),
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
    list_epochs: list[dict[str, Any]] = field(default_factory=list)

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
            "list_epochs": self.epochs_summary(),
        }

    def epochs_summary(self) -> dict[str, Any]:
        """How many anchored list epochs were re-evaluated, matched, mismatched or skipped."""
        by = [e.get("status") for e in self.list_epochs]
        return {
            "anchored": len(by),
            "reevaluated": by.count("match") + by.count("mismatch"),
            "matched": by.count("match"),
            "mismatched": by.count("mismatch"),
            "not_evaluated": by.count("not-evaluated"),
            "epochs": self.list_epochs,
        }


class Auditor:
    """Folds logs in chain order into :class:`AuditState`, collecting findings."""

    def __init__(
        self,
        chain_id: int,
        contracts: Mapping[str, str],
        state: AuditState,
        *,
        rule_sets: Sequence[RuleSetDoc] | None = None,
        catalog: Any = None,
    ) -> None:
        """``rule_sets``: the documents the auditor holds (None: none given, so rule-set hashes
        are only counted and list epochs not re-evaluated). ``catalog``: the category catalog
        epochs are evaluated with (default: the packaged one, as the service uses)."""
        self.chain_id = chain_id
        self.contracts = dict(contracts)
        self.state = state
        self.ledger = self.contracts["CreditLedger"]
        self._names = {a.lower(): n for n, a in self.contracts.items()}
        self._agency_index = {a: i for i, a in enumerate(state.agencies)}
        self._docs_given = rule_sets is not None
        self._rule_sets = list(rule_sets or ())
        self._by_hash = {d.content_hash: d for d in self._rule_sets}
        self._catalog = catalog
        self.tree = MerkleTree()
        self._pending: list[bytes] = []
        if state.records and not state.partial_start:
            self.tree.append_many([leaf_hash(k) for k in state.records])
        if "RuleRegistry" not in self.contracts:
            self._note(
                "RuleRegistry is not deployed: rule-set, list-epoch and checkpoint-anchor "
                "checks were skipped"
            )
        elif self._docs_given and state.entries is None and state.entries_note is None:
            if state.partial_start:
                state.entries_note = _PARTIAL_EPOCHS
            elif state.records:
                state.entries_note = (
                    "the resumed audit checkpoint holds no record contents (it was written "
                    "without rule-set documents)"
                )
            else:
                state.entries = bytearray()

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
        checks: RecordChecks | None = None,
        blocks: Mapping[int, BlockHeader] | None = None,
    ) -> None:
        """Apply one page of logs (all contracts, chain order).

        ``checks``: :func:`verify_records` of this page's :func:`record_items` (with ``items``
        filled in), computed here when None. ``blocks``: headers the logs must match.
        """
        is_record_log = _RecordLogTest(self.ledger)
        if checks is None:
            fresh = record_items(logs, self.ledger)
            checks = verify_records(fresh, self.chain_id, self.ledger)._replace(items=fresh)
        items, signers, status, errors = checks
        if not (len(signers) == 20 * len(items) and len(status) == len(items)):
            raise InvalidInput("record checks do not match their items")
        k = 0  # index of the next CreditRecorded log's item
        seen_hash: dict[int, bytes] = {}
        st = self.state
        # per page memos (one per field): a block's number, hash and tx repeat for its logs
        bn_memo: dict[Any, int] = {}
        tx_memo: dict[Any, str] = {}
        bh_memo: dict[Any, bytes] = {}
        t0_memo: dict[Any, bytes] = {}
        name_memo: dict[Any, str | None] = {}
        names = self._names
        for lg in logs:
            is_record = is_record_log(lg)
            if is_record and k >= len(items):
                raise InvalidInput("fewer record checks than CreditRecorded logs")
            try:
                bn_raw, li_raw, tx_raw, bh_raw = (
                    lg["blockNumber"],
                    lg["logIndex"],
                    lg["transactionHash"],
                    lg["blockHash"],
                )
                bn = bn_memo.get(bn_raw)
                if bn is None:
                    bn = bn_memo[bn_raw] = _int(bn_raw)
                li = li_raw if type(li_raw) is int else _int(li_raw)
                tx = tx_memo.get(tx_raw)
                if tx is None:
                    tx = tx_memo[tx_raw] = "0x" + _raw(tx_raw).hex()
                bh = bh_memo.get(bh_raw)
                if bh is None:
                    bh = bh_memo[bh_raw] = _raw(bh_raw)
                topics = lg["topics"]
                t0 = b""
                if topics:
                    hit = t0_memo.get(topics[0])
                    t0 = hit if hit is not None else t0_memo.setdefault(topics[0], _raw(topics[0]))
                address = lg["address"]
                if address in name_memo:
                    name = name_memo[address]
                else:
                    name = name_memo[address] = names.get(str(address).lower())
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                k += is_record
                self.state.findings.append(
                    Finding("log.malformed", f"log lacks a field or has a bad one: {exc!r}")
                )
                continue
            where = (bn, tx, li)
            if is_record:
                item = items[k]
                rid = item[:32] if item else _topic_id(topics)
                ki = k
                k += 1
            pos = (bn, li)
            if lg.get("removed"):
                self._find("log.removed", "the node returned a log marked removed (re-org)",
                           where, record_id=_hex(rid) if is_record else None)  # fmt: skip
                continue
            if pos <= st.last_pos:
                what = "repeats" if pos == st.last_pos else "comes before"
                self._find(
                    "log.order",
                    f"log {bn}/{li} {what} the previous log {st.last_pos[0]}/{st.last_pos[1]}",
                    where,
                    record_id=_hex(rid) if is_record else None,
                )
                continue
            if bn < st.next_block:
                self._find("log.range", f"log of block {bn} is below the replayed range",
                           where, record_id=_hex(rid) if is_record else None)  # fmt: skip
                continue
            if seen_hash.setdefault(bn, bh) != bh:
                self._find(
                    "log.block-hash",
                    f"two logs of block {bn} carry different block hashes",
                    where,
                    record_id=_hex(rid) if is_record else None,
                    expected=_hex(seen_hash[bn]),
                    actual=_hex(bh),
                )
                continue
            header = blocks.get(bn) if blocks is not None else None
            if blocks is not None and header is None:
                self._find("log.block-hash", f"no header for block {bn} to check the log against",
                           where, record_id=_hex(rid) if is_record else None)  # fmt: skip
                continue
            if header is not None and header.hash != bh:
                self._find(
                    "log.block-hash",
                    f"log's blockHash is not the hash of block {bn}",
                    where,
                    record_id=_hex(rid) if is_record else None,
                    expected=_hex(header.hash),
                    actual=_hex(bh),
                )
                continue
            st.last_pos = pos
            if name is None:
                continue
            if is_record:
                self._record(
                    rid,
                    item,
                    signers[20 * ki : 20 * ki + 20],
                    status[ki],
                    errors.get(ki, ()),
                    where,
                    header,
                )
                continue
            raw_topics = [_raw(t) for t in topics]
            if name == "Roles" and t0 in _ROLE_TOPICS:
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
        if k != len(items):
            raise InvalidInput("more record checks than CreditRecorded logs")
        self._flush_tree()

    def advance(self, next_block: int) -> None:
        """Every log below ``next_block`` has been fed (the adapter finished a page)."""
        self.state.next_block = max(self.state.next_block, next_block)

    # ---- per event ----

    def _record(
        self,
        rid: bytes,
        item: bytes,
        signer: bytes,
        status: int,
        error: tuple[str, ...],
        where: tuple[int, str, int],
        header: BlockHeader | None,
    ) -> None:
        """The ordered checks of one record; the common clean case allocates no finding text."""
        st = self.state
        counts = st.counts
        counts["records"] = counts.get("records", 0) + 1
        if status == 2:  # undecodable or bad signature: nothing else can be checked
            self._bad(error[0], error[1], where, rid)
            return  # seq/head stay put
        (kind, subject_kind, category, subject, ref, nonce, seq, head_after, deadline, eff,
         until) = recorded_fields(item, 32)  # fmt: skip
        if not (
            (
                (kind == _RECORD and ref == ZERO_HASH)
                or (_RECORD < kind <= _REJECTED and ref != ZERO_HASH)
            )
            and category
            and (subject_kind == 1 or subject_kind == 2)
            and subject != ZERO_HASH
            and (until == 0 or until >= eff)
        ):
            for check, detail in _shape_problems(
                kind, subject_kind, category, subject, ref, eff, until
            ):
                self._bad(check, detail, where, rid)
        if status == 1:
            self._bad("record.id", "the log's id is not the EIP-712 digest of its fields, so the "
                      "signature recovered from it is not over this record", where, rid,
                      expected=_hex(self._digest_of(item)), actual=_hex(rid))  # fmt: skip
        # seq continuity and running hash (our own recomputation, never the log's)
        if st.seq is not None and seq != st.seq:
            gap = seq - st.seq
            detail = (
                f"seq {seq} after {st.seq - 1}: {gap} record(s) missing"
                if gap > 0
                else f"seq {seq} repeats or goes back (expected {st.seq})"
            )
            self._bad("record.seq", detail, where, rid, expected=str(st.seq), actual=str(seq))
        st.seq = seq + 1
        if st.head is not None:
            expected = _keccak256(st.head + rid).digest()
            if expected != head_after:
                self._bad("record.head", "headAfter is not keccak256(previous head, id)", where,
                          rid, expected=_hex(expected), actual=_hex(head_after))  # fmt: skip
            st.head = expected
        else:
            st.head = head_after
        # authority at this log's position
        if signer not in st.roles.get(_AGENCY, ()):
            self._bad("record.role",
                      f"signer {_addr(signer)} did not hold AGENCY at block {where[0]}", where,
                      rid)  # fmt: skip
        elif category not in st.scope.get(signer, ()):
            self._bad(
                "record.scope",
                f"category {category} was not in {_addr(signer)}'s scope at block {where[0]}",
                where,
                rid,
            )
        if header is not None and deadline < header.timestamp:
            self._bad("record.deadline", f"deadline {deadline} is before the block's timestamp "
                      f"{header.timestamp}", where, rid)  # fmt: skip
        ai = self._agency_index.get(signer)
        if ai is None:
            ai = self._agency_index[signer] = len(st.agencies)
            st.agencies.append(signer)
            st.nonces.setdefault(ai, set())
        used = st.nonces[ai]
        if nonce in used:
            self._bad("record.nonce", f"nonce {nonce} of {_addr(signer)} was already used", where,
                      rid)  # fmt: skip
        used.add(nonce)
        if rid in st.records:
            self._bad("record.duplicate-id", "a record with this id is already on the ledger",
                      where, rid)  # fmt: skip
            return
        if kind != _RECORD and ref != ZERO_HASH:
            counts["lifecycle"] = counts.get("lifecycle", 0) + 1
            self._lifecycle(rid, kind, ref, subject, signer, ai, where)
        st.records[rid] = (ai, kind, subject)
        self._pending.append(leaf_hash(rid))
        kept = st.entries
        if kept is not None:
            if header is None:
                st.entries = None
                st.entries_note = "block timestamps were not given to the audit"
            else:
                kept += item[:128]
                kept += ref
                kept += _ENTRY_TAIL.pack(where[0], header.timestamp, ai)

    def _bad(
        self, check: str, detail: str, where: tuple[int, str, int], rid: bytes, **kw: Any
    ) -> None:
        self._find(check, detail, where, record_id=_hex(rid), **kw)

    def _digest_of(self, item: bytes) -> bytes | None:
        """The recomputed digest, for the finding's ``expected`` (rare path)."""
        try:
            sep = _domain(self.chain_id, self.ledger).separator
            return verify_recorded(2, RECORDED_TOPIC, item[:32], item[32:], sep)[0]
        except Exception:
            return None

    def _lifecycle(
        self,
        rid: bytes,
        kind: int,
        ref: bytes,
        subject: bytes,
        signer: bytes,
        ai: int,
        where: tuple[int, str, int],
    ) -> None:
        target = self.state.records.get(ref)
        name = _KIND_NAMES.get(kind, str(kind))
        ref_hex = "0x" + ref.hex()
        if target is None:
            if self.state.partial_start:
                self._count("lifecycle_unresolved")
                return
            self._bad(
                "lifecycle.unknown-ref",
                f"{name} refers to {ref_hex}, which is not an earlier record",
                where,
                rid,
            )
            return
        t_ai, t_kind, t_subject = target
        if t_ai != ai:
            self._bad(
                "lifecycle.agency",
                f"{name} of {ref_hex} was signed by {_addr(signer)}, but the record was written "
                f"by {_addr(self.state.agencies[t_ai])}",
                where,
                rid,
            )
        if t_subject != subject:
            self._bad("lifecycle.subject", f"{name} changes the subject of {ref_hex}", where, rid)
        want = (_RECORD, _AMEND) if kind in _VERSION_TARGETS else (_OBJECTION,)
        if t_kind not in want:
            self._bad(
                "lifecycle.ref-kind",
                f"{name} must refer to {' or '.join(_KIND_NAMES[k] for k in want)}, "
                f"not {_KIND_NAMES.get(t_kind, t_kind)}",
                where,
                rid,
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
                if len(content) != 32:
                    raise ValueError("RuleSetPublished carries no content hash")
                self._publisher(publisher, "rules.publisher-role", "rule-set publication", where)
                doc = self._by_hash.get(content)
                set_id, version = t[1], int.from_bytes(t[2], "big")
                same = [d for d in self._rule_sets if d.set_id == set_id and d.version == version]
                if doc is not None:
                    self._count("rule_sets_recomputed")
                    if (doc.set_id, doc.version) != (set_id, version):
                        self._find(
                            "rules.identity",
                            f"{doc.name} has the published hash but another id or version than "
                            f"the publication (ruleSetId {_hex(set_id)}, version {version})",
                            where,
                            expected=f"{_hex(doc.set_id)}/{doc.version}",
                            actual=f"{_hex(set_id)}/{version}",
                        )
                    if doc.rule_set is None:
                        self._find(
                            "rule-set-document-invalid",
                            f"{doc.name} has the published hash {_hex(content)} but does not "
                            f"validate here, so its epochs cannot be re-evaluated: {doc.problem}",
                            where,
                        )
                elif same:
                    self._find(
                        "rules.content",
                        f"published hash of {same[0].name} differs from the document's hash",
                        where,
                        expected=_hex(same[0].content_hash),
                        actual=_hex(content),
                    )
                elif self._docs_given:
                    self._find(
                        "rule-set-document-missing",
                        f"no rule-set document given hashes to the published {_hex(content)} "
                        f"(ruleSetId {_hex(set_id)}, version {version}); without it the hash "
                        "cannot be recomputed nor its epochs re-evaluated (pass the document "
                        "with --rules-dir)",
                        where,
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
                self._list_epoch(epoch, t[2], data, where)
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

    def _list_epoch(
        self, epoch: int, rs_hash: bytes, data: bytes, where: tuple[int, str, int]
    ) -> None:
        """Re-evaluate an anchored epoch over the records of the blocks before this one."""
        if len(data) < 96 or len(rs_hash) != 32:
            raise ValueError("ListEpochAnchored data is not asOf, listsRoot, memberCount")
        as_of = int.from_bytes(data[0:32], "big")
        root, count = data[32:64], int.from_bytes(data[64:96], "big")
        out: dict[str, Any] = {
            "epoch": epoch,
            "block": where[0],
            "tx": where[1],
            "rule_set": _hex(rs_hash),
            "as_of": as_of,
            "anchored_root": _hex(root),
            "anchored_members": count,
        }
        self.state.epochs.append(out)
        reason = self._epoch_blocker(rs_hash)
        if reason is not None:
            out.update(status="not-evaluated", reason=reason)
            self._count("epochs_not_evaluated")
            self._note(f"list epochs not re-evaluated: {reason}")
            return
        doc = self._by_hash[rs_hash]
        try:
            from .rules.epochs import evaluate_epoch

            if self._catalog is None:
                from .catalog import load_catalog

                self._catalog = load_catalog()
            com = evaluate_epoch(doc.rule_set, self._catalog, self._entries_before(where[0]), as_of)
        except Exception as exc:  # never raise on data: a failed evaluation is a finding
            out.update(status="not-evaluated", reason=f"evaluation failed: {exc}")
            self._count("epochs_not_evaluated")
            self._find("epoch-evaluation", f"epoch {epoch} could not be re-evaluated: {exc}",
                       where, epoch=epoch)  # fmt: skip
            return
        self._count("epochs_reevaluated")
        out.update(
            rule_set_id=doc.rule_set.id,
            rule_set_version=doc.rule_set.version,
            records=com.records,
            recomputed_root=_hex(com.lists_root),
            recomputed_members=com.member_count,
            lists=com.list_roots(),
            status="match" if com.matches(root, count) else "mismatch",
        )
        if out["status"] == "mismatch":
            sizes = ", ".join(f"{lid} {t.size}" for lid, t in sorted(com.trees.items()))
            self._find(
                "epoch-root-mismatch",
                f"epoch {epoch} ({doc.rule_set.id} {doc.rule_set.version}, asOf {as_of}): the "
                f"anchored listsRoot {_hex(root)} with {count} members is not the "
                f"re-evaluation of the {com.records} records before block {where[0]}, which "
                f"gives {_hex(com.lists_root)} with {com.member_count} members ({sizes})",
                where,
                field="listsRoot",
                expected=_hex(com.lists_root),
                actual=_hex(root),
                epoch=epoch,
            )

    def _epoch_blocker(self, rs_hash: bytes) -> str | None:
        """Why an epoch of ``rs_hash`` cannot be re-evaluated here (None: it can)."""
        st = self.state
        if not self._docs_given:
            return "no rule-set documents were given (publisher role and order were checked)"
        if st.partial_start:
            return _PARTIAL_EPOCHS
        if st.entries is None:
            return st.entries_note or "the records' contents were not kept"
        doc = self._by_hash.get(rs_hash)
        if doc is None:
            return f"rule-set-document-missing: no document given hashes to {_hex(rs_hash)}"
        if doc.rule_set is None:
            return f"rule-set-document-invalid: {doc.name}: {doc.problem}"
        return None

    def _entries_before(self, block: int) -> list[Any]:
        """The kept records of blocks before ``block`` as rules inputs, in ledger order."""
        from .lifecycle import LedgerEntry

        st = self.state
        assert st.entries is not None
        agencies = [_addr(a) for a in st.agencies]
        out: list[LedgerEntry] = []
        for (rid, seq, amount, category, subject_kind, kind, _deadline, until, eff, occurred,
             subject, ref, bn, ts, ai) in _ENTRY.iter_unpack(st.entries):  # fmt: skip
            if bn >= block:  # kept in ledger order, so blocks never decrease
                break
            out.append(
                LedgerEntry(
                    id=rid,
                    kind=kind,
                    subject=subject,
                    subject_kind=subject_kind,
                    category=category,
                    agency=agencies[ai],
                    occurred_at=occurred,
                    effective_from=eff,
                    effective_until=until,
                    ref=None if ref == ZERO_HASH else ref,
                    seq=seq,
                    recorded_at=ts,
                    amount=int.from_bytes(amount, "big"),
                )
            )
        return out

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
            list_epochs=[dict(e) for e in st.epochs],
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
