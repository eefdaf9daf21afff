"""W3C Data Integrity proofs with the EdDSA cryptosuites ``eddsa-jcs-2022`` and ``eddsa-rdfc-2022``.

Implements "Data Integrity EdDSA Cryptosuites v1.0" (W3C Recommendation): a proof is an Ed25519
signature over ``SHA-256(canonical proof configuration) || SHA-256(canonical document)``, where
the canonical form is JCS (RFC 8785) for ``eddsa-jcs-2022`` and RDFC-1.0 N-Quads for
``eddsa-rdfc-2022``; ``proofValue`` is the signature in multibase base58btc (``z...``).

Invariants:

* Pure: dicts and keys in, results out. No network (JSON-LD contexts come only from the bundle
  in :mod:`identity.jsonld`), no database, no clock (``created`` and ``now`` are arguments).
* Inputs are never mutated; :func:`add_proof` returns a new document.
* :func:`verify_proof` never raises because of the *document*: every defect in it, in its
  proof, or in its JSON-LD yields ``ProofResult(verified=False, error=ProofFailure(code, ...))``
  with a stable code. Only misuse by the calling code raises (``TypeError``), and
  :func:`add_proof` raises :class:`ProofGenerationError` or an :mod:`identity.jsonld` error
  (all :class:`~ledger.errors.InvalidInput`) for input it cannot sign.
* Failure messages never quote claim values of the document (they may be personal data).
* One proof per document: a ``proof`` array (proof set/chain) of more than one entry is
  reported as ``unsupported-proof-set``, never partially verified.
* Verifying a proof says only that the holder of the key behind ``verificationMethod`` signed
  the document for ``proofPurpose``; whether that key may speak for the document's issuer is
  for the ``resolve_key`` callback (or the caller) to decide.
* :func:`verify_proof` is :func:`prepare_proof` (the document alone: its proof's fields, the
  decoded signature, the canonical hash data) then :func:`check_prepared` (the key, the
  options, the clock, the signature). A :class:`PreparedProof` may be kept for the same
  document and checked again: everything that can change is in the second step.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from identity import jcs
from identity.jsonld import InvalidJsonLd, UnknownContext, canonicalize_rdfc
from ledger.errors import InvalidInput, ZhixinError

__all__ = [
    "CRYPTOSUITES",
    "EDDSA_JCS_2022",
    "EDDSA_RDFC_2022",
    "PROOF_TYPE",
    "PreparedProof",
    "ProofFailure",
    "ProofGenerationError",
    "ProofResult",
    "SigningInput",
    "add_proof",
    "check_prepared",
    "prepare_proof",
    "signing_input",
    "verify_proof",
]

EDDSA_JCS_2022: Final = "eddsa-jcs-2022"
EDDSA_RDFC_2022: Final = "eddsa-rdfc-2022"
CRYPTOSUITES: Final = frozenset({EDDSA_JCS_2022, EDDSA_RDFC_2022})
PROOF_TYPE: Final = "DataIntegrityProof"

_SIGNATURE_LEN: Final = 64
_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58: Final = frozenset(_B58_ALPHABET)
_B58_DIGIT: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}
# XML Schema 1.1 dateTimeStamp (a dateTime with a mandatory time zone), as VC-DI requires for
# ``created`` and ``expires``; range-checked afterwards with datetime.fromisoformat.
_DATETIME_STAMP: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)
_IRI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*:[^\s]+$")
SIGNATURE_CACHE_SIZE: Final = 65_536
_verified: dict[bytes, None] = {}
"""Signatures that verified, keyed by public key, signature and signed message (all of them,
so a hit is the same check with the same answer). An issuer's signature on a credential is
checked on every presentation of it, and Ed25519 verification (~0.3 ms, holding the GIL) was
the largest single cost; a holder's proof over a fresh challenge never repeats."""


class ProofGenerationError(InvalidInput):
    """:func:`add_proof` was asked for a proof it cannot make (bad option or document)."""

    code = "proof-generation"


@dataclass(frozen=True, slots=True)
class ProofFailure:
    """Why a proof did not verify: a stable ``code`` and a human ``message``."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ProofResult:
    """Outcome of :func:`verify_proof`; ``error`` is set exactly when ``verified`` is false."""

    verified: bool
    verification_method: str | None = None
    cryptosuite: str | None = None
    proof_purpose: str | None = None
    created: str | None = None
    error: ProofFailure | None = None


@dataclass(frozen=True, slots=True)
class SigningInput:
    """The canonical forms and the hash data that the Ed25519 signature covers."""

    canonical_document: bytes
    canonical_proof_config: bytes

    @property
    def hash_data(self) -> bytes:
        """``SHA-256(proof config) || SHA-256(document)`` (64 bytes), the signed message."""
        return (
            hashlib.sha256(self.canonical_proof_config).digest()
            + hashlib.sha256(self.canonical_document).digest()
        )


class _Fail(Exception):
    """Internal: carries a ProofFailure out of the verification steps."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.failure = ProofFailure(code, message)


def _parse_datetime(value: str) -> datetime:
    """Parse a dateTimeStamp already matched by ``_DATETIME_STAMP`` (ValueError if no date)."""
    text = value.replace("Z", "+00:00")
    if "." in text:  # fromisoformat takes at most 6 fractional digits
        head, _, rest = text.partition(".")
        text = f"{head}.{(rest[:-6] + '000000')[:6]}{rest[-6:]}"
    return datetime.fromisoformat(text)


def _is_datetime_stamp(value: object) -> bool:
    if not isinstance(value, str) or not _DATETIME_STAMP.match(value):
        return False
    try:
        _parse_datetime(value)
    except ValueError:
        return False
    return True


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def signing_input(
    unsecured_document: Mapping[str, Any], proof_config: Mapping[str, Any], cryptosuite: str
) -> SigningInput:
    """Canonicalize a document (without ``proof``) and a proof configuration.

    ``proof_config`` is the proof without ``proofValue`` and must already carry the
    ``@context`` the cryptosuite prescribes (the document's). Raises
    :class:`ProofGenerationError`, :class:`~identity.jsonld.UnknownContext` or
    :class:`~identity.jsonld.InvalidJsonLd` for input that cannot be canonicalized.
    """
    if cryptosuite == EDDSA_JCS_2022:
        try:
            return SigningInput(
                canonical_document=jcs.dumps(dict(unsecured_document)),
                canonical_proof_config=jcs.dumps(dict(proof_config)),
            )
        except (ValueError, TypeError, RecursionError) as exc:
            # rfc8785: non-string keys, non-JSON values, integers beyond 2**53, lone surrogates
            # the exception text may quote a claim value: name its type only
            raise ProofGenerationError(
                f"document is not JCS-serializable I-JSON ({type(exc).__name__})"
            ) from exc
    if cryptosuite == EDDSA_RDFC_2022:
        return SigningInput(
            canonical_document=canonicalize_rdfc(unsecured_document).encode("utf-8"),
            canonical_proof_config=canonicalize_rdfc(proof_config).encode("utf-8"),
        )
    raise ProofGenerationError(f"unsupported cryptosuite {cryptosuite!r}")


def _proof_config(proof_options: Mapping[str, Any], document_context: Any) -> dict[str, Any]:
    config = {k: v for k, v in proof_options.items() if k != "proofValue"}
    if document_context is not None:
        config["@context"] = copy.deepcopy(document_context)
    return config


def add_proof(
    document: Mapping[str, Any],
    *,
    private_key: Ed25519PrivateKey,
    verification_method: str,
    proof_purpose: str = "assertionMethod",
    cryptosuite: str = EDDSA_JCS_2022,
    created: str,
    challenge: str | None = None,
    domain: str | None = None,
) -> dict[str, Any]:
    """Return a copy of ``document`` with a ``DataIntegrityProof`` signed by ``private_key``.

    Ed25519 is deterministic, so equal inputs give byte-identical proofs. For
    ``eddsa-jcs-2022`` the proof repeats the document's ``@context`` (as the W3C test vectors
    do), for ``eddsa-rdfc-2022`` it does not (its terms come from the document's contexts).
    """
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError("private_key must be an Ed25519PrivateKey")
    if not isinstance(document, Mapping):
        raise ProofGenerationError("document must be a JSON object")
    if "proof" in document:
        raise ProofGenerationError("document already has a proof (proof sets are unsupported)")
    if cryptosuite not in CRYPTOSUITES:
        raise ProofGenerationError(f"unsupported cryptosuite {cryptosuite!r}")
    if not isinstance(verification_method, str) or not _IRI.match(verification_method):
        raise ProofGenerationError("verification_method must be an absolute IRI")
    if not isinstance(proof_purpose, str) or not proof_purpose:
        raise ProofGenerationError("proof_purpose must be a non-empty string")
    if not _is_datetime_stamp(created):
        raise ProofGenerationError("created must be an XML Schema dateTimeStamp with time zone")
    for name, value in (("challenge", challenge), ("domain", domain)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ProofGenerationError(f"{name} must be a non-empty string")
    context = document.get("@context")
    if cryptosuite == EDDSA_RDFC_2022 and context is None:
        raise ProofGenerationError("eddsa-rdfc-2022 needs a JSON-LD document with @context")

    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": cryptosuite,
        "created": created,
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
    }
    if challenge is not None:
        proof["challenge"] = challenge
    if domain is not None:
        proof["domain"] = domain
    if cryptosuite == EDDSA_JCS_2022 and context is not None:
        proof["@context"] = copy.deepcopy(context)

    unsecured = copy.deepcopy(dict(document))
    data = signing_input(unsecured, _proof_config(proof, context), cryptosuite)
    signature = private_key.sign(data.hash_data)
    proof["proofValue"] = "z" + base58.b58encode(signature).decode("ascii")
    unsecured["proof"] = proof
    return unsecured


def _b58decode(text: str) -> bytes:
    """``base58.b58decode(text)`` for a string of base58btc alphabet characters only, ~10x
    faster: the library turns the integer into bytes one ``divmod`` at a time, and every
    presentation's fresh holder signature is decoded."""
    body = text.lstrip("1")
    n = 0
    digit = _B58_DIGIT
    for c in body:
        n = n * 58 + digit[c]
    return b"\0" * (len(text) - len(body)) + n.to_bytes((n.bit_length() + 7) // 8, "big")


def _decode_proof_value(value: object) -> bytes:
    if not isinstance(value, str):
        raise _Fail("malformed-proof", "proofValue must be a string")
    if not value.startswith("z"):
        raise _Fail("malformed-proof", "proofValue must be multibase base58btc (prefix 'z')")
    body = value[1:]
    if not body or len(body) > 100 or not set(body) <= _B58:
        raise _Fail("malformed-proof", "proofValue is not valid base58btc")
    raw = _b58decode(body)
    if len(raw) != _SIGNATURE_LEN:
        raise _Fail("malformed-proof", f"proofValue decodes to {len(raw)} bytes, expected 64")
    return raw


def _select_proof(document: object) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        raise _Fail("malformed-document", "document must be a JSON object")
    if "proof" not in document:
        raise _Fail("proof-missing", "document has no proof")
    proof = document["proof"]
    if isinstance(proof, list):
        if len(proof) != 1:
            raise _Fail("unsupported-proof-set", "only a single proof is supported")
        proof = proof[0]
    if not isinstance(proof, Mapping):
        raise _Fail("malformed-proof", "proof must be a JSON object")
    return dict(proof)


def _check_proof_fields(proof: Mapping[str, Any]) -> None:
    if proof.get("type") != PROOF_TYPE:
        raise _Fail("unsupported-proof-type", f"proof type must be {PROOF_TYPE}")
    suite = proof.get("cryptosuite")
    if not isinstance(suite, str) or suite not in CRYPTOSUITES:
        shown = suite if isinstance(suite, str) and len(suite) <= 64 else "(invalid)"
        raise _Fail("unsupported-cryptosuite", f"cryptosuite {shown} is not supported")
    vm = proof.get("verificationMethod")
    if not isinstance(vm, str) or not _IRI.match(vm):
        raise _Fail("malformed-proof", "verificationMethod must be an absolute IRI string")
    if not isinstance(proof.get("proofPurpose"), str):
        raise _Fail("malformed-proof", "proofPurpose must be a string")
    for name in ("created", "expires"):
        if name in proof and not _is_datetime_stamp(proof[name]):
            raise _Fail("malformed-proof", f"{name} must be an XML Schema dateTimeStamp")
    if "challenge" in proof and not isinstance(proof["challenge"], str):
        raise _Fail("malformed-proof", "challenge must be a string")
    if "domain" in proof:
        domains = _as_list(proof["domain"])
        if not domains or not all(isinstance(d, str) for d in domains):
            raise _Fail("malformed-proof", "domain must be a string or a list of strings")


def _check_options(
    prep: PreparedProof,
    expected_purpose: str,
    challenge: str | None,
    domain: str | None,
    now: datetime | None,
) -> None:
    purpose = prep.proof_purpose
    assert purpose is not None  # checked by _check_proof_fields
    if purpose != expected_purpose:
        raise _Fail("wrong-purpose", f"proof purpose {purpose[:64]!r} is not {expected_purpose!r}")
    if challenge is not None and prep.challenge != challenge:
        raise _Fail("challenge-mismatch", "proof challenge does not match the expected one")
    if domain is not None and domain not in prep.domains:
        raise _Fail("domain-mismatch", "proof domain does not match the expected one")
    if now is not None and prep.expires is not None and prep.expires <= now:
        raise _Fail("proof-expired", "proof has expired")


def _unsecured_and_config(
    document: Mapping[str, Any], proof: Mapping[str, Any], cryptosuite: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply the suite's @context rule; return (unsecured document, proof configuration)."""
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    doc_context = unsecured.get("@context")
    if "@context" in proof:
        proof_ctx = _as_list(proof["@context"])
        doc_ctx = _as_list(doc_context) if doc_context is not None else []
        if cryptosuite == EDDSA_JCS_2022:
            # eddsa-jcs-2022 Verify Proof, step 4: the document's contexts must start with
            # the proof's, in order; the proof's are then the ones that were signed.
            if doc_ctx[: len(proof_ctx)] != proof_ctx:
                raise _Fail("context-mismatch", "document @context does not start with proof's")
            unsecured["@context"] = proof["@context"]
            doc_context = proof["@context"]
        elif doc_ctx != proof_ctx:
            # eddsa-rdfc-2022 signs with the document's contexts only; a differing proof
            # @context would be ignored, so refuse rather than verify something unexpected.
            raise _Fail("context-mismatch", "proof @context differs from the document's")
    elif cryptosuite == EDDSA_RDFC_2022 and doc_context is None:
        raise _Fail("invalid-jsonld", "eddsa-rdfc-2022 needs a document with @context")
    return unsecured, _proof_config(proof, doc_context)


def _resolve(
    verification_method: str,
    public_key: Ed25519PublicKey | None,
    resolve_key: Callable[[str], Ed25519PublicKey] | None,
) -> Ed25519PublicKey:
    if public_key is not None:
        return public_key
    assert resolve_key is not None  # checked by verify_proof
    try:
        key = resolve_key(verification_method)
    except (ZhixinError, LookupError, ValueError) as exc:
        raise _Fail("key-resolution-failed", f"verification method not resolved: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise _Fail("key-resolution-failed", "verification method is not an Ed25519 key")
    return key


def _verify_signature(key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    """``key.verify`` through :data:`_verified`; raises ``_Fail`` if the signature is wrong."""
    entry = key.public_bytes_raw() + signature + message
    if entry in _verified:
        return
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise _Fail("invalid-signature", "signature does not match document and key") from exc
    if len(_verified) >= SIGNATURE_CACHE_SIZE:
        _verified.clear()  # crude but atomic under concurrent requests; refills in a moment
    _verified[entry] = None


@dataclass(frozen=True, slots=True)
class PreparedProof:
    """What :func:`verify_proof` derives from the document alone: no key, no clock, no
    options. Immutable (nothing refers into the document), so it may be kept and checked
    again with :func:`check_prepared`: the key is resolved, the options and ``expires``
    checked and the signature verified on every check.

    A defect of the document is kept with the stage at which :func:`verify_proof` reports it,
    so that a prepared check fails with the same code as a direct one: ``early`` (the proof's
    own fields) before the options are checked, ``late`` (proofValue, @context rule) after
    them and before the key is resolved, ``canonical`` (JCS/RDFC) after the key is resolved.
    """

    verification_method: str | None = None
    cryptosuite: str | None = None
    proof_purpose: str | None = None
    created: str | None = None
    challenge: str | None = None
    domains: tuple[str, ...] = ()
    expires: datetime | None = None
    signature: bytes = b""
    message: bytes = b""
    early: ProofFailure | None = None
    late: ProofFailure | None = None
    canonical: ProofFailure | None = None


def prepare_proof(document: Mapping[str, Any]) -> PreparedProof:
    """Everything of :func:`verify_proof` that depends on ``document`` only; never raises
    for bad data (see :class:`PreparedProof`)."""
    try:
        proof = _select_proof(document)
        _check_proof_fields(proof)
    except _Fail as fail:
        return PreparedProof(early=fail.failure)
    vm, suite, purpose = proof["verificationMethod"], proof["cryptosuite"], proof["proofPurpose"]
    expires = _parse_datetime(proof["expires"]) if "expires" in proof else None
    fields: dict[str, Any] = {
        "verification_method": vm,
        "cryptosuite": suite,
        "proof_purpose": purpose,
        "created": proof.get("created"),
        "challenge": proof.get("challenge"),
        "domains": tuple(_as_list(proof["domain"])) if "domain" in proof else (),
        "expires": expires,
    }
    try:
        signature = _decode_proof_value(proof.get("proofValue"))
        unsecured, config = _unsecured_and_config(document, proof, suite)
    except _Fail as fail:
        return PreparedProof(**fields, late=fail.failure)
    try:
        try:
            data = signing_input(unsecured, config, suite)
        except UnknownContext as exc:
            raise _Fail("unknown-context", exc.detail) from exc
        except InvalidJsonLd as exc:
            raise _Fail(exc.code, exc.detail) from exc
        except ProofGenerationError as exc:
            raise _Fail("invalid-json", exc.detail) from exc
    except _Fail as fail:
        return PreparedProof(**fields, signature=signature, canonical=fail.failure)
    return PreparedProof(**fields, signature=signature, message=data.hash_data)


def check_prepared(
    prep: PreparedProof,
    *,
    public_key: Ed25519PublicKey | None = None,
    resolve_key: Callable[[str], Ed25519PublicKey] | None = None,
    expected_purpose: str = "assertionMethod",
    challenge: str | None = None,
    domain: str | None = None,
    now: datetime | None = None,
) -> ProofResult:
    """:func:`verify_proof` of the document ``prep`` was prepared from (same arguments,
    same result); the signature check goes through the cache of verified signatures."""
    if (public_key is None) == (resolve_key is None):
        raise TypeError("pass exactly one of public_key and resolve_key")
    if public_key is not None and not isinstance(public_key, Ed25519PublicKey):
        raise TypeError("public_key must be an Ed25519PublicKey")
    if now is not None and now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    vm, suite, purpose = prep.verification_method, prep.cryptosuite, prep.proof_purpose
    try:
        if prep.early is not None:
            return ProofResult(False, error=prep.early)
        assert vm is not None
        _check_options(prep, expected_purpose, challenge, domain, now)
        if prep.late is not None:
            raise _Fail(prep.late.code, prep.late.message)
        key = _resolve(vm, public_key, resolve_key)
        if prep.canonical is not None:
            raise _Fail(prep.canonical.code, prep.canonical.message)
        _verify_signature(key, prep.signature, prep.message)
    except _Fail as fail:
        return ProofResult(False, vm, suite, purpose, prep.created, fail.failure)
    return ProofResult(True, vm, suite, purpose, prep.created, None)


def verify_proof(
    document: Mapping[str, Any],
    *,
    public_key: Ed25519PublicKey | None = None,
    resolve_key: Callable[[str], Ed25519PublicKey] | None = None,
    expected_purpose: str = "assertionMethod",
    challenge: str | None = None,
    domain: str | None = None,
    now: datetime | None = None,
) -> ProofResult:
    """Verify the single Data Integrity proof of ``document``; never raises for bad data.

    Give exactly one of ``public_key`` (the key the caller trusts) or ``resolve_key``
    (called with ``verificationMethod``; it may raise :class:`~ledger.errors.ZhixinError`,
    ``LookupError`` or ``ValueError`` for an unknown method). ``challenge`` and ``domain``
    are checked only when given; ``expires`` is checked only when ``now`` (aware) is given.
    """
    if (public_key is None) == (resolve_key is None):
        raise TypeError("pass exactly one of public_key and resolve_key")
    if public_key is not None and not isinstance(public_key, Ed25519PublicKey):
        raise TypeError("public_key must be an Ed25519PublicKey")
    if now is not None and now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    return check_prepared(
        prepare_proof(document),
        public_key=public_key,
        resolve_key=resolve_key,
        expected_purpose=expected_purpose,
        challenge=challenge,
        domain=domain,
        now=now,
    )
