"""W3C Bitstring Status List v1.0: bitstrings, status list credentials, status checks.

A status list is a bitstring of at least 131,072 entries (16 KiB); entry ``i`` is the
left-most-first bit ``i`` (the most significant bit of byte ``i // 8`` is entry ``8 * (i // 8)``).
``encodedList`` is ``'u'`` + base64url without padding (multibase) of the GZIP-compressed
bitstring. On chain (CredentialRegistry) the same bits are kept as 256-bit words, most
significant bit first, so the words written big-endian *are* the bitstring.

Invariants:

* Pure: no I/O, no clock (``now`` and dates are arguments), no global state.
* Encoding is deterministic (GZIP ``mtime`` 0), so a list built twice from one chain state is
  byte-identical, and signing it twice gives the same proof.
* :func:`decode_bitstring` is strict and bounded: a wrong multibase prefix, a bad base64url
  alphabet, padding, a broken GZIP stream or an expansion beyond :data:`MAX_BITSTRING_BYTES`
  (a zip bomb) raise :class:`StatusListError` (an :class:`~ledger.errors.InvalidInput`).
* :func:`check_status` never raises because of the credential or the list it is given: every
  defect is an :class:`EntryStatus` with ``ok=False`` and a stable ``code`` (see
  :data:`FAILURE_CODES`), carrying the entry's purpose and index when they could be read.
* Only ``statusSize`` 1 is supported (the spec lets processors choose so), and only the
  ``revocation`` and ``suspension`` purposes, which are the ones the registry keeps.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from identity.proofs import EDDSA_JCS_2022, add_proof, verify_proof
from ledger.errors import InvalidInput, ZhixinError

__all__ = [
    "CREDENTIALS_V2_CONTEXT",
    "ENTRY_TYPE",
    "FAILURE_CODES",
    "LIST_CREDENTIAL_TYPE",
    "LIST_TYPE",
    "MAX_BITSTRING_BYTES",
    "MIN_ENTRIES",
    "EntryStatus",
    "StatusListError",
    "StatusPurpose",
    "StatusReport",
    "bit_at",
    "bitstring_from_indexes",
    "bitstring_from_words",
    "check_status",
    "decode_bitstring",
    "encode_bitstring",
    "format_datetime",
    "issue_status_list_credential",
    "list_id_from_url",
    "status_entry",
    "status_list_credential",
    "status_list_url",
]

CREDENTIALS_V2_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
"""VC 2.0 base context; it already defines every Bitstring Status List term."""
ENTRY_TYPE: Final = "BitstringStatusListEntry"
LIST_CREDENTIAL_TYPE: Final = "BitstringStatusListCredential"
LIST_TYPE: Final = "BitstringStatusList"
MIN_ENTRIES: Final = 131_072
"""Spec minimum list length (16 KiB of 1-bit entries); CREDENTIAL_STATUS_MIN_LENGTH on chain."""
MAX_BITSTRING_BYTES: Final = 2 * 1024 * 1024
"""Largest expansion accepted: CREDENTIAL_STATUS_MAX_LENGTH (2^24 entries) in bytes."""

FAILURE_CODES: Final = {
    "revoked": "the revocation bit is set",
    "suspended": "the suspension bit is set",
    "malformed-entry": "the credentialStatus entry is not a well-formed object",
    "wrong-type": f"the entry type is not {ENTRY_TYPE}",
    "unsupported-purpose": "the entry purpose is neither revocation nor suspension",
    "unsupported-status-size": "statusSize other than 1",
    "malformed-index": "statusListIndex is not a base-10 integer string",
    "retrieval-failed": "STATUS_RETRIEVAL_ERROR: the status list credential was not obtained",
    "list-proof-invalid": "STATUS_VERIFICATION_ERROR: the list's proof did not verify",
    "list-issuer-mismatch": "the list was not issued by the expected issuer",
    "list-id-mismatch": "the list credential's id is not the entry's statusListCredential",
    "malformed-list": "the status list credential is malformed",
    "list-not-yet-valid": "the status list credential's validFrom is in the future",
    "list-expired": "the status list credential's validUntil has passed",
    "purpose-mismatch": "STATUS_VERIFICATION_ERROR: the list does not serve the entry purpose",
    "list-too-short": "STATUS_LIST_LENGTH_ERROR: fewer entries than the minimum",
    "index-out-of-range": "RANGE_ERROR: statusListIndex is beyond the bitstring",
}
"""Every ``EntryStatus.code`` other than ``"ok"``, with what it means (W3C error in caps)."""

_MAX_INDEX_DIGITS: Final = 12
_BASE64URL: Final = re.compile(r"^[A-Za-z0-9_-]*$")
_URL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*:[^\s]+$")


class StatusListError(InvalidInput):
    """A bitstring or status list could not be encoded, decoded or built."""

    code = "status-list"


class StatusPurpose(StrEnum):
    """A status purpose; ``chain_code`` is the CREDENTIAL_STATUS_* constant of Common.sol."""

    REVOCATION = "revocation"
    SUSPENSION = "suspension"

    @property
    def chain_code(self) -> int:
        return 1 if self is StatusPurpose.REVOCATION else 2

    @classmethod
    def from_chain(cls, code: int) -> StatusPurpose:
        if code == 1:
            return cls.REVOCATION
        if code == 2:
            return cls.SUSPENSION
        raise StatusListError(f"unknown on-chain status purpose {code}")


# ---- bitstrings ----


def bitstring_from_indexes(length: int, set_indexes: Iterable[int]) -> bytes:
    """A bitstring of ``length`` entries (a multiple of 8) with ``set_indexes`` set."""
    if length <= 0 or length % 8:
        raise StatusListError(f"bitstring length must be a positive multiple of 8, got {length}")
    buf = bytearray(length // 8)
    for i in set_indexes:
        if not 0 <= i < length:
            raise StatusListError(f"index {i} is outside a list of {length} entries")
        buf[i // 8] |= 0x80 >> (i % 8)
    return bytes(buf)


def bitstring_from_words(words: Sequence[int]) -> bytes:
    """The bitstring kept on chain as 256-bit words (CredentialRegistry.statusWords)."""
    return b"".join(int(w).to_bytes(32, "big") for w in words)


def bit_at(bitstring: bytes, index: int) -> bool:
    """Entry ``index`` (left-most bit first); IndexError beyond the bitstring."""
    if index < 0 or index >= len(bitstring) * 8:
        raise IndexError(index)
    return bool(bitstring[index // 8] & (0x80 >> (index % 8)))


def encode_bitstring(bitstring: bytes) -> str:
    """``encodedList`` of a bitstring: multibase base64url-no-pad of its GZIP compression.

    Refuses a bitstring shorter than the spec's 16 KiB, so every list we publish conforms.
    """
    if len(bitstring) * 8 < MIN_ENTRIES:
        raise StatusListError(
            f"bitstring has {len(bitstring) * 8} entries, the minimum is {MIN_ENTRIES}"
        )
    if len(bitstring) > MAX_BITSTRING_BYTES:
        raise StatusListError(f"bitstring exceeds {MAX_BITSTRING_BYTES} bytes")
    compressed = gzip.compress(bytes(bitstring), compresslevel=9, mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).decode("ascii").rstrip("=")


def decode_bitstring(encoded: object, *, max_bytes: int = MAX_BITSTRING_BYTES) -> bytes:
    """The uncompressed bitstring of an ``encodedList`` (no minimum length check here)."""
    if not isinstance(encoded, str):
        raise StatusListError("encodedList must be a string")
    if not encoded.startswith("u"):
        raise StatusListError("encodedList must be multibase base64url (prefix 'u')")
    body = encoded[1:]
    # gzip of max_bytes zeros is ~0.1% of it; anything much longer cannot be a valid list
    if not body or len(body) > max_bytes * 2 or not _BASE64URL.match(body) or len(body) % 4 == 1:
        raise StatusListError("encodedList is not base64url without padding")
    try:
        compressed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise StatusListError("encodedList is not base64url without padding") from None
    inflater = zlib.decompressobj(wbits=31)  # 31: GZIP framing (RFC 1952) only
    try:
        out = inflater.decompress(compressed, max_bytes + 1)
    except zlib.error:
        raise StatusListError("encodedList is not a valid GZIP stream") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise StatusListError(f"encodedList expands beyond {max_bytes} bytes")
    if not inflater.eof:
        raise StatusListError("encodedList GZIP stream is truncated")
    if inflater.unused_data:
        raise StatusListError("encodedList has data after the GZIP stream")
    return out


# ---- URLs, entries and list credentials ----


def status_list_url(base_url: str, list_id: int) -> str:
    """Where the status list credential of on-chain list ``list_id`` is published."""
    if list_id <= 0:
        raise StatusListError(f"status list ids start at 1, got {list_id}")
    return f"{base_url.rstrip('/')}/{list_id}"


def list_id_from_url(base_url: str, url: str) -> int | None:
    """Inverse of :func:`status_list_url`; None for a URL not under ``base_url``."""
    prefix = base_url.rstrip("/") + "/"
    if not isinstance(url, str) or not url.startswith(prefix):
        return None
    tail = url[len(prefix) :]
    if not tail.isdigit() or tail.startswith("0") or len(tail) > 19 or not tail.isascii():
        return None
    return int(tail)


def format_datetime(value: datetime) -> str:
    """XML Schema dateTimeStamp in UTC to the second (``2025-01-02T03:04:05Z``)."""
    if value.tzinfo is None:
        raise InvalidInput("datetimes must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_entry(purpose: StatusPurpose | str, index: int, list_url: str) -> dict[str, Any]:
    """A ``BitstringStatusListEntry`` for position ``index`` of the list at ``list_url``."""
    purpose = StatusPurpose(purpose)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise StatusListError(f"statusListIndex must be a non-negative integer, got {index!r}")
    if not _URL.match(list_url):
        raise StatusListError("statusListCredential must be an absolute URL")
    return {
        "id": f"{list_url}#{index}",
        "type": ENTRY_TYPE,
        "statusPurpose": purpose.value,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def status_list_credential(
    *,
    url: str,
    issuer: str,
    purpose: StatusPurpose | str,
    bitstring: bytes,
    valid_from: datetime,
    valid_until: datetime | None = None,
    ttl_ms: int | None = None,
) -> dict[str, Any]:
    """An unsigned ``BitstringStatusListCredential`` (the spec's Generate Algorithm, 1-4)."""
    purpose = StatusPurpose(purpose)
    if not _URL.match(url):
        raise StatusListError("status list URL must be absolute")
    if not isinstance(issuer, str) or not issuer.startswith("did:"):
        raise StatusListError("status list issuer must be a DID")
    vc: dict[str, Any] = {
        "@context": [CREDENTIALS_V2_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", LIST_CREDENTIAL_TYPE],
        "issuer": issuer,
        "validFrom": format_datetime(valid_from),
    }
    if valid_until is not None:
        if valid_until <= valid_from:
            raise StatusListError("validUntil must be after validFrom")
        vc["validUntil"] = format_datetime(valid_until)
    subject: dict[str, Any] = {
        "id": f"{url}#list",
        "type": LIST_TYPE,
        "statusPurpose": purpose.value,
        "encodedList": encode_bitstring(bitstring),
    }
    if ttl_ms is not None:
        subject["ttl"] = int(ttl_ms)
    vc["credentialSubject"] = subject
    return vc


def issue_status_list_credential(
    *,
    url: str,
    issuer: str,
    purpose: StatusPurpose | str,
    bitstring: bytes,
    valid_from: datetime,
    private_key: Ed25519PrivateKey,
    verification_method: str,
    created: str,
    valid_until: datetime | None = None,
    cryptosuite: str = EDDSA_JCS_2022,
) -> dict[str, Any]:
    """:func:`status_list_credential` signed by the issuer (Generate Algorithm, step 5)."""
    if verification_method.partition("#")[0] != issuer:
        raise StatusListError("verification method must belong to the list's issuer DID")
    unsigned = status_list_credential(
        url=url,
        issuer=issuer,
        purpose=purpose,
        bitstring=bitstring,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    return add_proof(
        unsigned,
        private_key=private_key,
        verification_method=verification_method,
        cryptosuite=cryptosuite,
        created=created,
    )


# ---- status check ----


@dataclass(frozen=True, slots=True)
class EntryStatus:
    """The outcome for one ``credentialStatus`` entry (the spec's Validate Algorithm result).

    ``status`` is the bit (None when it could not be read); ``ok`` is true exactly when the
    bit was read and is 0; ``code`` is ``"ok"`` or a key of :data:`FAILURE_CODES`.
    """

    position: int
    ok: bool
    code: str
    message: str
    purpose: str | None = None
    index: int | None = None
    list_url: str | None = None
    status: int | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Every entry's outcome, in the credential's order."""

    entries: tuple[EntryStatus, ...]

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    @property
    def revoked(self) -> bool:
        return any(e.code == "revoked" for e in self.entries)

    @property
    def suspended(self) -> bool:
        return any(e.code == "suspended" for e in self.entries)

    @property
    def failures(self) -> tuple[EntryStatus, ...]:
        return tuple(e for e in self.entries if not e.ok)


class _Fail(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _parse_dt(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _parse_entry(entry: object) -> tuple[str, int, str]:
    if not isinstance(entry, Mapping):
        raise _Fail("malformed-entry", "credentialStatus entry must be a JSON object")
    if entry.get("type") != ENTRY_TYPE:
        raise _Fail("wrong-type", f"credentialStatus type must be {ENTRY_TYPE}")
    purpose = entry.get("statusPurpose")
    if not isinstance(purpose, str):
        raise _Fail("malformed-entry", "statusPurpose must be a string")
    url = entry.get("statusListCredential")
    if not isinstance(url, str) or not _URL.match(url):
        raise _Fail("malformed-entry", "statusListCredential must be an absolute URL")
    raw = entry.get("statusListIndex")
    if not isinstance(raw, str) or not raw.isdigit() or not raw.isascii():
        raise _Fail("malformed-index", "statusListIndex must be a base-10 integer string")
    if len(raw) > _MAX_INDEX_DIGITS:
        raise _Fail("index-out-of-range", "statusListIndex is larger than any supported list")
    return purpose, int(raw), url


@functools.lru_cache(maxsize=64)
def _decode_cached(encoded: str) -> bytes:
    """:func:`decode_bitstring`, memoized: each credential check reads two lists, and a list
    changes only when a status bit does (an unzip of 16 KiB per entry otherwise)."""
    return decode_bitstring(encoded)


def _list_bits(
    vc: object,
    *,
    url: str,
    purpose: str,
    resolve_key: Callable[[str], Ed25519PublicKey] | None,
    expected_issuer: str | None,
    now: datetime | None,
    min_entries: int,
) -> bytes:
    if not isinstance(vc, Mapping):
        raise _Fail("malformed-list", "status list credential must be a JSON object")
    if resolve_key is not None:
        result = verify_proof(vc, resolve_key=resolve_key, now=now)
        if not result.verified:
            assert result.error is not None
            raise _Fail("list-proof-invalid", f"status list proof: {result.error.code}")
        if (result.verification_method or "").partition("#")[0] != vc.get("issuer"):
            raise _Fail("list-proof-invalid", "status list was not signed by its issuer")
    if expected_issuer is not None and vc.get("issuer") != expected_issuer:
        raise _Fail("list-issuer-mismatch", "status list issuer is not the credential's issuer")
    if "id" in vc and vc["id"] != url:
        raise _Fail("list-id-mismatch", "status list credential id differs from the entry URL")
    if LIST_CREDENTIAL_TYPE not in _as_list(vc.get("type")):
        raise _Fail("malformed-list", f"status list credential type lacks {LIST_CREDENTIAL_TYPE}")
    if now is not None:
        vf, vu = vc.get("validFrom"), vc.get("validUntil")
        if vf is not None and ((start := _parse_dt(vf)) is None or now < start):
            code = "malformed-list" if start is None else "list-not-yet-valid"
            raise _Fail(code, "status list validFrom is malformed or in the future")
        if vu is not None and ((end := _parse_dt(vu)) is None or now > end):
            raise _Fail("malformed-list" if end is None else "list-expired", "list validUntil")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("type") != LIST_TYPE:
        raise _Fail("malformed-list", f"credentialSubject must be a {LIST_TYPE}")
    purposes = _as_list(subject.get("statusPurpose"))
    if not purposes or not all(isinstance(p, str) for p in purposes):
        raise _Fail("malformed-list", "list statusPurpose must be one or more strings")
    if purpose not in purposes:
        raise _Fail("purpose-mismatch", f"status list does not serve purpose {purpose!r}")
    try:
        encoded = subject.get("encodedList")
        bits = _decode_cached(encoded) if isinstance(encoded, str) else decode_bitstring(encoded)
    except StatusListError as exc:
        raise _Fail("malformed-list", exc.detail) from None
    if len(bits) * 8 < min_entries:
        raise _Fail("list-too-short", f"list has {len(bits) * 8} entries, minimum {min_entries}")
    return bits


def check_status(
    credential_status: object,
    resolve_list: Callable[[str], Mapping[str, Any]],
    *,
    resolve_key: Callable[[str], Ed25519PublicKey] | None = None,
    expected_issuer: str | None = None,
    now: datetime | None = None,
    min_entries: int = MIN_ENTRIES,
) -> StatusReport:
    """Check each ``credentialStatus`` entry against its status list (Validate Algorithm).

    ``resolve_list(url)`` returns the status list credential; it may raise
    :class:`~ledger.errors.ZhixinError`, ``LookupError``, ``ValueError`` or ``OSError``
    (reported as ``retrieval-failed``). With ``resolve_key`` the list's proof must verify and
    be the list issuer's; pass None only for lists the caller built itself from chain state.
    ``expected_issuer`` (the credential's issuer) pins who may publish the lists.
    """
    if now is not None and now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    out: list[EntryStatus] = []
    cache: dict[str, Any] = {}
    for pos, entry in enumerate(_as_list(credential_status)):
        purpose: str | None = None
        index: int | None = None
        url: str | None = None
        try:
            purpose, index, url = _parse_entry(entry)
            assert isinstance(entry, Mapping)
            if purpose not in (StatusPurpose.REVOCATION, StatusPurpose.SUSPENSION):
                raise _Fail("unsupported-purpose", f"status purpose {purpose[:32]!r}")
            if entry.get("statusSize", 1) != 1:
                raise _Fail("unsupported-status-size", "only statusSize 1 is supported")
            if url not in cache:
                try:
                    cache[url] = resolve_list(url)
                except (ZhixinError, LookupError, ValueError, OSError) as exc:
                    cache[url] = _Fail("retrieval-failed", f"status list not retrieved: {exc}")
            got = cache[url]
            if isinstance(got, _Fail):
                raise got
            bits = _list_bits(
                got,
                url=url,
                purpose=purpose,
                resolve_key=resolve_key,
                expected_issuer=expected_issuer,
                now=now,
                min_entries=min_entries,
            )
            if index >= len(bits) * 8:
                raise _Fail(
                    "index-out-of-range",
                    f"statusListIndex {index} is beyond the list's {len(bits) * 8} entries",
                )
            bit = int(bit_at(bits, index))
        except _Fail as fail:
            out.append(EntryStatus(pos, False, fail.code, fail.message, purpose, index, url))
            continue
        if bit:
            code = "revoked" if purpose == StatusPurpose.REVOCATION else "suspended"
            msg = f"{purpose} bit {index} is set"
            out.append(EntryStatus(pos, False, code, msg, purpose, index, url, bit))
        else:
            msg = f"{purpose} bit {index} is clear"
            out.append(EntryStatus(pos, True, "ok", msg, purpose, index, url, bit))
    return StatusReport(tuple(out))
