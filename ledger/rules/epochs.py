"""What an evaluation epoch commits to: per-list Merkle trees, their combined root, the count.

Shared by the service (:meth:`ledger.rules_service.RulesService.evaluate_full` anchors it,
:meth:`~ledger.rules_service.RulesService.recompute_epoch` re-runs it) and the chain-only audit
(:class:`ledger.audit.Auditor` re-evaluates every anchored epoch), so both compute the root the
same way. Pure: rule set, catalog, entries and ``as_of`` in, commitment out.

``listsRoot`` combines the :class:`~ledger.merkle_lists.ListTree` roots of every list the rule
set declares (built-in red and black included, empty lists too)::

    listsRoot = SHA-256(0x03 || "zhixin.lists.v1" || u16be(n)
                        || for each list id in ascending order:
                             u16be(len(id)) || id_utf8 || listRoot(id))

``memberCount`` is the sum of the list sizes (distinct subjects per list).

The entries of an epoch are every record in blocks *before* the anchoring block (the anchor is
sent after the evaluation, so a record in its own block was not seen), each with its block's
timestamp as ``recorded_at``; :func:`ledger.rules.evaluate` then ignores those recorded after
``as_of``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ledger.catalog import Catalog
from ledger.lifecycle import LedgerEntry
from ledger.merkle_lists import ListTree
from ledger.rules.evaluate import Evaluation, evaluate
from ledger.rules.model import RuleSet

__all__ = ["LISTS_DOMAIN", "EpochCommitment", "evaluate_epoch", "list_trees", "lists_root"]

LISTS_DOMAIN: Final = b"\x03zhixin.lists.v1"


def lists_root(roots: Mapping[str, bytes]) -> bytes:
    """Combine per-list roots into the one root anchored on chain (see the module docstring)."""
    h = hashlib.sha256(LISTS_DOMAIN + len(roots).to_bytes(2, "big"))
    for list_id in sorted(roots):
        name = list_id.encode()
        h.update(len(name).to_bytes(2, "big") + name + roots[list_id])
    return h.digest()


def list_trees(rule_set: RuleSet, ev: Evaluation) -> dict[str, ListTree]:
    """One tree per list the rule set declares, over the evaluation's members of that list."""
    return {lid: ListTree(lid, ev.members(lid)) for lid in rule_set.list_ids}


@dataclass(frozen=True)
class EpochCommitment:
    """An evaluation and the values an epoch anchors for it."""

    evaluation: Evaluation
    trees: dict[str, ListTree]
    lists_root: bytes
    member_count: int
    records: int  # entries given (before the as_of filter)

    def list_roots(self) -> dict[str, dict[str, Any]]:
        """``{list id: {"root": 0x.., "size": n}}``, as the service stores and reports it."""
        return {lid: {"root": "0x" + t.root.hex(), "size": t.size} for lid, t in self.trees.items()}

    def matches(self, lists_root: bytes, member_count: int) -> bool:
        return self.lists_root == lists_root and self.member_count == member_count


def evaluate_epoch(
    rule_set: RuleSet,
    catalog: Catalog,
    entries: Iterable[LedgerEntry],
    as_of: int,
    *,
    engine: str | None = None,
    workers: int = 1,
) -> EpochCommitment:
    """Evaluate ``rule_set`` over ``entries`` at ``as_of`` and build what the epoch anchors."""
    entries = list(entries)
    ev = evaluate(rule_set, catalog, entries, as_of, engine=engine, workers=workers)
    trees = list_trees(rule_set, ev)
    root = lists_root({lid: t.root for lid, t in trees.items()})
    return EpochCommitment(ev, trees, root, sum(t.size for t in trees.values()), len(entries))
