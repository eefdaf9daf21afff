"""Pure parts of the rules service: the combined lists root and on-chain identities.
(The service end to end runs in tests/api/test_rules_api.py on the embedded chain.)"""

from __future__ import annotations

import hashlib

from eth_utils import keccak

from ledger.merkle_lists import EMPTY_ROOT, ListTree
from ledger.rules_registry import rule_set_id, version_number
from ledger.rules_service import LISTS_DOMAIN, entry_from_row, lists_root


def test_lists_root_is_documented_formula_and_binds_every_list() -> None:
    a = ListTree("black", [b"\x01" * 32, b"\x02" * 32]).root
    roots = {"red": EMPTY_ROOT, "black": a}
    expected = hashlib.sha256(
        LISTS_DOMAIN
        + (2).to_bytes(2, "big")
        + (5).to_bytes(2, "big")
        + b"black"
        + a
        + (3).to_bytes(2, "big")
        + b"red"
        + EMPTY_ROOT
    ).digest()
    assert lists_root(roots) == expected
    assert lists_root(dict(reversed(list(roots.items())))) == expected  # order-free
    assert lists_root({"black": a}) != expected  # a missing (even empty) list changes it
    assert lists_root({"red": a, "black": EMPTY_ROOT}) != expected  # names are bound


def test_on_chain_identities() -> None:
    assert rule_set_id("district.joint-credit") == keccak(text="district.joint-credit")
    v = version_number("2025.1")
    assert v == int.from_bytes(keccak(text="2025.1")[:8], "big") and v < 2**64
    assert version_number("2025.2") != v


def test_entry_from_row() -> None:
    h = "0x" + "11" * 32
    e = entry_from_row(
        {
            "id": h,
            "kind": 1,
            "subject": "0x" + "22" * 32,
            "subject_kind": 2,
            "category": 104,
            "agency": "0x" + "ab" * 20,
            "occurred_at": 1,
            "effective_from": 2,
            "effective_until": 0,
            "ref": "0x" + "00" * 32,
            "seq": 7,
            "block_timestamp": 9,
            "amount": "5",
        }
    )
    assert (
        e.ref is None and e.recorded_at == 9 and e.amount == 5 and e.id == bytes.fromhex("11" * 32)
    )
