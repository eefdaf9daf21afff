"""The zhixin identity credential (W3C VC Data Model 2.0): build, sign, hash, anchor, verify.

A registration authority (an ISSUER on chain) verifies a citizen once and issues a
``ZhixinIdentityCredential`` to the citizen's DID, with two ``BitstringStatusListEntry``
entries (revocation and suspension, same index in the issuer's two lists), signs it with a
Data Integrity proof and anchors ``credential_hash`` in CredentialRegistry.

Invariants:

* The pure part (building, :func:`credential_hash`, :func:`anchor_request`,
  :func:`verify_credential`) does no I/O and reads no clock: ``now`` and ``created`` are
  arguments; the chain is reached only through the :class:`RegistryView` protocol. The chain
  part (:class:`CredentialRegistryClient`, :class:`ChainRegistryView`, :class:`IssuerService`)
  lives at the end of this module.
* ``credential_hash`` is SHA-256 of the RFC 8785 (JCS) form of the *signed* credential; the
  chain stores it and SHA-256 of the holder DID, never a claim.
* :func:`verify_credential` never raises because of the credential: each of the checks
  ``structure``, ``proof``, ``issuer-role``, ``anchor``, ``status``, ``validity`` is reported
  by name with a stable ``code``; only a chain that cannot be reached raises
  (:class:`~ledger.errors.ChainError`). Messages never quote claim values (personal data).
* The issuer's chain account is named by its DID (``did:ethr:[network:]0x...``): the account
  that anchored the credential must be that one and must hold ISSUER now.
* :func:`verify_credential` keeps what it derives from the credential alone (structure
  check, ``credential_hash``, the prepared proof, the parsed dates) in a bounded cache keyed
  by the credential's exact content (``_prepared_cache``); the issuer's key, the signature,
  the role, the anchor, the status bits and the validity window are checked on every call.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from eth_utils import to_checksum_address

from identity import jcs
from identity.ids import InvalidIdentifier, validate_ric
from identity.jsonld import ZHIXIN_IDENTITY_CONTEXT
from identity.proofs import EDDSA_JCS_2022, PreparedProof, add_proof, check_prepared, prepare_proof
from identity.status import (
    CREDENTIALS_V2_CONTEXT,
    StatusPurpose,
    bitstring_from_words,
    check_status,
    format_datetime,
    issue_status_list_credential,
    list_id_from_url,
    status_entry,
    status_list_credential,
    status_list_url,
)
from ledger.chain import Chain, Sender, TxResult, encode_call
from ledger.contracts import load_artifact
from ledger.errors import ChainError, Forbidden, InvalidInput, NotFound

__all__ = [
    "CHECKS",
    "CREDENTIAL_TYPE",
    "MAX_BATCH",
    "Anchor",
    "AnchorRequest",
    "ChainRegistryView",
    "CheckResult",
    "CredentialError",
    "CredentialRegistryClient",
    "IssuedCredential",
    "IssuerService",
    "NamedChecks",
    "RegistryView",
    "StatusListInfo",
    "VerificationLevel",
    "VerificationResult",
    "anchor_request",
    "build_identity_credential",
    "credential_hash",
    "issue_credential",
    "issuer_account",
    "issuer_did",
    "subject_did_hash",
    "verify_credential",
]

CREDENTIAL_TYPE: Final = "ZhixinIdentityCredential"
CHECKS: Final = ("structure", "proof", "issuer-role", "anchor", "status", "validity")
"""The named checks of :func:`verify_credential`, in the order they are reported."""
MAX_BATCH: Final = 500
"""CREDENTIAL_MAX_BATCH of Common.sol."""

_MAX_TEXT: Final = 200
_DID: Final = re.compile(r"^did:[a-z0-9]+:[A-Za-z0-9._:%\-]+$")
_DID_ETHR: Final = re.compile(r"^did:ethr:(?:([A-Za-z0-9]+):)?(0x[0-9a-fA-F]{40})$")


class CredentialError(InvalidInput):
    """A credential cannot be built, signed or hashed from what was given."""

    code = "invalid-credential"


class VerificationLevel(StrEnum):
    """How the citizen's identity was verified before issuance."""

    IN_PERSON = "in-person"
    ONLINE = "online"


# ---- DIDs and hashes ----


def issuer_did(account: str, chain_id: int | None = None) -> str:
    """The ``did:ethr`` DID of an issuer's chain account (with the chain id as network)."""
    addr = to_checksum_address(account)
    return f"did:ethr:{addr}" if chain_id is None else f"did:ethr:{hex(chain_id)}:{addr}"


def issuer_account(did: object) -> str | None:
    """The chain account named by a ``did:ethr`` DID, or None for any other DID."""
    if not isinstance(did, str):
        return None
    return _issuer_account(did)


@functools.lru_cache(maxsize=1024)
def _issuer_account(did: str) -> str | None:
    """Memoized: EIP-55 checksumming (keccak) of the few issuers, on every verification."""
    m = _DID_ETHR.match(did)
    return to_checksum_address(m.group(2).lower()) if m else None


def subject_did_hash(did: str) -> bytes:
    """SHA-256 of the holder DID (UTF-8): what the chain keeps instead of the DID."""
    return hashlib.sha256(did.encode("utf-8")).digest()


def credential_hash(vc: Mapping[str, Any]) -> bytes:
    """SHA-256 over the RFC 8785 (JCS) form of the signed credential."""
    try:
        return hashlib.sha256(jcs.dumps(dict(vc))).digest()
    except (ValueError, TypeError, RecursionError) as exc:
        raise CredentialError(f"credential is not JCS-serializable ({type(exc).__name__})") from exc


def _check_did(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > 512 or not _DID.match(value):
        raise CredentialError(f"{what} must be a DID (did:method:id)")
    return value


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CredentialError(f"{what} must be a non-empty string")
    if len(value) > _MAX_TEXT or any(ord(c) < 0x20 for c in value):
        raise CredentialError(f"{what} must be at most {_MAX_TEXT} printable characters")
    return value.strip()


# ---- building and signing ----


def build_identity_credential(
    *,
    issuer: str,
    holder: str,
    verified_name: str,
    resident_id_number: str,
    verification_level: VerificationLevel | str,
    residence_district: str,
    valid_from: datetime,
    valid_until: datetime,
    status_index: int,
    revocation_list_url: str,
    suspension_list_url: str,
    credential_id: str | None = None,
) -> dict[str, Any]:
    """The unsigned identity credential; raises :class:`CredentialError` on bad input.

    ``resident_id_number`` is validated (GB 11643) and stored normalized; both status entries
    use ``status_index``, one in the issuer's revocation list, one in its suspension list.
    """
    _check_did(issuer, "issuer")
    _check_did(holder, "holder")
    try:
        ric = validate_ric(resident_id_number)
    except InvalidIdentifier as exc:
        raise CredentialError(f"residentIdNumber: {exc.detail}", reason=exc.reason) from None
    try:
        level = VerificationLevel(verification_level)
    except ValueError:
        raise CredentialError("verificationLevel must be 'in-person' or 'online'") from None
    if valid_from.tzinfo is None or valid_until.tzinfo is None:
        raise CredentialError("validFrom and validUntil must be timezone-aware")
    if valid_until <= valid_from:
        raise CredentialError("validUntil must be after validFrom")
    try:
        entries = [
            status_entry(StatusPurpose.REVOCATION, status_index, revocation_list_url),
            status_entry(StatusPurpose.SUSPENSION, status_index, suspension_list_url),
        ]
    except InvalidInput as exc:
        raise CredentialError(exc.detail) from None
    if revocation_list_url == suspension_list_url:
        raise CredentialError("revocation and suspension need two different status lists")
    vc: dict[str, Any] = {"@context": [CREDENTIALS_V2_CONTEXT, ZHIXIN_IDENTITY_CONTEXT]}
    if credential_id is not None:
        vc["id"] = _check_text(credential_id, "credential id")
    vc.update(
        {
            "type": ["VerifiableCredential", CREDENTIAL_TYPE],
            "issuer": issuer,
            "validFrom": format_datetime(valid_from),
            "validUntil": format_datetime(valid_until),
            "credentialSubject": {
                "id": holder,
                "verifiedName": _check_text(verified_name, "verifiedName"),
                "residentIdNumber": ric,
                "verificationLevel": level.value,
                "residenceDistrict": _check_text(residence_district, "residenceDistrict"),
            },
            "credentialStatus": entries,
        }
    )
    return vc


def issue_credential(
    credential: Mapping[str, Any],
    *,
    private_key: Ed25519PrivateKey,
    verification_method: str,
    cryptosuite: str = EDDSA_JCS_2022,
    created: str,
) -> dict[str, Any]:
    """Sign ``credential`` (assertionMethod); the method must be one of the issuer DID's."""
    if verification_method.partition("#")[0] != credential.get("issuer"):
        raise CredentialError("verification method must belong to the credential's issuer DID")
    return add_proof(
        credential,
        private_key=private_key,
        verification_method=verification_method,
        cryptosuite=cryptosuite,
        created=created,
    )


@dataclass(frozen=True)
class AnchorRequest:
    """The arguments of CredentialRegistry.anchor for one signed credential."""

    credential_hash: bytes
    subject_did_hash: bytes
    valid_from: int
    valid_until: int
    status_list_id: int
    status_index: int

    def as_tuple(self) -> tuple[bytes, bytes, int, int, int, int]:
        return (
            self.credential_hash,
            self.subject_did_hash,
            self.valid_from,
            self.valid_until,
            self.status_list_id,
            self.status_index,
        )


def _epoch(value: object, what: str) -> int:
    dt = _parse_dt(value)
    if dt is None:
        raise CredentialError(f"{what} must be a dateTimeStamp with time zone")
    return int(dt.timestamp())


def anchor_request(vc: Mapping[str, Any], revocation_list_id: int) -> AnchorRequest:
    """What to anchor for the signed ``vc`` whose revocation entry is in on-chain list
    ``revocation_list_id`` (0: the credential has no status)."""
    subject = vc.get("credentialSubject")
    if not isinstance(subject, Mapping) or not isinstance(subject.get("id"), str):
        raise CredentialError("credentialSubject.id (the holder DID) is missing")
    index = 0
    if revocation_list_id:
        entry = _entry(vc, StatusPurpose.REVOCATION)
        if entry is None:
            raise CredentialError("credential has no revocation status entry")
        index = int(entry["statusListIndex"])
    until = vc.get("validUntil")
    return AnchorRequest(
        credential_hash=credential_hash(vc),
        subject_did_hash=subject_did_hash(subject["id"]),
        valid_from=_epoch(vc.get("validFrom"), "validFrom"),
        valid_until=0 if until is None else _epoch(until, "validUntil"),
        status_list_id=revocation_list_id,
        status_index=index,
    )


def _entry(vc: Mapping[str, Any], purpose: StatusPurpose) -> Mapping[str, Any] | None:
    status = vc.get("credentialStatus")
    for e in status if isinstance(status, list) else [status]:
        if (
            isinstance(e, Mapping)
            and e.get("statusPurpose") == purpose.value
            and isinstance(e.get("statusListIndex"), str)
            and e["statusListIndex"].isdigit()
        ):
            return e
    return None


def _parse_dt(value: object) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# ---- verification (pure) ----


@dataclass(frozen=True)
class Anchor:
    """An anchor as CredentialRegistry keeps it (dates unix seconds; 0 = none)."""

    issuer: str
    subject_did_hash: bytes
    valid_from: int
    valid_until: int
    anchored_at: int
    status_list_id: int
    status_index: int


class RegistryView(Protocol):
    """What :func:`verify_credential` needs to know from the chain.

    ``status_list_credential`` returns lists the caller trusts (built from chain state), so
    their proofs are not checked; it raises ``LookupError`` for an unknown URL.
    """

    def has_issuer_role(self, account: str) -> bool: ...

    def anchor_of(self, credential_hash: bytes) -> Anchor | None: ...

    def status_bit(self, list_id: int, index: int) -> bool: ...

    def status_list_credential(self, url: str) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class CheckResult:
    """One named check: ``code`` is ``"ok"`` or a stable failure code."""

    name: str
    ok: bool
    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, name: str, message: str, **details: Any) -> CheckResult:
        return cls(name, True, "ok", message, details)

    @classmethod
    def failure(cls, name: str, code: str, message: str, **details: Any) -> CheckResult:
        return cls(name, False, code, message, details)

    def to_json(self) -> dict[str, Any]:
        head = {"name": self.name, "ok": self.ok, "code": self.code, "message": self.message}
        return {**head, **self.details}


class NamedChecks:
    """What every verification result offers over its ``checks``: verified only if all
    passed, the failed names, one check by name, and the checks as JSON."""

    checks: tuple[CheckResult, ...]

    @property
    def verified(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.ok)

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def checks_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.checks]


@dataclass(frozen=True)
class VerificationResult(NamedChecks):
    """Every check of :data:`CHECKS`, by name; verified only if all passed."""

    credential_hash: bytes | None
    checks: tuple[CheckResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "credentialHash": None if self.credential_hash is None else self.credential_hash.hex(),
            "checks": self.checks_json(),
        }


_ok = CheckResult.passed
_bad = CheckResult.failure


@functools.lru_cache(maxsize=4096)
def _validate_ric_cached(ric: str) -> str:
    """:func:`validate_ric`, memoized for valid numbers only (errors are not cached): its
    stdnum region lookup was a third of a credential check, repeated on every presentation."""
    return validate_ric(ric)


def _structure(vc: object) -> CheckResult:
    name = "structure"
    if not isinstance(vc, Mapping):
        return _bad(name, "malformed", "credential must be a JSON object")
    ctx = vc.get("@context")
    if not isinstance(ctx, list) or ctx[:1] != [CREDENTIALS_V2_CONTEXT]:
        return _bad(name, "context", f"@context must start with {CREDENTIALS_V2_CONTEXT}")
    if ZHIXIN_IDENTITY_CONTEXT not in ctx:
        return _bad(name, "context", f"@context must include {ZHIXIN_IDENTITY_CONTEXT}")
    types = vc.get("type")
    if not isinstance(types, list) or not {"VerifiableCredential", CREDENTIAL_TYPE} <= set(
        t for t in types if isinstance(t, str)
    ):
        return _bad(name, "type", f"type must include VerifiableCredential and {CREDENTIAL_TYPE}")
    issuer = vc.get("issuer")
    if not isinstance(issuer, str) or not _DID.match(issuer):
        return _bad(name, "issuer", "issuer must be a DID string")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, Mapping):
        return _bad(name, "subject", "credentialSubject must be an object")
    holder = subject.get("id")
    if not isinstance(holder, str) or not _DID.match(holder):
        return _bad(name, "subject", "credentialSubject.id must be the holder DID")
    for term in ("verifiedName", "residenceDistrict"):
        if not isinstance(subject.get(term), str) or not subject[term]:
            return _bad(name, "subject", f"credentialSubject.{term} must be a non-empty string")
    ric = subject.get("residentIdNumber")
    try:
        if not isinstance(ric, str):
            raise CredentialError("not a string")
        _validate_ric_cached(ric)
    except InvalidInput as exc:
        reason = getattr(exc, "reason", "type")
        return _bad(name, "resident-id", f"residentIdNumber is invalid ({reason})")
    if subject.get("verificationLevel") not in {v.value for v in VerificationLevel}:
        return _bad(name, "subject", "verificationLevel must be 'in-person' or 'online'")
    for term in ("validFrom", "validUntil"):
        if term in vc and _parse_dt(vc[term]) is None:
            return _bad(name, "dates", f"{term} must be a dateTimeStamp with time zone")
    if "validFrom" not in vc:
        return _bad(name, "dates", "validFrom is required")
    if "credentialStatus" not in vc:
        return _bad(name, "status", "credentialStatus is required")
    return _ok(name, "well-formed identity credential")


def _proof(
    vc: Mapping[str, Any],
    prepared: PreparedProof,
    resolve_key: Callable[[str], Ed25519PublicKey],
    now: datetime,
) -> CheckResult:
    result = check_prepared(prepared, resolve_key=resolve_key, now=now)
    if not result.verified:
        assert result.error is not None
        return _bad("proof", result.error.code, result.error.message)
    if (result.verification_method or "").partition("#")[0] != vc.get("issuer"):
        return _bad("proof", "not-issuer-key", "proof was not made with a key of the issuer DID")
    return _ok(
        "proof",
        "issuer's proof verifies",
        cryptosuite=result.cryptosuite,
        verificationMethod=result.verification_method,
    )


def _issuer_role(account: str | None, view: RegistryView) -> CheckResult:
    name = "issuer-role"
    if account is None:
        return _bad(name, "no-chain-account", "issuer DID names no chain account (did:ethr)")
    if not view.has_issuer_role(account):
        return _bad(name, "not-issuer", "issuer account does not hold ISSUER", account=account)
    return _ok(name, "issuer account holds ISSUER", account=account)


def _anchor(prepared: _Prepared, account: str | None, anchor: Anchor | None) -> CheckResult:
    name = "anchor"
    if anchor is None:
        return _bad(name, "not-anchored", "no anchor for this credential hash (altered or unknown)")
    if account is None or anchor.issuer != account:
        return _bad(name, "issuer-mismatch", "credential was anchored by another account")
    if anchor.subject_did_hash != prepared.subject_hash:
        return _bad(name, "subject-mismatch", "anchored subject hash differs from the holder DID")
    vf, vu = prepared.valid_from, prepared.valid_until
    assert vf is not None
    if anchor.valid_from != int(vf.timestamp()) or anchor.valid_until != (
        0 if vu is None else int(vu.timestamp())
    ):
        return _bad(name, "validity-mismatch", "anchored validity differs from the credential's")
    return _ok(name, "anchored by the issuer", anchoredAt=anchor.anchored_at)


def _status(vc: Mapping[str, Any], anchor: Anchor | None, view: RegistryView) -> CheckResult:
    name = "status"
    if (
        anchor is not None
        and anchor.status_list_id
        and view.status_bit(anchor.status_list_id, anchor.status_index)
    ):
        return _bad(
            name,
            "revoked",
            f"revocation bit {anchor.status_index} of list {anchor.status_list_id} is set",
            purpose="revocation",
            index=anchor.status_index,
        )
    report = check_status(
        vc["credentialStatus"],
        view.status_list_credential,
        expected_issuer=vc["issuer"],
    )
    if not report.entries:
        return _bad(name, "no-status", "credentialStatus has no entries")
    purposes = {e.purpose for e in report.entries if e.ok}
    for e in report.failures:
        return _bad(name, e.code, e.message, purpose=e.purpose, index=e.index, entry=e.position)
    if not {StatusPurpose.REVOCATION.value, StatusPurpose.SUSPENSION.value} <= purposes:
        return _bad(name, "missing-entry", "both revocation and suspension entries are required")
    return _ok(name, "neither revoked nor suspended")


def _validity(prepared: _Prepared, now: datetime) -> CheckResult:
    start, end = prepared.valid_from, prepared.valid_until
    assert start is not None
    if now < start:
        return _bad("validity", "not-yet-valid", "validFrom is in the future")
    if end is not None and now > end:
        return _bad("validity", "expired", "validUntil has passed")
    return _ok("validity", "within the validity period")


def verify_credential(
    vc: object,
    *,
    resolve_key: Callable[[str], Ed25519PublicKey],
    registry_view: RegistryView,
    now: datetime,
    resolve_issuer_account: Callable[[str], str | None] = issuer_account,
) -> VerificationResult:
    """Run every check of :data:`CHECKS` on ``vc``; never raises for a malformed credential.

    If ``structure`` fails the other checks are reported as failed with code
    ``not-checked``, since their inputs cannot be trusted to have the expected shape.
    """
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    prepared = _prepared(vc)
    if prepared.proof is None:
        skipped = tuple(
            _bad(n, "not-checked", "credential is malformed (see structure)") for n in CHECKS[1:]
        )
        return VerificationResult(None, (prepared.structure, *skipped))
    assert isinstance(vc, Mapping)
    digest = prepared.digest
    account = resolve_issuer_account(vc["issuer"])
    anchor = registry_view.anchor_of(digest) if digest is not None else None
    checks = (
        prepared.structure,
        _proof(vc, prepared.proof, resolve_key, now),
        _issuer_role(account, registry_view),
        _anchor(prepared, account, anchor)
        if digest is not None
        else _bad("anchor", "not-hashable", "credential is not JCS-serializable"),
        _status(vc, anchor, registry_view),
        _validity(prepared, now),
    )
    return VerificationResult(digest, checks)


PREPARED_CACHE_SIZE: Final = 16_384
_prepared_cache: dict[bytes, _Prepared] = {}
"""Prepared credentials by SHA-256 of their exact serialization (orjson, keys in document
order; the whole signed credential, proof included). Only plain JSON is cached
(:func:`identity.jcs.is_plain`: exact dict/list/str/bool/None/int types, no floats), for which
that serialization is one-to-one, so a hit is the same computation on the same document with
the same answer. A presented credential is the same document presentation after
presentation: this saves its structure check, three canonicalizations and the proofValue
decoding on every presentation, for ~6 us of key."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What :func:`verify_credential` derives from the credential alone (no chain, no key, no
    clock); ``proof`` is None exactly when ``structure`` failed."""

    structure: CheckResult
    digest: bytes | None = None
    proof: PreparedProof | None = None
    subject_hash: bytes = b""
    valid_from: datetime | None = None
    valid_until: datetime | None = None


def _prepare(vc: object, digest: bytes | None) -> _Prepared:
    structure = _structure(vc)
    if not structure.ok:
        return _Prepared(structure)
    assert isinstance(vc, Mapping)
    if digest is None:
        try:
            digest = credential_hash(vc)
        except CredentialError:
            digest = None
    return _Prepared(
        structure,
        digest,
        prepare_proof(vc),
        subject_did_hash(vc["credentialSubject"]["id"]),
        _parse_dt(vc["validFrom"]),
        _parse_dt(vc["validUntil"]) if "validUntil" in vc else None,
    )


def _prepared(vc: object) -> _Prepared:
    """:func:`_prepare`, through :data:`_prepared_cache` for plain JSON credentials."""
    if type(vc) is not dict or not jcs.is_plain(vc):
        return _prepare(vc, None)
    try:
        key = hashlib.sha256(orjson.dumps(vc)).digest()
    except orjson.JSONEncodeError:  # a lone surrogate: JCS refuses it too
        return _prepare(vc, None)
    hit = _prepared_cache.get(key)
    if hit is None:
        hit = _prepare(vc, None)
        if len(_prepared_cache) >= PREPARED_CACHE_SIZE:
            _prepared_cache.clear()  # crude but atomic under concurrent requests
        _prepared_cache[key] = hit
    return hit


# ---- chain I/O ----


@dataclass(frozen=True)
class StatusListInfo:
    list_id: int
    owner: str
    purpose: StatusPurpose
    length: int


class CredentialRegistryClient:
    """Thin client of CredentialRegistry; every write is simulated first (named errors)."""

    WORDS_PER_CALL: Final = 4096  # 1M entries per eth_call

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = address
        self.contract = chain.contract(address, load_artifact("CredentialRegistry").abi)

    def _call(self, fn: Any) -> Any:
        return self.chain._rpc(lambda: fn.call())

    def _call_at(self, fn: Any, block: int | str) -> Any:
        return self.chain._rpc(lambda: fn.call(block_identifier=block))

    def _send(self, sender: Sender, fn: str, args: Sequence[Any], what: str) -> TxResult:
        res = sender.send(self.address, encode_call(self.contract, fn, args), what=what)
        assert isinstance(res, TxResult)
        return res

    def anchor(self, sender: Sender, req: AnchorRequest) -> TxResult:
        return self._send(sender, "anchor", req.as_tuple(), "anchor credential")

    def anchor_batch(self, sender: Sender, reqs: Sequence[AnchorRequest]) -> TxResult:
        if not 1 <= len(reqs) <= MAX_BATCH:
            raise InvalidInput(f"a batch holds 1..{MAX_BATCH} credentials, got {len(reqs)}")
        return self._send(
            sender, "anchorBatch", [[r.as_tuple() for r in reqs]], "anchor credentials"
        )

    def create_status_list(
        self, sender: Sender, purpose: StatusPurpose | str, length: int = 131_072
    ) -> int:
        """Create a list owned by ``sender``; returns its id (read from the event)."""
        purpose = StatusPurpose(purpose)
        res = self._send(
            sender, "createStatusList", [purpose.chain_code, length], "create status list"
        )
        logs = self.contract.events.StatusListCreated().process_receipt(res.receipt)
        if len(logs) != 1:
            raise ChainError("createStatusList emitted no StatusListCreated event")
        return int(logs[0].args.listId)

    def set_status(self, sender: Sender, list_id: int, index: int, value: bool) -> bool:
        """Whether the bit changed (the contract emits StatusChanged only then)."""
        res = self._send(sender, "setStatus", [list_id, index, value], "set status")
        return bool(self.contract.events.StatusChanged().process_receipt(res.receipt))

    def set_status_batch(
        self, sender: Sender, list_id: int, indexes: Sequence[int], value: bool
    ) -> TxResult:
        return self._send(
            sender, "setStatusBatch", [list_id, list(indexes), value], "set status batch"
        )

    def anchor_of(self, digest: bytes) -> Anchor | None:
        a = self._call(self.contract.functions.anchorOf(digest))
        issuer, vf, vu, at, list_id, index, subj = a
        if int(issuer, 16) == 0:
            return None
        return Anchor(str(issuer), bytes(subj), int(vf), int(vu), int(at), int(list_id), int(index))

    def status_list(self, list_id: int) -> StatusListInfo:
        if not 1 <= list_id <= self.list_count():
            raise NotFound(f"status list {list_id} does not exist")
        owner, purpose, length = self._call(self.contract.functions.statusList(list_id))
        return StatusListInfo(list_id, str(owner), StatusPurpose.from_chain(purpose), int(length))

    def list_count(self) -> int:
        return int(self._call(self.contract.functions.statusListCount()))

    def status_bit(self, list_id: int, index: int) -> bool:
        return bool(self._call(self.contract.functions.statusBit(list_id, index)))

    def bitstring(self, list_id: int, *, block: int | str = "latest") -> bytes:
        """The list's uncompressed W3C bitstring, read in chunks at one block."""
        info = self.status_list(list_id)
        total = info.length // 256
        words: list[int] = []
        for start in range(0, total, self.WORDS_PER_CALL):
            n = min(self.WORDS_PER_CALL, total - start)
            fn = self.contract.functions.statusWords(list_id, start, n)
            words.extend(self._call_at(fn, block))
        return bitstring_from_words(words)


class ChainRegistryView:
    """:class:`RegistryView` read live from the chain (Roles + CredentialRegistry).

    Status list credentials are built unsigned from the on-chain bits; lists are published
    under ``status_base_url`` (``{base}/{listId}``) by issuers with ``did:ethr`` DIDs.
    """

    def __init__(
        self,
        registry: CredentialRegistryClient,
        roles: Any,
        status_base_url: str,
        *,
        chain_id: int | None = None,
    ) -> None:
        self.registry = registry
        self.roles = roles  # ledger.roles.RolesClient
        self.status_base_url = status_base_url
        self.chain_id = chain_id

    def has_issuer_role(self, account: str) -> bool:
        from ledger.roles import Role

        return bool(self.roles.has_role(Role.ISSUER, account))

    def anchor_of(self, credential_hash: bytes) -> Anchor | None:
        return self.registry.anchor_of(credential_hash)

    def status_bit(self, list_id: int, index: int) -> bool:
        return self.registry.status_bit(list_id, index)

    def status_list_credential(self, url: str) -> Mapping[str, Any]:
        list_id = list_id_from_url(self.status_base_url, url)
        if list_id is None:
            raise LookupError("not a status list URL of this registry")
        info = self.registry.status_list(list_id)
        block = self.registry.chain._rpc(lambda: self.registry.chain.w3.eth.get_block("latest"))
        # read at "latest", not at block["number"]: a pruned node (anvil --prune-history, Besu
        # with Bonsai) keeps no state for past blocks; the bits are at least as new as validFrom
        return status_list_credential(
            url=url,
            issuer=issuer_did(info.owner, self.chain_id),
            purpose=info.purpose,
            bitstring=self.registry.bitstring(list_id),
            valid_from=datetime.fromtimestamp(int(block["timestamp"]), UTC),
        )


@dataclass(frozen=True)
class IssuedCredential:
    credential: dict[str, Any]
    credential_hash: bytes
    tx: TxResult


class IssuerService:
    """A registration authority's issuing desk: sign with its DID key, anchor with its account.

    ``sender`` is the issuer's chain account (it must hold ISSUER and own both lists);
    ``did`` is derived from it. Index allocation (random, unique per list pair) is the
    caller's job: it needs durable state.
    """

    def __init__(
        self,
        *,
        sender: Sender,
        registry: CredentialRegistryClient,
        private_key: Ed25519PrivateKey,
        key_id: str,
        status_base_url: str,
        revocation_list_id: int,
        suspension_list_id: int,
        chain_id: int | None = None,
    ) -> None:
        self.sender = sender
        self.registry = registry
        self.private_key = private_key
        self.did = issuer_did(sender.address, chain_id)
        self.verification_method = f"{self.did}#{key_id}"
        self.status_base_url = status_base_url
        self.revocation_list_id = revocation_list_id
        self.suspension_list_id = suspension_list_id

    def sign(
        self,
        *,
        holder: str,
        verified_name: str,
        resident_id_number: str,
        verification_level: VerificationLevel | str,
        residence_district: str,
        valid_from: datetime,
        valid_until: datetime,
        status_index: int,
        created: str,
        cryptosuite: str = EDDSA_JCS_2022,
    ) -> dict[str, Any]:
        """Build and sign (pure); :meth:`issue` also anchors."""
        unsigned = build_identity_credential(
            issuer=self.did,
            holder=holder,
            verified_name=verified_name,
            resident_id_number=resident_id_number,
            verification_level=verification_level,
            residence_district=residence_district,
            valid_from=valid_from,
            valid_until=valid_until,
            status_index=status_index,
            revocation_list_url=status_list_url(self.status_base_url, self.revocation_list_id),
            suspension_list_url=status_list_url(self.status_base_url, self.suspension_list_id),
        )
        return issue_credential(
            unsigned,
            private_key=self.private_key,
            verification_method=self.verification_method,
            cryptosuite=cryptosuite,
            created=created,
        )

    def issue(self, **claims: Any) -> IssuedCredential:
        """Sign (``claims`` are :meth:`sign`'s arguments), then anchor.

        Nothing is anchored if signing fails; a refused anchor raises
        :class:`~ledger.errors.ContractReverted`, and the credential must then not be handed out.
        """
        vc = self.sign(**claims)
        req = anchor_request(vc, self.revocation_list_id)
        tx = self.registry.anchor(self.sender, req)
        return IssuedCredential(vc, req.credential_hash, tx)

    def anchor_many(self, vcs: Sequence[Mapping[str, Any]]) -> TxResult:
        """Anchor already-signed credentials in one transaction (all or none)."""
        return self.registry.anchor_batch(
            self.sender, [anchor_request(vc, self.revocation_list_id) for vc in vcs]
        )

    def _index(self, vc: Mapping[str, Any], purpose: StatusPurpose, list_id: int) -> int:
        entry = _entry(vc, purpose)
        url = status_list_url(self.status_base_url, list_id)
        if entry is None or entry.get("statusListCredential") != url:
            raise CredentialError(f"credential has no {purpose.value} entry in list {list_id}")
        return int(entry["statusListIndex"])

    def revoke(self, vc: Mapping[str, Any]) -> bool:
        idx = self._index(vc, StatusPurpose.REVOCATION, self.revocation_list_id)
        return self.registry.set_status(self.sender, self.revocation_list_id, idx, True)

    def suspend(self, vc: Mapping[str, Any], suspended: bool = True) -> bool:
        idx = self._index(vc, StatusPurpose.SUSPENSION, self.suspension_list_id)
        return self.registry.set_status(self.sender, self.suspension_list_id, idx, suspended)

    def publish_status_list(
        self, list_id: int, *, valid_from: datetime, created: str
    ) -> dict[str, Any]:
        """The signed status list credential of one of this issuer's lists, from chain bits."""
        info = self.registry.status_list(list_id)
        if info.owner != self.sender.address:
            raise Forbidden(f"status list {list_id} is not owned by this issuer")
        return issue_status_list_credential(
            url=status_list_url(self.status_base_url, list_id),
            issuer=self.did,
            purpose=info.purpose,
            bitstring=self.registry.bitstring(list_id),
            valid_from=valid_from,
            private_key=self.private_key,
            verification_method=self.verification_method,
            created=created,
        )
