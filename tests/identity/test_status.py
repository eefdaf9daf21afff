"""Bitstring Status List v1.0: encoding (with the spec's published example), list credentials,
and every failure of the status check, each with its precise code."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from identity.status import (
    FAILURE_CODES,
    MIN_ENTRIES,
    StatusListError,
    StatusPurpose,
    bit_at,
    bitstring_from_indexes,
    bitstring_from_words,
    check_status,
    decode_bitstring,
    encode_bitstring,
    issue_status_list_credential,
    list_id_from_url,
    status_entry,
    status_list_credential,
    status_list_url,
)

# Bitstring Status List v1.0 (W3C Recommendation 2025-05-15), Example 3: an empty 16 KiB list.
SPEC_EXAMPLE_ENCODED = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
SPEC_EXAMPLE_LIST: dict[str, Any] = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "id": "https://example.com/credentials/status/3",
    "type": ["VerifiableCredential", "BitstringStatusListCredential"],
    "issuer": "did:example:12345",
    "validFrom": "2021-04-05T14:27:40Z",
    "credentialSubject": {
        "id": "https://example.com/status/3#list",
        "type": "BitstringStatusList",
        "statusPurpose": "revocation",
        "encodedList": SPEC_EXAMPLE_ENCODED,
    },
}
# Example 1's revocation entry points into that list
SPEC_EXAMPLE_ENTRY = {
    "id": "https://example.com/credentials/status/3#94567",
    "type": "BitstringStatusListEntry",
    "statusPurpose": "revocation",
    "statusListIndex": "94567",
    "statusListCredential": "https://example.com/credentials/status/3",
}

BASE = "https://zhixin.example/status"
ISSUER = "did:ethr:0x0000000000000000000000000000000000000001"
VM = ISSUER + "#key-1"
NOW = datetime(2025, 6, 1, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def resolve_key(vm: str) -> Ed25519PublicKey:
    if vm != VM:
        raise LookupError(vm)
    return KEY.public_key()


def b64(data: bytes) -> str:
    return "u" + base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_spec_example_decodes_to_an_empty_minimum_list() -> None:
    bits = decode_bitstring(SPEC_EXAMPLE_ENCODED)
    assert len(bits) * 8 == MIN_ENTRIES and not any(bits)
    report = check_status(SPEC_EXAMPLE_ENTRY, lambda url: SPEC_EXAMPLE_LIST, now=NOW)
    assert report.ok
    [e] = report.entries
    assert (e.code, e.purpose, e.index, e.status) == ("ok", "revocation", 94567, 0)


def test_round_trip_and_bit_order() -> None:
    idx = [0, 7, 8, 94567, MIN_ENTRIES - 1]
    bits = bitstring_from_indexes(MIN_ENTRIES, idx)
    assert bits[0] == 0b1000_0001 and bits[1] == 0b1000_0000  # left-most bit is index 0
    enc = encode_bitstring(bits)
    assert enc.startswith("u") and "=" not in enc and len(enc) < 200
    assert enc == encode_bitstring(bits)  # deterministic (mtime 0)
    out = decode_bitstring(enc)
    assert out == bits
    assert [i for i in range(MIN_ENTRIES) if bit_at(out, i)] == idx
    # the chain's 256-bit words, big-endian, are the same bitstring
    words = [0] * (MIN_ENTRIES // 256)
    for i in idx:
        words[i // 256] |= 1 << (255 - i % 256)
    assert bitstring_from_words(words) == bits


@pytest.mark.parametrize(
    "encoded",
    [
        SPEC_EXAMPLE_ENCODED[1:],  # no multibase prefix
        "z" + SPEC_EXAMPLE_ENCODED[1:],  # base58btc prefix
        SPEC_EXAMPLE_ENCODED + "==",  # padding
        SPEC_EXAMPLE_ENCODED.replace("-", "+"),  # base64, not base64url
        "u",
        b64(b"not gzip at all"),
        b64(gzip.compress(bytes(MIN_ENTRIES // 8), mtime=0)[:-12]),  # truncated
        b64(gzip.compress(bytes(MIN_ENTRIES // 8), mtime=0) + b"junk"),  # trailing data
        b64(gzip.compress(bytes(3 * 1024 * 1024), mtime=0)),  # expands beyond the 2 MiB bound
        12345,
    ],
)
def test_decode_rejects_malformed(encoded: Any) -> None:
    with pytest.raises(StatusListError):
        decode_bitstring(encoded)


def test_encode_enforces_spec_minimum() -> None:
    with pytest.raises(StatusListError, match="minimum"):
        encode_bitstring(bytes(MIN_ENTRIES // 8 - 1))
    with pytest.raises(StatusListError):
        bitstring_from_indexes(MIN_ENTRIES, [MIN_ENTRIES])


def test_urls_and_entries() -> None:
    url = status_list_url(BASE + "/", 7)
    assert url == BASE + "/7" and list_id_from_url(BASE, url) == 7
    for bad in (BASE + "/07", BASE + "/x", BASE + "/", "https://other/7", BASE + "/7#list"):
        assert list_id_from_url(BASE, bad) is None
    entry = status_entry("suspension", 42, url)
    assert entry == {
        "id": url + "#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "suspension",
        "statusListIndex": "42",
        "statusListCredential": url,
    }
    with pytest.raises(StatusListError):
        status_entry("revocation", -1, url)
    assert StatusPurpose.from_chain(1) is StatusPurpose.REVOCATION
    assert StatusPurpose.SUSPENSION.chain_code == 2


def signed_list(list_id: int, purpose: str, set_bits: list[int], **kw: Any) -> dict[str, Any]:
    return issue_status_list_credential(
        url=status_list_url(BASE, list_id),
        issuer=ISSUER,
        purpose=purpose,
        bitstring=bitstring_from_indexes(MIN_ENTRIES, set_bits),
        valid_from=kw.pop("valid_from", NOW - timedelta(days=1)),
        private_key=KEY,
        verification_method=VM,
        created="2025-05-31T00:00:00Z",
        **kw,
    )


LISTS = {
    status_list_url(BASE, 1): signed_list(1, "revocation", [3]),
    status_list_url(BASE, 2): signed_list(2, "suspension", [4]),
}


def resolve(url: str) -> dict[str, Any]:
    return LISTS[url]


def check(entries: Any, **kw: Any) -> Any:
    kw.setdefault("resolve_key", resolve_key)
    kw.setdefault("now", NOW)
    return check_status(entries, kw.pop("resolver", resolve), **kw)


def test_signed_lists_report_revoked_and_suspended_with_index() -> None:
    r1, s2 = status_list_url(BASE, 1), status_list_url(BASE, 2)
    ok = check([status_entry("revocation", 5, r1), status_entry("suspension", 5, s2)])
    assert ok.ok and [e.code for e in ok.entries] == ["ok", "ok"]
    bad = check([status_entry("revocation", 3, r1), status_entry("suspension", 4, s2)])
    assert not bad.ok and bad.revoked and bad.suspended
    assert [(e.code, e.purpose, e.index, e.status) for e in bad.entries] == [
        ("revoked", "revocation", 3, 1),
        ("suspended", "suspension", 4, 1),
    ]
    assert check(status_entry("revocation", 5, r1), expected_issuer=ISSUER).ok


def entry(**over: Any) -> dict[str, Any]:
    e = status_entry("revocation", 5, status_list_url(BASE, 1))
    e.update(over)
    return {k: v for k, v in e.items() if v is not None}


def test_each_failure_has_a_precise_code() -> None:
    r1 = status_list_url(BASE, 1)
    tampered = dict(LISTS[r1], issuer=ISSUER)
    tampered["credentialSubject"] = dict(tampered["credentialSubject"], encodedList=b64(b""))
    short = gzip.compress(bytes(1024), mtime=0)
    unsigned_short = status_list_credential(
        url=r1,
        issuer=ISSUER,
        purpose="revocation",
        bitstring=bytes(MIN_ENTRIES // 8),
        valid_from=NOW,
    )
    unsigned_short["credentialSubject"]["encodedList"] = b64(short)
    two_purposes = status_list_credential(
        url=r1,
        issuer=ISSUER,
        purpose="revocation",
        bitstring=bytes(MIN_ENTRIES // 8),
        valid_from=NOW - timedelta(days=1),
    )
    two_purposes["credentialSubject"]["statusPurpose"] = ["revocation", "suspension"]
    cases: list[tuple[Any, dict[str, Any], str]] = [
        ("not an object", {}, "malformed-entry"),
        (entry(type="StatusList2021Entry"), {}, "wrong-type"),
        (entry(statusPurpose="message"), {}, "unsupported-purpose"),
        (entry(statusPurpose=None), {}, "malformed-entry"),
        (entry(statusSize=2), {}, "unsupported-status-size"),
        (entry(statusListIndex=5), {}, "malformed-index"),
        (entry(statusListIndex="-5"), {}, "malformed-index"),
        (entry(statusListIndex="5.0"), {}, "malformed-index"),
        (entry(statusListIndex="٣"), {}, "malformed-index"),  # Arabic-Indic digit
        (entry(statusListIndex=str(MIN_ENTRIES)), {}, "index-out-of-range"),
        (entry(statusListIndex="9" * 40), {}, "index-out-of-range"),
        (entry(statusListCredential="relative/path"), {}, "malformed-entry"),
        (entry(statusListCredential=BASE + "/404"), {}, "retrieval-failed"),
        (entry(statusPurpose="suspension"), {}, "purpose-mismatch"),
        (entry(), {"resolver": lambda u: tampered}, "list-proof-invalid"),
        (entry(), {"resolver": lambda u: LISTS[BASE + "/2"]}, "list-id-mismatch"),
        (entry(), {"expected_issuer": "did:ethr:0xother"}, "list-issuer-mismatch"),
        (entry(), {"now": NOW - timedelta(days=2)}, "list-not-yet-valid"),
        (
            entry(),
            {"resolver": lambda u: unsigned_short, "resolve_key": None},
            "list-too-short",
        ),
        (entry(), {"resolver": lambda u: {"type": "nope"}, "resolve_key": None}, "malformed-list"),
        (entry(), {"resolver": lambda u: [1], "resolve_key": None}, "malformed-list"),
    ]
    for ent, kw, code in cases:
        report = check(ent, **kw)
        [got] = report.entries
        assert (got.ok, got.code) == (False, code), (ent, kw, got)
        assert code in FAILURE_CODES
    # a list serving several purposes answers each of them
    rep = check(
        [entry(), entry(statusPurpose="suspension")],
        resolver=lambda u: two_purposes,
        resolve_key=None,
    )
    assert rep.ok
    expiring = signed_list(
        1,
        "revocation",
        [],
        valid_until=NOW - timedelta(hours=1),
        valid_from=NOW - timedelta(days=2),
    )
    [e] = check(entry(), resolver=lambda u: expiring).entries
    assert e.code == "list-expired"
    assert check([]).entries == ()
