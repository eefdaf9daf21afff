"""Merkle list roots: membership, non-membership, adversarial proofs."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidInput
from ledger.merkle_lists import (
    EMPTY_ROOT,
    ListTree,
    root_hash,
    verify_membership,
    verify_non_membership,
)


def sub(i: int) -> bytes:
    return i.to_bytes(32, "big")


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 33])
def test_every_member_and_every_gap(size: int) -> None:
    tree = ListTree("black", [sub(2 * i + 2) for i in range(size)])
    for i in range(size):
        proof = tree.membership_proof(sub(2 * i + 2))
        assert proof.index == i
        assert verify_membership(tree.root, proof, "black")
    for i in range(size + 1):  # gaps, including before the first and after the last
        proof = tree.non_membership_proof(sub(2 * i + 1))
        assert verify_non_membership(tree.root, proof, "black")


def test_empty_list() -> None:
    tree = ListTree("red", [])
    assert tree.root == EMPTY_ROOT == root_hash(0, hashlib.sha256(b"").digest())
    proof = tree.non_membership_proof(sub(5))
    assert verify_non_membership(tree.root, proof)
    with pytest.raises(InvalidInput):
        tree.membership_proof(sub(5))
    assert not verify_non_membership(ListTree("red", [sub(1)]).root, proof)


def test_single_element() -> None:
    tree = ListTree("red", [sub(5)])
    assert verify_membership(tree.root, tree.membership_proof(sub(5)))
    assert verify_non_membership(tree.root, tree.non_membership_proof(sub(4)))
    assert verify_non_membership(tree.root, tree.non_membership_proof(sub(6)))
    with pytest.raises(InvalidInput):
        tree.non_membership_proof(sub(5))


def test_neighbour_proofs_do_not_prove_a_member_absent() -> None:
    tree = ListTree("black", [sub(i) for i in (10, 20, 30, 40)])
    gap = tree.non_membership_proof(sub(25))
    # Reuse the bracket for a member or for a value outside it.
    for other in (20, 30, 15, 35):
        forged = dataclasses.replace(gap, subject=sub(other))
        assert not verify_non_membership(tree.root, forged)
    # Non-adjacent bracket (skip the member 30) is rejected.
    forged = dataclasses.replace(gap, right=tree.membership_proof(sub(40)))
    assert not verify_non_membership(tree.root, dataclasses.replace(forged, subject=sub(30)))
    # Claiming "before the first" with the second leaf is rejected.
    first = tree.non_membership_proof(sub(5))
    assert verify_non_membership(tree.root, first)
    forged = dataclasses.replace(first, right=tree.membership_proof(sub(20)), subject=sub(15))
    assert not verify_non_membership(tree.root, forged)
    # Claiming "after the last" with a middle leaf is rejected.
    forged = dataclasses.replace(
        tree.non_membership_proof(sub(45)), left=tree.membership_proof(sub(30)), subject=sub(45)
    )
    assert not verify_non_membership(tree.root, forged)


def test_membership_forgeries() -> None:
    tree = ListTree("black", [sub(i) for i in range(1, 8)])
    proof = tree.membership_proof(sub(3))
    assert not verify_membership(tree.root, dataclasses.replace(proof, subject=sub(4)))
    assert not verify_membership(tree.root, dataclasses.replace(proof, index=proof.index + 1))
    assert not verify_membership(tree.root, dataclasses.replace(proof, size=8))
    assert not verify_membership(tree.root, dataclasses.replace(proof, path=proof.path[:-1]))
    assert not verify_membership(tree.root, dataclasses.replace(proof, path=(*proof.path, b"x")))
    assert not verify_membership(tree.root, dataclasses.replace(proof, index=-1))
    assert not verify_membership(tree.root, proof, "red")  # list id bound into the leaf
    other = ListTree("red", [sub(i) for i in range(1, 8)])
    assert other.root != tree.root
    assert not verify_membership(other.root, dataclasses.replace(proof, list_id="red"))
    assert not verify_membership(tree.root, dataclasses.replace(proof, subject=b"short"))
    # A node hash is never accepted as a leaf (domain separation).
    inner = ListTree("black", [sub(1), sub(2)])
    assert inner.root != ListTree("black", [inner.root]).root


def test_rejects_bad_subjects() -> None:
    with pytest.raises(InvalidInput):
        ListTree("red", [b"too short"])


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.integers(0, 500), max_size=40),
    st.integers(0, 500),
)
def test_property(members: set[int], probe: int) -> None:
    tree = ListTree("key_supervision", [sub(m) for m in members])
    assert (
        tree.root == ListTree("key_supervision", [sub(m) for m in reversed(sorted(members))]).root
    )
    if probe in members:
        assert verify_membership(tree.root, tree.membership_proof(sub(probe)))
    else:
        assert verify_non_membership(tree.root, tree.non_membership_proof(sub(probe)))
