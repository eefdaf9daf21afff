"""Ed25519 Multikey encoding and the ``did:key`` method (Ed25519 only).

A *Multikey* is ``'z' + base58btc(multicodec-varint || raw key bytes)`` (W3C Controlled
Identifiers v1.0, "Multikey"; multibase; multicodec ``ed25519-pub`` = 0xed, ``ed25519-priv`` =
0x1300). A ``did:key`` DID is ``did:key:`` followed by the public Multikey; its one verification
method is ``did:key:z...#z...`` (W3C CCG "The did:key Method v0.9").

Invariants:

* Pure: no I/O, no clock, no global state.
* Decoding is strict and total: every malformed input raises :class:`InvalidMultikey` or
  :class:`InvalidDid` (both :class:`~ledger.errors.InvalidInput`), never a bare ``ValueError``
  from a dependency. Accepted inputs round-trip byte for byte (``encode(decode(s)) == s``):
  leading-zero padding or any other non-canonical spelling is rejected.
* Private keys are never part of an error message or a ``repr``.
"""

from __future__ import annotations

from typing import Any, Final

import base58
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ledger.errors import InvalidInput

__all__ = [
    "DID_KEY_PREFIX",
    "ED25519_PRIV_PREFIX",
    "ED25519_PUB_PREFIX",
    "InvalidDid",
    "InvalidMultikey",
    "decode_private_multikey",
    "decode_public_multikey",
    "did_key_from_public_key",
    "encode_private_multikey",
    "encode_public_multikey",
    "public_key_from_did_key",
    "resolve_did_key",
    "verification_method_id",
]

ED25519_PUB_PREFIX: Final = b"\xed\x01"
"""Unsigned-varint of multicodec 0xed (``ed25519-pub``)."""
ED25519_PRIV_PREFIX: Final = b"\x80\x26"
"""Unsigned-varint of multicodec 0x1300 (``ed25519-priv``)."""
DID_KEY_PREFIX: Final = "did:key:"
_KEY_LEN: Final = 32
_B58_ALPHABET: Final = frozenset("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
# An Ed25519 Multikey is 34 bytes, i.e. 46-48 base58 characters; cap before decoding so that a
# hostile megabyte string costs nothing (base58 decoding is quadratic).
_MAX_MULTIBASE_LEN: Final = 64

_DID_CONTEXTS: Final = ("https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1")


class InvalidMultikey(InvalidInput):
    """A Multikey string is not a canonical base58btc Ed25519 key of the expected kind."""

    code = "invalid-multikey"


class InvalidDid(InvalidInput):
    """A DID (or DID URL) is not a well-formed Ed25519 ``did:key``."""

    code = "invalid-did"


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _decode(value: object, prefix: bytes, kind: str) -> bytes:
    """Return the 32 raw key bytes of a multibase Multikey, checking every layer."""
    if not isinstance(value, str):
        raise InvalidMultikey(f"{kind} Multikey must be a string, not {type(value).__name__}")
    if not value.startswith("z"):
        raise InvalidMultikey(f"{kind} Multikey must use multibase base58btc (prefix 'z')")
    body = value[1:]
    if not body or len(value) > _MAX_MULTIBASE_LEN:
        raise InvalidMultikey(f"{kind} Multikey has an impossible length ({len(value)} chars)")
    if not set(body) <= _B58_ALPHABET:
        raise InvalidMultikey(f"{kind} Multikey contains characters outside base58btc")
    raw = base58.b58decode(body)
    if raw[: len(prefix)] != prefix:
        raise InvalidMultikey(
            f"{kind} Multikey has multicodec prefix {raw[:2].hex() or '(none)'}, "
            f"expected {prefix.hex()}"
        )
    key = raw[len(prefix) :]
    if len(key) != _KEY_LEN:
        raise InvalidMultikey(f"{kind} Multikey carries {len(key)} key bytes, expected 32")
    if base58.b58encode(raw).decode("ascii") != body:
        raise InvalidMultikey(f"{kind} Multikey is not in canonical base58btc form")
    return key


def encode_public_multikey(key: Ed25519PublicKey) -> str:
    """Encode an Ed25519 public key as ``publicKeyMultibase`` (``z6Mk...``)."""
    return "z" + base58.b58encode(ED25519_PUB_PREFIX + _raw_public(key)).decode("ascii")


def decode_public_multikey(value: str) -> Ed25519PublicKey:
    """Decode ``publicKeyMultibase``; raise :class:`InvalidMultikey` on any defect."""
    raw = _decode(value, ED25519_PUB_PREFIX, "public")
    return Ed25519PublicKey.from_public_bytes(raw)


def encode_private_multikey(key: Ed25519PrivateKey) -> str:
    """Encode an Ed25519 private key (32-byte seed) as ``secretKeyMultibase``."""
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return "z" + base58.b58encode(ED25519_PRIV_PREFIX + seed).decode("ascii")


def decode_private_multikey(value: str) -> Ed25519PrivateKey:
    """Decode ``secretKeyMultibase``; raise :class:`InvalidMultikey` on any defect."""
    raw = _decode(value, ED25519_PRIV_PREFIX, "private")
    return Ed25519PrivateKey.from_private_bytes(raw)


def did_key_from_public_key(key: Ed25519PublicKey) -> str:
    """Return the ``did:key`` DID of an Ed25519 public key."""
    return DID_KEY_PREFIX + encode_public_multikey(key)


def verification_method_id(did: str) -> str:
    """Return the id of the single verification method of a ``did:key`` (``did#z...``)."""
    _split_did_key(did)
    return f"{did}#{did[len(DID_KEY_PREFIX) :]}"


def _split_did_key(did: object) -> str:
    """Return the Multikey of a bare ``did:key`` DID, or raise :class:`InvalidDid`."""
    if not isinstance(did, str):
        raise InvalidDid(f"DID must be a string, not {type(did).__name__}")
    if not did.startswith(DID_KEY_PREFIX):
        raise InvalidDid("not a did:key DID (expected prefix 'did:key:')")
    msid = did[len(DID_KEY_PREFIX) :]
    if any(c in msid for c in "#?/:;"):
        raise InvalidDid("did:key method-specific id must be a bare Multikey")
    return msid


def public_key_from_did_key(did: str) -> Ed25519PublicKey:
    """Return the Ed25519 key named by a ``did:key`` DID or by its verification method id.

    Accepting ``did:key:z...#z...`` lets this function serve directly as the ``resolve_key``
    callback of :func:`identity.proofs.verify_proof`; the fragment must then repeat the
    Multikey, as it does in the DID document from :func:`resolve_did_key`.
    """
    if not isinstance(did, str):
        raise InvalidDid(f"DID must be a string, not {type(did).__name__}")
    bare, sep, fragment = did.partition("#")
    msid = _split_did_key(bare)
    if sep and fragment != msid:
        raise InvalidDid("did:key fragment does not name the key's own verification method")
    try:
        return decode_public_multikey(msid)
    except InvalidMultikey as exc:
        raise InvalidDid(f"did:key does not carry an Ed25519 public key: {exc.detail}") from exc


def resolve_did_key(did: str) -> dict[str, Any]:
    """Return the DID document of an Ed25519 ``did:key`` (a fresh dict on every call).

    The document has one ``Multikey`` verification method, referenced from authentication,
    assertionMethod, capabilityInvocation and capabilityDelegation (no keyAgreement: an
    Ed25519 key is not an X25519 key, and we do not derive one).
    """
    msid = _split_did_key(did)
    public_key_from_did_key(did)  # validates the key bytes, raising InvalidDid
    vm_id = f"{did}#{msid}"
    return {
        "@context": list(_DID_CONTEXTS),
        "id": did,
        "verificationMethod": [
            {
                "id": vm_id,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": msid,
            }
        ],
        "authentication": [vm_id],
        "assertionMethod": [vm_id],
        "capabilityInvocation": [vm_id],
        "capabilityDelegation": [vm_id],
    }
