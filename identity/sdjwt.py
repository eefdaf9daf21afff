"""Selective disclosure of the identity credential as an SD-JWT VC (RFC 9901, key binding).

The issuer signs (EdDSA, its ``did:ethr`` Ed25519 ``assertionMethod`` key, ``kid`` the
verification method) a JWT whose personal claims are *disclosable*: each is a disclosure
``base64url(JSON [salt, name, value])`` whose SHA-256 digest (base64url of the digest of the
disclosure's ASCII text as sent) is listed in the payload's ``_sd`` (``_sd_alg`` ``sha-256``).
Besides the name, the resident identity number, the birth date and the residence district,
derived claims are disclosable alone: ``age_over_18`` (from the validated number's birth date,
*at issuance*: a citizen who comes of age needs a new credential) and ``resident_of`` (the
district's 6-digit code, e.g. ``440604`` Chancheng). The holder presents
``<issuer-jwt>~<chosen disclosures>~<kb-jwt>``, the Key Binding JWT (``typ`` ``kb+jwt``)
signed by the key in ``cnf.jwk`` over the verifier's ``nonce`` (a challenge it issued),
``aud`` (its domain), ``iat`` and ``sd_hash`` (digest of everything before the KB-JWT).

Invariants:

* Pure: bytes/objects in, result out; no I/O and no clock (``now`` is a parameter). The
  chain and the challenge store are reached only through callbacks. The only randomness is
  the issuer's salts (128 bits, ``salt`` parameter) and two decoy digests per credential.
* Claims are flat: only top-level object-property disclosures ([salt, name, value]);
  nested ``_sd`` and array-element disclosures are neither issued nor accepted.
* :func:`verify_sd_jwt` never raises because of the presentation: every defect is a failed
  check of :data:`CHECKS` with a stable ``code``; messages never quote claim values.
* Every disclosure must be well formed (3-element array, string salt and name, name neither
  ``_sd`` nor ``...`` nor a claim already in the payload), its digest must be in ``_sd``, and
  no disclosure or ``_sd`` digest may appear twice; the verifier sees only what was disclosed.
* The challenge (``nonce``) is consumed at most once, and only when the KB-JWT is well formed
  and names a nonce and an ``aud``: one verification attempt per challenge, whatever its
  outcome (as for VC presentations).
* Status is the issuer's on-chain revocation and suspension bits at one random index,
  referenced from the signed payload (``status.bitstring_status_list``); a credential without
  that reference fails ``status`` (``no-status``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from stdnum.cn import ric as stdnum_ric

from identity.credentials import CheckResult, NamedChecks, VerificationLevel, issuer_account
from identity.ids import InvalidIdentifier, validate_ric
from identity.presentations import CHALLENGE_OUTCOMES, ChallengeConsumer
from ledger.errors import InvalidInput, ZhixinError

__all__ = [
    "CHECKS",
    "DISCLOSABLE",
    "KB_JWT_TYPE",
    "SD_ALG",
    "SD_JWT_TYPE",
    "VCT",
    "SdJwtError",
    "SdJwtResult",
    "StatusBit",
    "disclosure_digest",
    "encode_disclosure",
    "issue_sd_jwt",
    "present_sd_jwt",
    "verify_sd_jwt",
]

SD_ALG: Final = "sha-256"
SD_JWT_TYPE: Final = "dc+sd-jwt"
KB_JWT_TYPE: Final = "kb+jwt"
VCT: Final = "urn:zhixin:vct:resident-identity:1"
DISCLOSABLE: Final = (
    "verified_name",
    "resident_id_number",
    "birthdate",
    "residence_district",
    "age_over_18",
    "resident_of",
)
"""Claims the issuer makes disclosable (each its own disclosure)."""
CHECKS: Final = (
    "structure",
    "issuer-signature",
    "issuer-role",
    "disclosures",
    "validity",
    "status",
    "key-binding",
    "challenge",
)
"""Every check of :func:`verify_sd_jwt`, in the order reported."""
MAX_PRESENTATION: Final = 64 * 1024
MAX_DISCLOSURES: Final = 32
KB_MAX_AGE: Final = timedelta(minutes=5)
"""A KB-JWT's ``iat`` may be at most this old (the challenge TTL) ..."""
KB_MAX_SKEW: Final = timedelta(seconds=60)
"""... and at most this far in the future."""
_RESERVED: Final = frozenset(
    {"_sd", "...", "_sd_alg", "iss", "iat", "nbf", "exp", "cnf", "vct", "status", "sub"}
)
_B64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


StatusBit = Callable[[str, str, str, int], bool]
"""``(issuer, purpose, list uri, index) -> bit``; LookupError unless ``issuer``'s list."""


class SdJwtError(InvalidInput):
    """An SD-JWT cannot be issued or presented from what was given."""

    code = "invalid-sd-jwt"


# ---- encoding ----


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: object) -> bytes:
    """Strict base64url without padding; ValueError otherwise."""
    if not isinstance(text, str) or not set(text) <= _B64URL or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:  # pragma: no cover - excluded by the alphabet check
        raise ValueError("not base64url") from None


def _json_b64(obj: Any) -> str:
    return _b64e(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())


def _parse_json(raw: bytes) -> Any:
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise ValueError("duplicate member")
        return out

    return json.loads(raw.decode("utf-8"), object_pairs_hook=no_dupes)


def encode_disclosure(salt: str, name: str, value: Any) -> str:
    return _json_b64([salt, name, value])


def disclosure_digest(disclosure: str) -> str:
    """base64url(SHA-256(ASCII of the disclosure as sent)) (``_sd_alg`` ``sha-256``)."""
    return _b64e(hashlib.sha256(disclosure.encode("ascii")).digest())


def _sign_jws(header: Mapping[str, Any], payload: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    signing_input = _json_b64(header) + "." + _json_b64(payload)
    return signing_input + "." + _b64e(key.sign(signing_input.encode("ascii")))


def _parse_jws(jws: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """``(header, payload, signing input, signature)``; ValueError when malformed."""
    parts = jws.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    header, payload = _parse_json(_b64d(parts[0])), _parse_json(_b64d(parts[1]))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("JWS header and payload must be objects")
    sig = _b64d(parts[2])
    if header.get("alg") != "EdDSA" or len(sig) != 64:
        raise ValueError("alg must be EdDSA")
    return header, payload, (parts[0] + "." + parts[1]).encode("ascii"), sig


def _valid(key: Ed25519PublicKey, sig: bytes, msg: bytes) -> bool:
    try:
        key.verify(sig, msg)
    except InvalidSignature:
        return False
    return True


def _okp_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64e(key.public_bytes_raw())}


def _key_from_jwk(jwk: object) -> Ed25519PublicKey:
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("cnf.jwk must be an Ed25519 OKP key")
    raw = _b64d(jwk.get("x"))
    if len(raw) != 32:
        raise ValueError("cnf.jwk x must be 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def _epoch(t: datetime) -> int:
    if t.tzinfo is None:
        raise TypeError("times must be timezone-aware")
    return int(t.timestamp())


# ---- issuer side ----


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def issue_sd_jwt(
    *,
    issuer: str,
    verification_method: str,
    private_key: Ed25519PrivateKey,
    holder: str,
    holder_key: Ed25519PublicKey,
    holder_key_id: str | None,
    verified_name: str,
    resident_id_number: str,
    residence_district: str,
    district_code: str | None,
    verification_level: str,
    valid_from: datetime,
    valid_until: datetime,
    now: datetime,
    status: Mapping[str, Any] | None = None,
    decoys: int = 2,
    salt: Callable[[], str] = lambda: secrets.token_urlsafe(16),
) -> str:
    """The issued SD-JWT ``<jwt>~<disclosure>~...~`` (every disclosure included).

    Raises :class:`SdJwtError` for a bad identity number, district code, level or window.
    """
    try:
        ric = validate_ric(resident_id_number)
    except InvalidIdentifier as exc:
        raise SdJwtError(f"residentIdNumber: {exc.detail}", reason=exc.reason) from None
    birth = stdnum_ric.get_birth_date(ric)
    if district_code is not None and not (len(district_code) == 6 and district_code.isdigit()):
        raise SdJwtError("residenceDistrictCode must be 6 digits (GB/T 2260)")
    try:
        level = VerificationLevel(verification_level)
    except ValueError:
        raise SdJwtError("verificationLevel must be 'in-person' or 'online'") from None
    if valid_until <= valid_from:
        raise SdJwtError("validUntil must be after validFrom")
    for what, text in (("verifiedName", verified_name), ("residenceDistrict", residence_district)):
        if not isinstance(text, str) or not 0 < len(text.strip()) <= 200 or not text.isprintable():
            raise SdJwtError(f"{what} must be 1..200 printable characters")
    claims: dict[str, Any] = {
        "verified_name": verified_name.strip(),
        "resident_id_number": ric,
        "birthdate": birth.isoformat(),
        "residence_district": residence_district.strip(),
        "age_over_18": _age(birth, now.date()) >= 18,
    }
    if district_code is not None:
        claims["resident_of"] = district_code
    disclosures = [encode_disclosure(salt(), name, value) for name, value in claims.items()]
    digests = [disclosure_digest(d) for d in disclosures]
    digests += [_b64e(hashlib.sha256(secrets.token_bytes(32)).digest()) for _ in range(decoys)]
    cnf: dict[str, Any] = {"jwk": _okp_jwk(holder_key)}
    if holder_key_id is not None:
        cnf["kid"] = holder_key_id
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": holder,
        "vct": VCT,
        "iat": _epoch(now),
        "nbf": _epoch(valid_from),
        "exp": _epoch(valid_until),
        "verification_level": level.value,
        "cnf": cnf,
        "_sd_alg": SD_ALG,
        "_sd": sorted(digests),
    }
    if status is not None:
        payload["status"] = dict(status)
    header = {"alg": "EdDSA", "typ": SD_JWT_TYPE, "kid": verification_method}
    return "~".join([_sign_jws(header, payload, private_key), *disclosures, ""])


# ---- holder side ----


def _split(sd_jwt: str) -> tuple[str, list[str], str]:
    parts = sd_jwt.split("~")
    if len(parts) < 2:
        raise ValueError("an SD-JWT has at least one '~'")
    return parts[0], parts[1:-1], parts[-1]


def present_sd_jwt(
    sd_jwt: str,
    *,
    disclose: Sequence[str],
    holder_key: Ed25519PrivateKey,
    nonce: str,
    aud: str,
    now: datetime,
) -> str:
    """``<jwt>~<the disclosures of the claims named in disclose>~<kb-jwt>``."""
    try:
        jwt, disclosures, kb = _split(sd_jwt)
    except ValueError as exc:
        raise SdJwtError(str(exc)) from None
    if kb:
        raise SdJwtError("the SD-JWT already carries a key binding")
    wanted = set(disclose)
    chosen = []
    for d in disclosures:
        try:
            arr = _parse_json(_b64d(d))
            claim = arr[1]
        except (ValueError, RecursionError, TypeError, IndexError, KeyError):
            raise SdJwtError("the SD-JWT has a malformed disclosure") from None
        if claim in wanted:
            chosen.append(d)
            wanted.discard(claim)
    if wanted:
        raise SdJwtError(f"no disclosure for {sorted(wanted)}")
    prefix = "~".join([jwt, *chosen, ""])
    sd_hash = _b64e(hashlib.sha256(prefix.encode("ascii")).digest())
    kb_payload = {"iat": _epoch(now), "aud": aud, "nonce": nonce, "sd_hash": sd_hash}
    return prefix + _sign_jws({"alg": "EdDSA", "typ": KB_JWT_TYPE}, kb_payload, holder_key)


# ---- verifier side ----


@dataclass(frozen=True)
class SdJwtResult(NamedChecks):
    """Every check of :data:`CHECKS` by name; ``disclosed`` only the disclosed claims."""

    checks: tuple[CheckResult, ...]
    disclosed: Mapping[str, Any] = field(default_factory=dict)
    issuer: str | None = None
    holder: str | None = None
    verification_level: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "issuer": self.issuer,
            "holder": self.holder,
            "failed": list(self.failed),
            "checks": self.checks_json(),
            # claims only when every check passed: nothing unverified is handed on
            "disclosed": dict(self.disclosed) if self.verified else {},
            "verificationLevel": self.verification_level if self.verified else None,
        }


_ok = CheckResult.passed
_bad = CheckResult.failure


def _disclosures(
    payload: Mapping[str, Any], disclosures: Sequence[str]
) -> CheckResult | dict[str, Any]:
    name = "disclosures"
    if payload.get("_sd_alg") != SD_ALG:
        return _bad(name, "unsupported-sd-alg", "_sd_alg must be sha-256")
    sd = payload.get("_sd")
    if not isinstance(sd, list) or not all(isinstance(x, str) for x in sd):
        return _bad(name, "malformed-sd", "_sd must be a list of digests")
    if len(set(sd)) != len(sd):
        return _bad(name, "duplicate-digest", "a digest appears twice in _sd")
    if len(set(disclosures)) != len(disclosures):
        return _bad(name, "duplicate-disclosure", "a disclosure appears twice")
    digests = set(sd)
    out: dict[str, Any] = {}
    for i, d in enumerate(disclosures):
        try:
            arr = _parse_json(_b64d(d))
        except (ValueError, RecursionError):
            return _bad(
                name, "malformed-disclosure", f"disclosure {i} is not base64url JSON", index=i
            )
        if (
            not isinstance(arr, list)
            or len(arr) != 3
            or not isinstance(arr[0], str)
            or not isinstance(arr[1], str)
        ):
            return _bad(
                name, "malformed-disclosure", f"disclosure {i} is not [salt, name, value]", index=i
            )
        if disclosure_digest(d) not in digests:
            return _bad(name, "unknown-disclosure", f"disclosure {i} is not in _sd", index=i)
        claim = arr[1]
        if claim in _RESERVED or claim in payload or claim in out:
            return _bad(
                name, "claim-conflict", f"disclosure {i} names a reserved or present claim", index=i
            )
        out[claim] = arr[2]
    return out


def _validity(payload: Mapping[str, Any], now: datetime) -> CheckResult:
    name = "validity"
    exp, nbf = payload.get("exp"), payload.get("nbf", payload.get("iat"))
    if type(exp) is not int or type(nbf) is not int:
        return _bad(name, "malformed-validity", "exp and nbf/iat must be integers")
    t = _epoch(now)
    if t < nbf:
        return _bad(name, "not-yet-valid", "the credential is not valid yet")
    if t >= exp:
        return _bad(name, "expired", "the credential has expired")
    return _ok(name, "within the validity window")


def _status(payload: Mapping[str, Any], status_bit: StatusBit | None) -> CheckResult:
    name = "status"
    ref = payload.get("status")
    ref = ref.get("bitstring_status_list") if isinstance(ref, Mapping) else None
    if not isinstance(ref, Mapping):
        return _bad(name, "no-status", "the credential carries no status reference")
    if status_bit is None:
        return _bad(name, "status-unavailable", "no status source was given")
    for purpose in ("revocation", "suspension"):
        entry = ref.get(purpose)
        if not isinstance(entry, Mapping):
            return _bad(name, "malformed-status", f"no {purpose} entry")
        url, idx = entry.get("uri"), entry.get("idx")
        if not isinstance(url, str) or type(idx) is not int or idx < 0:
            return _bad(name, "malformed-status", f"{purpose} entry needs uri and idx")
        try:
            bit = status_bit(payload["iss"], purpose, url, idx)
        except (LookupError, ValueError, ZhixinError):
            return _bad(name, "unknown-status-list", f"the {purpose} list is not on chain here")
        if bit:
            code = "revoked" if purpose == "revocation" else "suspended"
            return _bad(name, code, f"the credential is {code}")
    return _ok(name, "neither revoked nor suspended")


def _key_binding(
    payload: Mapping[str, Any], prefix: str, kb: str, now: datetime
) -> tuple[CheckResult, str | None, str | None]:
    """The ``key-binding`` check and the KB-JWT's ``(nonce, aud)`` when it names both."""
    name = "key-binding"
    if not kb:
        return _bad(name, "kb-missing", "the presentation has no Key Binding JWT"), None, None
    try:
        holder = _key_from_jwk(payload.get("cnf", {}).get("jwk"))
    except (ValueError, AttributeError):
        return _bad(name, "no-cnf", "the credential binds no Ed25519 holder key"), None, None
    try:
        header, kbp, signing_input, sig = _parse_jws(kb)
    except (ValueError, RecursionError):
        return _bad(name, "kb-malformed", "the Key Binding JWT is malformed"), None, None
    nonce, aud = kbp.get("nonce"), kbp.get("aud")
    nonce = nonce if isinstance(nonce, str) and 0 < len(nonce) <= 64 else None
    aud = aud if isinstance(aud, str) and 0 < len(aud) <= 255 else None
    if header.get("typ") != KB_JWT_TYPE:
        return _bad(name, "kb-malformed", "the Key Binding JWT's typ is not kb+jwt"), nonce, aud
    if not _valid(holder, sig, signing_input):
        return _bad(name, "kb-signature", "not signed by the credential's holder key"), nonce, aud
    sd_hash = _b64e(hashlib.sha256(prefix.encode("ascii")).digest())
    if kbp.get("sd_hash") != sd_hash:
        return _bad(name, "sd-hash-mismatch", "sd_hash does not match the presentation"), nonce, aud
    iat = kbp.get("iat")
    if type(iat) is not int:
        return _bad(name, "kb-malformed", "the Key Binding JWT has no iat"), nonce, aud
    t = _epoch(now)
    if iat > t + KB_MAX_SKEW.total_seconds() or iat < t - KB_MAX_AGE.total_seconds():
        return _bad(name, "kb-stale", "the Key Binding JWT's iat is out of range"), nonce, aud
    if nonce is None or aud is None:
        return _bad(name, "kb-malformed", "the Key Binding JWT needs nonce and aud"), nonce, aud
    return _ok(name, "signed by the holder key over this presentation"), nonce, aud


def _challenge(
    nonce: str | None,
    aud: str | None,
    consume: ChallengeConsumer,
    now: datetime,
    expected_aud: str | None,
) -> CheckResult:
    name = "challenge"
    if nonce is None or aud is None:
        return _bad(name, "challenge-missing", "the Key Binding JWT names no nonce and aud")
    if expected_aud is not None and aud != expected_aud:
        return _bad(name, "aud-mismatch", "the Key Binding JWT's aud is not this verifier")
    code = consume(nonce, aud, now)
    if code == "ok":
        return _ok(name, CHALLENGE_OUTCOMES["ok"], domain=aud)
    return _bad(name, code, CHALLENGE_OUTCOMES.get(code, "challenge refused"))


def verify_sd_jwt(
    presentation: object,
    *,
    resolve_issuer_key: Callable[[str], Ed25519PublicKey],
    has_issuer_role: Callable[[str], bool],
    consume_challenge: ChallengeConsumer,
    now: datetime,
    expected_aud: str | None = None,
    status_bit: StatusBit | None = None,
    resolve_holder_key: Callable[[str], Ed25519PublicKey] | None = None,
) -> SdJwtResult:
    """Run every check of :data:`CHECKS`; never raises for a malformed presentation.

    ``resolve_issuer_key(kid)`` gives the issuer's ``assertionMethod`` key (may raise
    ZhixinError/LookupError/ValueError); ``has_issuer_role(account)`` the chain role;
    ``status_bit(iss, purpose, list_uri, idx)`` a status bit (LookupError unless the list
    is one of ``iss`` for ``purpose``);
    ``resolve_holder_key(cnf.kid)``, if given, must still give the ``cnf.jwk`` key (the
    holder DID still authorizes it), else ``key-binding`` fails ``holder-key-revoked``.
    """
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")

    def malformed(message: str) -> SdJwtResult:
        skipped = (_bad(n, "not-checked", "see structure") for n in CHECKS[1:])
        return SdJwtResult((_bad("structure", "malformed", message), *skipped))

    if not isinstance(presentation, str) or len(presentation) > MAX_PRESENTATION:
        return malformed(f"the presentation must be a string of at most {MAX_PRESENTATION} chars")
    if not presentation.isascii():
        return malformed("the presentation must be ASCII")
    try:
        jwt, disclosures, kb = _split(presentation)
        header, payload, signing_input, sig = _parse_jws(jwt)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return malformed("not <issuer-jwt>~<disclosures>~<kb-jwt> with an EdDSA issuer JWT")
    if len(disclosures) > MAX_DISCLOSURES:
        return malformed(f"more than {MAX_DISCLOSURES} disclosures")
    iss, kid, sub = payload.get("iss"), header.get("kid"), payload.get("sub")
    if (
        header.get("typ") != SD_JWT_TYPE
        or payload.get("vct") != VCT
        or not isinstance(iss, str)
        or not isinstance(kid, str)
        or not kid.startswith(iss + "#")
    ):
        return malformed("typ, vct, iss or kid (a method of iss) is missing or wrong")
    structure = _ok("structure", "an SD-JWT VC of a resident identity")
    try:
        issuer_key = resolve_issuer_key(kid)
        signature = (
            _ok("issuer-signature", "signed by the issuer's assertion key")
            if _valid(issuer_key, sig, signing_input)
            else _bad("issuer-signature", "bad-signature", "the issuer signature does not verify")
        )
    except (ZhixinError, LookupError, ValueError):
        signature = _bad("issuer-signature", "unresolved-key", "the issuer key does not resolve")
    account = issuer_account(iss)
    if account is None:
        role = _bad("issuer-role", "not-ethr-issuer", "the issuer is not a did:ethr account")
    elif has_issuer_role(account):
        role = _ok("issuer-role", "the issuer holds ISSUER on chain")
    else:
        role = _bad("issuer-role", "not-issuer", "the issuer does not hold ISSUER on chain")
    found = _disclosures(payload, disclosures)
    disclosed: dict[str, Any] = {}
    if isinstance(found, CheckResult):
        disc = found
    else:
        disclosed = found
        disc = _ok("disclosures", "every disclosure is in _sd", claims=sorted(found))
    prefix = "~".join([jwt, *disclosures, ""])
    binding, nonce, aud = _key_binding(payload, prefix, kb, now)
    if binding.ok and resolve_holder_key is not None:
        hkid = payload["cnf"].get("kid")
        try:
            live = resolve_holder_key(hkid) if isinstance(hkid, str) else None
        except (ZhixinError, LookupError, ValueError):  # not authorized now
            live = None
        if not isinstance(hkid, str):
            binding = _bad("key-binding", "no-holder-kid", "cnf names no holder DID key (kid)")
        elif (
            live is None
            or live.public_bytes_raw() != _key_from_jwk(payload["cnf"]["jwk"]).public_bytes_raw()
        ):
            binding = _bad(
                "key-binding", "holder-key-revoked", "the holder DID no longer authorizes the key"
            )
    checks = (
        structure,
        signature,
        role,
        disc,
        _validity(payload, now),
        _status(payload, status_bit),
        binding,
        _challenge(nonce, aud, consume_challenge, now, expected_aud),
    )
    level = payload.get("verification_level")
    return SdJwtResult(
        checks,
        disclosed,
        iss,
        sub if isinstance(sub, str) else None,
        level if isinstance(level, str) else None,
    )
