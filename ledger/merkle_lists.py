"""List membership at an evaluation epoch as a Merkle root, with (non-)membership proofs.

Hashing (SHA-256 throughout, domain separated as in RFC 9162; SHA-256 because it is ~20x faster
than keccak here and the roots are verified off chain, where the chain only anchors them)::

    leaf  = SHA-256(0x00 || "zhixin.list.v1" || u16be(len(list_id)) || list_id_utf8 || subject)
    node  = SHA-256(0x01 || left || right)
    root  = SHA-256(0x02 || u64be(size) || tree_head)   (tree_head = SHA-256("") when empty)

The published root binds the leaf count, so a proof cannot lie about ``size`` (which the
end-of-list checks of a non-membership proof rely on).

Invariants:

* Leaves are the list's distinct 32-byte subject pseudonyms in ascending byte order; the tree
  shape is RFC 9162's (an unpaired last node is carried up unchanged), so ``(index, size)``
  fixes every step of a path and a verifier learns the leaf's exact position.
* Because leaves are sorted, absence is provable: two proofs for adjacent indices ``i, i+1``
  whose subjects bracket the queried one (or index 0 / ``size-1`` alone at either end, or an
  empty root for an empty list). A proof for the neighbour of a member proves nothing else.
* The list id is inside every leaf, so a proof from one list never verifies for another.
* Verifiers are total: malformed proofs return False, they never raise.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ledger.errors import InvalidInput

__all__ = [
    "EMPTY_ROOT",
    "ListTree",
    "MembershipProof",
    "NonMembershipProof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_membership",
    "verify_non_membership",
]

_LEAF: Final = b"\x00zhixin.list.v1"
_NODE: Final = b"\x01"
_ROOT: Final = b"\x02"


def root_hash(size: int, head: bytes) -> bytes:
    """The published root: the tree head bound to the number of leaves."""
    return hashlib.sha256(_ROOT + size.to_bytes(8, "big") + head).digest()


EMPTY_ROOT: Final = root_hash(0, hashlib.sha256(b"").digest())


def leaf_hash(list_id: str, subject: bytes) -> bytes:
    """Domain-separated leaf of (list id, subject pseudonym)."""
    name = list_id.encode()
    return hashlib.sha256(_LEAF + len(name).to_bytes(2, "big") + name + subject).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


@dataclass(frozen=True, slots=True)
class MembershipProof:
    """``subject`` is leaf ``index`` of a ``size``-leaf tree of ``list_id``; ``path`` bottom-up."""

    list_id: str
    subject: bytes
    index: int
    size: int
    path: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class NonMembershipProof:
    """``subject`` is not on ``list_id``: bracketed by ``left``/``right`` adjacent members."""

    list_id: str
    subject: bytes
    size: int
    left: MembershipProof | None
    right: MembershipProof | None


class ListTree:
    """The Merkle tree of one list's members at one epoch."""

    def __init__(self, list_id: str, subjects: Iterable[bytes]) -> None:
        members = sorted(set(subjects))
        for s in members:
            if not isinstance(s, bytes) or len(s) != 32:
                raise InvalidInput("list members must be 32-byte subject pseudonyms")
        self.list_id = list_id
        self.subjects: list[bytes] = members
        self._levels: list[list[bytes]] = [[leaf_hash(list_id, s) for s in members]]
        while len(self._levels[-1]) > 1:
            level = self._levels[-1]
            up = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                up.append(level[-1])
            self._levels.append(up)

    @property
    def size(self) -> int:
        return len(self.subjects)

    @property
    def root(self) -> bytes:
        return root_hash(self.size, self._levels[-1][0]) if self.subjects else EMPTY_ROOT

    def _index(self, subject: bytes) -> tuple[int, bool]:
        i = bisect.bisect_left(self.subjects, subject)
        return i, i < self.size and self.subjects[i] == subject

    def _proof(self, index: int) -> MembershipProof:
        path: list[bytes] = []
        i = index
        for level in self._levels[:-1]:
            sibling = i ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            i //= 2
        return MembershipProof(self.list_id, self.subjects[index], index, self.size, tuple(path))

    def membership_proof(self, subject: bytes) -> MembershipProof:
        """Proof that ``subject`` is a member; :class:`InvalidInput` if it is not."""
        i, found = self._index(subject)
        if not found:
            raise InvalidInput("subject is not on the list; ask for a non-membership proof")
        return self._proof(i)

    def non_membership_proof(self, subject: bytes) -> NonMembershipProof:
        """Proof that ``subject`` is absent; :class:`InvalidInput` if it is a member."""
        i, found = self._index(subject)
        if found:
            raise InvalidInput("subject is on the list; ask for a membership proof")
        left = self._proof(i - 1) if i > 0 else None
        right = self._proof(i) if i < self.size else None
        return NonMembershipProof(self.list_id, subject, self.size, left, right)


def _root_from_path(proof: MembershipProof) -> bytes | None:
    if not (0 <= proof.index < proof.size) or len(proof.subject) != 32:
        return None
    current = leaf_hash(proof.list_id, proof.subject)
    i, width, used = proof.index, proof.size, 0
    while width > 1:
        if i % 2 == 1:
            if used >= len(proof.path):
                return None
            current = node_hash(proof.path[used], current)
            used += 1
        elif i + 1 < width:
            if used >= len(proof.path):
                return None
            current = node_hash(current, proof.path[used])
            used += 1
        i //= 2
        width = (width + 1) // 2
    return root_hash(proof.size, current) if used == len(proof.path) else None


def verify_membership(root: bytes, proof: MembershipProof, list_id: str | None = None) -> bool:
    """True iff ``proof`` shows its subject under ``root`` (and on ``list_id`` if given)."""
    try:
        if list_id is not None and proof.list_id != list_id:
            return False
        return _root_from_path(proof) == root
    except (TypeError, AttributeError, ValueError):
        return False


def verify_non_membership(
    root: bytes, proof: NonMembershipProof, list_id: str | None = None
) -> bool:
    """True iff the bracketing members are adjacent leaves under ``root`` around the subject."""
    try:
        if list_id is not None and proof.list_id != list_id:
            return False
        if len(proof.subject) != 32:
            return False
        left, right = proof.left, proof.right
        if proof.size == 0:
            return left is None and right is None and root == EMPTY_ROOT
        for side in (left, right):
            if side is not None and not (
                side.list_id == proof.list_id
                and side.size == proof.size
                and verify_membership(root, side)
            ):
                return False
        if left is None and right is None:
            return False
        if left is None:
            return right is not None and right.index == 0 and proof.subject < right.subject
        if right is None:
            return left.index == proof.size - 1 and left.subject < proof.subject
        return right.index == left.index + 1 and left.subject < proof.subject < right.subject
    except (TypeError, AttributeError, ValueError):
        return False
