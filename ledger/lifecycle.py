"""Append-only record lifecycle: from the raw ledger entries to the records that are current.

The chain never changes a record; later entries refer to earlier ones (``ref``) and this module
folds them, in chain order (``seq``), into one state per *logical record* (an original
``RECORD`` and the ``AMEND`` versions that superseded it).

Invariants:

* Pure: ``as_of`` is a parameter; only entries with ``recorded_at <= as_of`` are seen, so the
  view at any past instant can be recomputed from the same entries.
* Order is ``seq`` alone (input order never matters); ties are impossible on chain and a
  repeated id is reported, never applied twice.
* Nothing is ever deleted: a withdrawn, disputed, upheld or repaired record stays in the view
  with its flag; a superseded version is kept in :attr:`LifecycleView.versions`.
* A bad reference (unknown id, wrong target kind, another subject, stale amendment, a
  resolution of an objection that is already resolved...) is reported as an
  :class:`Anomaly` and the entry is otherwise ignored; resolution never raises on data.
* Lifecycle entries aimed at any version of a logical record apply to the whole logical
  record; an ``AMEND`` must aim at the current head (otherwise it is a stale amendment).

Counting (:func:`counts`) turns a current record plus its catalog category into "does this
record count at ``as_of``" — the single place where the time limits of the domain apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from ledger.catalog import Category

__all__ = [
    "AMEND",
    "DAY",
    "KIND_NAMES",
    "LIFECYCLE_KINDS",
    "OBJECTION",
    "RECORD",
    "REPAIR",
    "RESOLUTION_REJECTED",
    "RESOLUTION_UPHELD",
    "WITHDRAW",
    "Anomaly",
    "CurrentRecord",
    "LedgerEntry",
    "LifecycleView",
    "counting_until",
    "counts",
    "current_view",
    "history_view",
    "resolve",
]

RECORD: Final = 1
AMEND: Final = 2
WITHDRAW: Final = 3
OBJECTION: Final = 4
RESOLUTION_UPHELD: Final = 5
REPAIR: Final = 6
RESOLUTION_REJECTED: Final = 7
"""Record kinds, identical to ``CREDIT_KIND_*`` in ``contracts/src/Common.sol``."""

KIND_NAMES: Final[dict[int, str]] = {
    RECORD: "record",
    AMEND: "amend",
    WITHDRAW: "withdraw",
    OBJECTION: "objection",
    RESOLUTION_UPHELD: "resolution_upheld",
    REPAIR: "repair",
    RESOLUTION_REJECTED: "resolution_rejected",
}
LIFECYCLE_KINDS: Final = frozenset(KIND_NAMES) - {RECORD}
DAY: Final = 86_400
_ZERO32: Final = bytes(32)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One entry as the chain holds it (the fields rules and lifecycle need).

    ``subject`` is the keyed pseudonym (32 bytes); ``subject_kind`` 1 person, 2 entity;
    ``category`` the catalog id; times are unix seconds; ``effective_until`` 0 is open;
    ``ref`` None (or 32 zero bytes, as on chain) for none; ``seq`` the global chain order;
    ``recorded_at`` the block timestamp.
    """

    id: bytes
    kind: int
    subject: bytes
    subject_kind: int
    category: int
    agency: str
    occurred_at: int
    effective_from: int
    effective_until: int
    ref: bytes | None
    seq: int
    recorded_at: int
    amount: int = 0


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A lifecycle entry that could not be applied, and why (``code`` is stable)."""

    entry_id: bytes
    code: str
    detail: str
    ref: bytes | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "entry": "0x" + self.entry_id.hex(),
            "code": self.code,
            "detail": self.detail,
            "ref": None if self.ref is None else "0x" + self.ref.hex(),
        }


@dataclass(frozen=True, slots=True)
class CurrentRecord:
    """One version of a logical record with its lifecycle flags at ``as_of``.

    ``id`` is this version; ``root`` the original record; ``chain`` every version from the
    original to this one. ``repaired`` is true once the repair's ``effective_from`` has
    passed (``repaired_from`` keeps the date); ``objection_upheld`` means an objection
    against it was upheld. ``superseded_by`` is set only on versions that are not current.
    """

    id: bytes
    root: bytes
    chain: tuple[bytes, ...]
    subject: bytes
    subject_kind: int
    category: int
    agency: str
    occurred_at: int
    effective_from: int
    effective_until: int
    amount: int
    seq: int
    recorded_at: int
    disputed: bool = False
    withdrawn: bool = False
    objection_upheld: bool = False
    repaired: bool = False
    repaired_from: int | None = None
    superseded_by: bytes | None = None
    lifecycle: tuple[bytes, ...] = ()
    """Ids of the lifecycle entries that touched this logical record, in chain order."""


@dataclass
class _State:
    head: LedgerEntry
    chain: list[bytes]
    lifecycle: list[bytes] = field(default_factory=list)
    open_objections: set[bytes] = field(default_factory=set)
    withdrawn: bool = False
    upheld: bool = False
    repaired_from: int | None = None


@dataclass(frozen=True, slots=True)
class LifecycleView:
    """Result of :func:`resolve`: current records (seq order), all versions, anomalies."""

    current: tuple[CurrentRecord, ...]
    versions: tuple[CurrentRecord, ...]
    anomalies: tuple[Anomaly, ...]


def history_view(entries: Iterable[LedgerEntry], as_of: int) -> list[LedgerEntry]:
    """The raw entries visible at ``as_of``, in chain order: nothing folded, nothing hidden."""
    return sorted((e for e in entries if e.recorded_at <= as_of), key=lambda e: e.seq)


def _ref(entry: LedgerEntry) -> bytes | None:
    return None if entry.ref is None or entry.ref == _ZERO32 else entry.ref


def resolve(
    entries: Iterable[LedgerEntry], as_of: int, *, with_versions: bool = True
) -> LifecycleView:
    """Fold the entries visible at ``as_of`` into logical records; never raises on data.

    ``with_versions=False`` skips building superseded versions (evaluation needs heads only).
    """
    entries = list(entries)
    visible = history_view(entries, as_of)
    seen: dict[bytes, LedgerEntry] = {}
    root_of: dict[bytes, bytes] = {}  # version id -> root id
    states: dict[bytes, _State] = {}  # root id -> state
    objection_root: dict[bytes, bytes] = {}  # objection id -> root id
    resolved: set[bytes] = set()
    anomalies: list[Anomaly] = []
    all_ids = {e.id for e in entries}  # to tell a forward reference from an unknown one

    def bad(e: LedgerEntry, code: str, detail: str) -> None:
        anomalies.append(Anomaly(e.id, code, detail, _ref(e)))

    def target_state(e: LedgerEntry) -> _State | None:
        """The logical record a lifecycle entry aims at, or None after reporting why."""
        ref = _ref(e)
        if ref is None:
            bad(e, "missing-ref", f"{KIND_NAMES[e.kind]} entry has no reference")
            return None
        if ref not in seen:
            if ref in all_ids:
                bad(e, "forward-ref", "reference to an entry that is later in chain order")
            else:
                bad(e, "unknown-ref", "reference to no known record of this subject")
            return None
        if ref not in root_of:
            bad(e, "wrong-ref-kind", f"{KIND_NAMES[e.kind]} must refer to a record or amendment")
            return None
        state = states[root_of[ref]]
        if state.head.subject != e.subject:
            bad(e, "subject-mismatch", "referenced record belongs to another subject")
            return None
        return state

    for e in visible:
        if e.id in seen:
            bad(e, "duplicate-id", "an entry with this id was already recorded")
            continue
        seen[e.id] = e
        if e.kind == RECORD:
            if _ref(e) is not None:
                bad(e, "unexpected-ref", "an original record carries a reference; ignored")
            root_of[e.id] = e.id
            states[e.id] = _State(head=e, chain=[e.id])
        elif e.kind in (AMEND, WITHDRAW, OBJECTION, REPAIR):
            state = target_state(e)
            if state is None:
                continue
            if e.kind == AMEND:
                if _ref(e) != state.head.id:
                    bad(e, "stale-amend", "amends a version that was already superseded")
                    continue
                if state.withdrawn:
                    bad(e, "amend-withdrawn", "amends a withdrawn record")
                    continue
                state.head = e
                state.chain.append(e.id)
                root_of[e.id] = state.chain[0]
            elif e.kind == WITHDRAW:
                if state.withdrawn:
                    bad(e, "already-withdrawn", "record was already withdrawn")
                    continue
                state.withdrawn = True
            elif e.kind == OBJECTION:
                state.open_objections.add(e.id)
                objection_root[e.id] = state.chain[0]
            else:  # REPAIR
                if state.repaired_from is not None:
                    bad(e, "already-repaired", "record was already repaired")
                    continue
                state.repaired_from = e.effective_from
            state.lifecycle.append(e.id)
        elif e.kind in (RESOLUTION_UPHELD, RESOLUTION_REJECTED):
            ref = _ref(e)
            if ref is None:
                bad(e, "missing-ref", "resolution entry has no reference")
                continue
            if ref not in objection_root:
                code = "unknown-ref" if ref not in seen else "wrong-ref-kind"
                if ref not in seen and ref in all_ids:
                    code = "forward-ref"
                bad(e, code, "a resolution must refer to a known objection")
                continue
            state = states[objection_root[ref]]
            if state.head.subject != e.subject:
                bad(e, "subject-mismatch", "objection belongs to another subject")
                continue
            if ref in resolved:
                bad(e, "already-resolved", "objection was already resolved")
                continue
            resolved.add(ref)
            state.open_objections.discard(ref)
            if e.kind == RESOLUTION_UPHELD:
                state.upheld = True
            state.lifecycle.append(e.id)
        else:
            bad(e, "unknown-kind", f"unknown entry kind {e.kind}")

    current: list[CurrentRecord] = []
    versions: list[CurrentRecord] = []
    for root, state in states.items():
        flags = _flags(state, as_of)
        if not with_versions:
            current.append(_record(state.head, root, tuple(state.chain), state, flags))
            continue
        for i, vid in enumerate(state.chain):
            version = _record(seen[vid], root, tuple(state.chain[: i + 1]), state, flags)
            if i + 1 < len(state.chain):
                version = _replace_superseded(version, state.chain[i + 1])
            versions.append(version)
        current.append(versions[-1])
    current.sort(key=lambda r: r.seq)
    versions.sort(key=lambda r: r.seq)
    return LifecycleView(tuple(current), tuple(versions), tuple(anomalies))


def _flags(state: _State, as_of: int) -> tuple[bool, bool, bool, bool]:
    repaired = state.repaired_from is not None and state.repaired_from <= as_of
    return bool(state.open_objections), state.withdrawn, state.upheld, repaired


def _record(
    e: LedgerEntry,
    root: bytes,
    chain: tuple[bytes, ...],
    state: _State,
    flags: tuple[bool, bool, bool, bool],
) -> CurrentRecord:
    disputed, withdrawn, upheld, repaired = flags
    return CurrentRecord(
        id=e.id,
        root=root,
        chain=chain,
        subject=e.subject,
        subject_kind=e.subject_kind,
        category=e.category,
        agency=e.agency,
        occurred_at=e.occurred_at,
        effective_from=e.effective_from,
        effective_until=e.effective_until,
        amount=e.amount,
        seq=e.seq,
        recorded_at=e.recorded_at,
        disputed=disputed,
        withdrawn=withdrawn,
        objection_upheld=upheld,
        repaired=repaired,
        repaired_from=state.repaired_from,
        lifecycle=tuple(state.lifecycle),
    )


def _replace_superseded(record: CurrentRecord, by: bytes) -> CurrentRecord:
    return replace(record, superseded_by=by)


def current_view(entries: Iterable[LedgerEntry], as_of: int) -> list[CurrentRecord]:
    """The current version of every logical record at ``as_of`` (anomalies: :func:`resolve`)."""
    return list(resolve(entries, as_of).current)


def counting_until(record: CurrentRecord, category: Category) -> int:
    """First instant at which ``record`` stops counting by time alone (exclusive end).

    The window starts at ``effective_from`` and lasts the category's publicity period for
    published categories, or its retention period for unpublished ones (the catalog sets
    the short period of the minor tier). An explicit ``effective_until`` set by the agency
    replaces that default (a restriction period), capped by retention: nothing counts
    longer than it may be kept.
    """
    days = category.publicity_days if category.publicity_days > 0 else category.retention_days
    end = record.effective_from + days * DAY
    if record.effective_until:
        end = record.effective_until
    return min(end, record.effective_from + category.retention_days * DAY)


def counts(record: CurrentRecord, category: Category, as_of: int) -> bool:
    """Whether ``record`` counts for rules at ``as_of``.

    Never: withdrawn, disputed (open objection), objection upheld, superseded, repaired
    (from the repair's effective date), not yet effective, or past :func:`counting_until`.
    """
    if (
        record.withdrawn
        or record.disputed
        or record.objection_upheld
        or record.repaired
        or record.superseded_by is not None
    ):
        return False
    return record.effective_from <= as_of < counting_until(record, category)
