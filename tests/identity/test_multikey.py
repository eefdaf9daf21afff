"""Ed25519 Multikey and did:key: the W3C vector key, round trips, and every rejection path."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import base58
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.multikey import (
    InvalidDid,
    InvalidMultikey,
    decode_private_multikey,
    decode_public_multikey,
    did_key_from_public_key,
    encode_private_multikey,
    encode_public_multikey,
    public_key_from_did_key,
    resolve_did_key,
    verification_method_id,
)
from ledger.errors import InvalidInput

VECTORS = Path(__file__).parent / "vectors"
KEY_PAIR = json.loads((VECTORS / "keyPair.json").read_text())
PUBLIC = KEY_PAIR["publicKeyMultibase"]
PRIVATE = KEY_PAIR["privateKeyMultibase"]
DID = f"did:key:{PUBLIC}"


def _raw(key: object) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)  # type: ignore[attr-defined]


def _mb(raw: bytes) -> str:
    return "z" + base58.b58encode(raw).decode()


def test_vector_key_pair_round_trips_and_matches() -> None:
    private = decode_private_multikey(PRIVATE)
    public = decode_public_multikey(PUBLIC)
    assert _raw(private.public_key()) == _raw(public)
    assert encode_private_multikey(private) == PRIVATE
    assert encode_public_multikey(public) == PUBLIC
    assert PUBLIC.startswith("z6Mk")  # every Ed25519 Multikey does


def test_did_key_of_vector_key() -> None:
    public = decode_public_multikey(PUBLIC)
    assert did_key_from_public_key(public) == DID
    assert _raw(public_key_from_did_key(DID)) == _raw(public)
    # the verification method id resolves to the same key, so it can serve as resolve_key
    assert _raw(public_key_from_did_key(f"{DID}#{PUBLIC}")) == _raw(public)
    assert verification_method_id(DID) == f"{DID}#{PUBLIC}"


def test_resolve_did_key_document() -> None:
    doc = resolve_did_key(DID)
    vm_id = f"{DID}#{PUBLIC}"
    assert doc["@context"] == [
        "https://www.w3.org/ns/did/v1",
        "https://w3id.org/security/multikey/v1",
    ]
    assert doc["id"] == DID
    assert doc["verificationMethod"] == [
        {"id": vm_id, "type": "Multikey", "controller": DID, "publicKeyMultibase": PUBLIC}
    ]
    for relation in (
        "authentication",
        "assertionMethod",
        "capabilityInvocation",
        "capabilityDelegation",
    ):
        assert doc[relation] == [vm_id]
    assert "keyAgreement" not in doc
    doc["id"] = "mutated"
    assert resolve_did_key(DID)["id"] == DID  # a fresh document each time


def test_did_document_is_valid_json_ld_with_bundled_contexts() -> None:
    from identity.jsonld import canonicalize_rdfc

    nquads = canonicalize_rdfc(resolve_did_key(DID))
    assert f'<https://w3id.org/security#publicKeyMultibase> "{PUBLIC}"' in nquads
    assert "<https://w3id.org/security#assertionMethod>" in nquads


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (PUBLIC[1:], "prefix 'z'"),  # no multibase prefix
        ("m" + PUBLIC[1:], "prefix 'z'"),  # base64 multibase
        ("z", "length"),
        ("z" + "1" * 100, "length"),
        ("z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ0", "base58btc"),  # '0' not in alphabet
        ("z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQl", "base58btc"),  # 'l' neither
        (_mb(b"\xe7\x01" + bytes(33)), "multicodec"),  # secp256k1-pub
        (_mb(b"\xec\x01" + bytes(32)), "multicodec"),  # x25519-pub
        (PRIVATE, "multicodec"),  # a private key where a public one belongs
        (_mb(b"\xed\x01" + bytes(31)), "31 key bytes"),
        (_mb(b"\xed\x01" + bytes(33)), "33 key bytes"),
        ("z1" + PUBLIC[1:], "multicodec"),  # a leading '1' is a leading zero byte
        (123, "string"),
        (None, "string"),
    ],
)
def test_invalid_public_multikey(value: object, fragment: str) -> None:
    with pytest.raises(InvalidMultikey, match=fragment) as info:
        decode_public_multikey(value)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidInput) and isinstance(info.value, ValueError)
    assert info.value.code == "invalid-multikey"


def test_invalid_private_multikey_never_echoes_the_key() -> None:
    with pytest.raises(InvalidMultikey, match="multicodec") as info:
        decode_private_multikey(PUBLIC)
    with pytest.raises(InvalidMultikey, match="33 key bytes") as info:
        decode_private_multikey(_mb(b"\x80\x26" + bytes(33)))
    assert PRIVATE not in str(info.value)


@pytest.mark.parametrize(
    ("did", "fragment"),
    [
        (f"did:web:{PUBLIC}", "did:key"),
        (PUBLIC, "did:key"),
        ("did:key:", "Ed25519"),
        (f"did:key:{PUBLIC}/path", "bare Multikey"),
        (f"did:key:{PUBLIC}?query", "bare Multikey"),
        (f"did:key:{PUBLIC}#other", "fragment"),
        (f"did:key:{PRIVATE}", "Ed25519"),
        (f"did:key:{PUBLIC[:-1]}", "Ed25519"),
        (None, "string"),
    ],
)
def test_invalid_did_key(did: object, fragment: str) -> None:
    with pytest.raises(InvalidDid, match=fragment) as info:
        public_key_from_did_key(did)  # type: ignore[arg-type]
    assert info.value.code == "invalid-did"
    with pytest.raises(InvalidDid):
        resolve_did_key(did)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_round_trip_any_key(seed: bytes) -> None:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key()
    assert _raw(decode_public_multikey(encode_public_multikey(public))) == _raw(public)
    assert _raw(decode_private_multikey(encode_private_multikey(private)).public_key()) == _raw(
        public
    )
    did = did_key_from_public_key(public)
    assert _raw(public_key_from_did_key(did)) == _raw(public)
    assert resolve_did_key(did)["verificationMethod"][0]["id"] == verification_method_id(did)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_decoding_arbitrary_text_raises_only_invalid_multikey(text: str) -> None:
    with contextlib.suppress(InvalidMultikey):
        decode_public_multikey(text)
    with contextlib.suppress(InvalidDid):
        public_key_from_did_key("did:key:" + text)
