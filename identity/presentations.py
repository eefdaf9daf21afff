"""Verifiable Presentations (VC DM 2.0): holder signing, per-check verification, challenges.

A citizen's wallet signs a ``VerifiablePresentation`` that embeds its identity credential(s)
with a ``DataIntegrityProof`` (``proofPurpose`` ``authentication``, ``eddsa-jcs-2022`` by
default) over the verifier's ``challenge`` and ``domain``. :func:`verify_presentation` runs
every check of :data:`CHECKS` and reports each by name.

Invariants:

* :func:`sign_presentation`, :func:`verify_presentation` and :func:`holder_key_from_log` are
  pure: no I/O and no clock. The chain and the database are reached only through callbacks
  (``resolve_holder_key``, ``credential_verifier``, ``consume_challenge``), and ``now`` is a
  parameter. :class:`ChallengeStore`, at the end of this module, is the database adapter.
* :func:`verify_presentation` never raises because of the presentation: every defect is a
  failed :class:`~identity.credentials.CheckResult` with a stable ``code``. Messages never
  quote claim values.
* A challenge is consumed at most once, and only when the presentation is well-formed and
  names it in its proof: one verification attempt per challenge, whatever its outcome, so a
  presentation can never be replayed, even a failed one after a fix on the verifier's side.
* The holder key must be currently authorized for ``authentication`` by the holder DID: for
  ``did:key`` the key is the DID; for ``did:ethr`` it must be an Ed25519 attribute key
  (``did/pub/Ed25519/sigAuth/...``) live now *and* published since the DID's current owner
  took control (:func:`holder_key_from_log`). ERC-1056 keeps attributes across an owner
  change; a citizen who rotates the owner because a device was lost must not keep a signing
  key that lived on that device, so the stricter rule applies here.
* Every embedded credential must name the presentation's holder as its subject
  (``holder-binding``): nobody presents another person's credential.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.pool import QueuePool

from identity.credentials import CHECKS as CREDENTIAL_CHECKS
from identity.credentials import CheckResult, NamedChecks, VerificationResult
from identity.did import ChangeLog, OwnerChanged, build_resolution
from identity.jsonld import bundled_context_urls
from identity.proofs import EDDSA_JCS_2022, add_proof, verify_proof
from identity.status import CREDENTIALS_V2_CONTEXT
from identity.store import challenges
from ledger.errors import InvalidInput, NotFound

__all__ = [
    "AUTHENTICATION",
    "CHALLENGE_OUTCOMES",
    "CHECKS",
    "DEFAULT_CHALLENGE_TTL",
    "MAX_CREDENTIALS",
    "PRESENTATION_TYPE",
    "Challenge",
    "ChallengeConsumer",
    "ChallengeStore",
    "InvalidDomain",
    "PresentationResult",
    "build_presentation",
    "check_domain",
    "holder_key_from_log",
    "sign_presentation",
    "verify_presentation",
]

PRESENTATION_TYPE: Final = "VerifiablePresentation"
AUTHENTICATION: Final = "authentication"
MAX_CREDENTIALS: Final = 8
DEFAULT_CHALLENGE_TTL: Final = timedelta(minutes=5)
CHECKS: Final = (
    "structure",
    "holder-proof",
    "challenge",
    "holder-binding",
    *(f"credential-{n}" if n in ("structure", "proof") else n for n in CREDENTIAL_CHECKS),
)
"""Every check of :func:`verify_presentation`, in the order reported. The credential checks
(``credential-structure``, ``credential-proof``, ``issuer-role``, ``anchor``, ``status``,
``validity``) fail if they fail for any embedded credential."""

CHALLENGE_OUTCOMES: Final = {
    "ok": "challenge issued by this verifier, unexpired, now used",
    "unknown-challenge": "this verifier never issued the challenge",
    "challenge-used": "the challenge was already used",
    "challenge-expired": "the challenge has expired",
    "domain-mismatch": "the challenge was issued for another domain",
}
"""What ``consume_challenge`` may answer (``code -> meaning``)."""

_CONSUME_SQL: Final = (
    "UPDATE challenges SET used_at = ? WHERE challenge = ? AND domain = ?"
    " AND used_at IS NULL AND expires_at > ?"
)
_MAX_DOMAIN: Final = 255
_MAX_CHALLENGE: Final = 64


class InvalidDomain(InvalidInput):
    """A challenge domain is empty, too long or not printable."""

    code = "invalid-domain"


class ChallengeConsumer(Protocol):
    """Marks ``challenge`` used for ``domain`` at ``now``; returns a :data:`CHALLENGE_OUTCOMES`
    code (``"ok"`` only for the one call that used it)."""

    def __call__(self, challenge: str, domain: str, now: datetime) -> str: ...


# ---- holder side (pure) ----


def build_presentation(
    holder: str, credentials: Sequence[Mapping[str, Any]], *, presentation_id: str | None = None
) -> dict[str, Any]:
    """The unsigned presentation of ``credentials`` (embedded as given) by ``holder``."""
    if not credentials or len(credentials) > MAX_CREDENTIALS:
        raise InvalidInput(f"a presentation holds 1..{MAX_CREDENTIALS} credentials")
    vp: dict[str, Any] = {"@context": [CREDENTIALS_V2_CONTEXT], "type": [PRESENTATION_TYPE]}
    if presentation_id is not None:
        vp["id"] = presentation_id
    vp["holder"] = holder
    vp["verifiableCredential"] = [dict(c) for c in credentials]
    return vp


def sign_presentation(
    presentation: Mapping[str, Any],
    *,
    private_key: Ed25519PrivateKey,
    verification_method: str,
    challenge: str,
    domain: str,
    created: str,
    cryptosuite: str = EDDSA_JCS_2022,
) -> dict[str, Any]:
    """Sign for ``authentication`` over the verifier's ``challenge`` and ``domain``."""
    if verification_method.partition("#")[0] != presentation.get("holder"):
        raise InvalidInput("verification method must belong to the presentation's holder DID")
    return add_proof(
        presentation,
        private_key=private_key,
        verification_method=verification_method,
        proof_purpose=AUTHENTICATION,
        cryptosuite=cryptosuite,
        created=created,
        challenge=challenge,
        domain=domain,
    )


def holder_key_from_log(vm_id: str, log: ChangeLog, now: datetime | int) -> Ed25519PublicKey:
    """The Ed25519 key of ``vm_id`` if the ``did:ethr`` DID authorizes it for authentication.

    Raises :class:`~ledger.errors.NotFound` unless the key is in the DID's current document
    under ``authentication`` and was published after the last owner change (see the module
    invariants: an owner rotation retires the keys the previous owner published).
    """
    did = vm_id.partition("#")[0]
    full = build_resolution(did, log, now)
    if full.deactivated:
        raise NotFound("the holder DID is deactivated")
    vm = full.verification_method(vm_id, AUTHENTICATION)
    key = full.ed25519_key(vm_id, AUTHENTICATION)
    last = max((i for i, e in enumerate(log.events) if isinstance(e, OwnerChanged)), default=-1)
    if last >= 0:
        epoch = ChangeLog(log.identity, log.chain_id, log.events[last:], log.block_timestamps)
        current = build_resolution(did, epoch, now).did_document
        auth = set(current.get(AUTHENTICATION, []))
        keys = {
            m.get("publicKeyMultibase")
            for m in current.get("verificationMethod", [])
            if m.get("id") in auth
        }
        if vm.get("publicKeyMultibase") not in keys:
            raise NotFound(f"{vm_id} was published before the DID's current owner took control")
    return key


# ---- verification (pure) ----


@dataclass(frozen=True)
class PresentationResult(NamedChecks):
    """Every check of :data:`CHECKS` by name, and each credential's own result."""

    checks: tuple[CheckResult, ...]
    credentials: tuple[VerificationResult, ...] = ()
    holder: str | None = None
    challenge: str | None = None
    domain: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "holder": self.holder,
            "failed": list(self.failed),
            "checks": self.checks_json(),
            "credentials": [r.to_json() for r in self.credentials],
        }


_ok = CheckResult.passed
_bad = CheckResult.failure


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _contexts_ok(doc: Mapping[str, Any]) -> str | None:
    """Why the document's @context is not acceptable, or None. Only bundled contexts are
    allowed: a verifier never fetches a remote context."""
    known = bundled_context_urls()
    for ctx in _as_list(doc.get("@context")):
        if not isinstance(ctx, str):
            return "inline @context objects are not accepted"
        if ctx not in known:
            return f"unknown or remote @context {ctx[:80]!r}"
    return None


def _structure(vp: object) -> CheckResult:
    name = "structure"
    if not isinstance(vp, Mapping):
        return _bad(name, "malformed", "presentation must be a JSON object")
    ctx = vp.get("@context")
    if not isinstance(ctx, list) or ctx[:1] != [CREDENTIALS_V2_CONTEXT]:
        return _bad(name, "context", f"@context must start with {CREDENTIALS_V2_CONTEXT}")
    why = _contexts_ok(vp)
    if why is not None:
        return _bad(name, "unknown-context", why)
    if PRESENTATION_TYPE not in [t for t in _as_list(vp.get("type")) if isinstance(t, str)]:
        return _bad(name, "type", f"type must include {PRESENTATION_TYPE}")
    holder = vp.get("holder")
    if not isinstance(holder, str) or not holder.startswith("did:") or len(holder) > 512:
        return _bad(name, "holder", "holder must be the holder's DID")
    vcs = vp.get("verifiableCredential")
    if vcs is None:
        return _bad(name, "no-credentials", "verifiableCredential is required")
    items = _as_list(vcs)
    if not 1 <= len(items) <= MAX_CREDENTIALS:
        return _bad(name, "credential-count", f"1..{MAX_CREDENTIALS} credentials are accepted")
    for i, vc in enumerate(items):
        if not isinstance(vc, Mapping):
            return _bad(name, "credential", f"verifiableCredential[{i}] must be an object")
        why = _contexts_ok(vc) if "@context" in vc else None  # absent: credential-structure
        if why is not None:
            return _bad(name, "unknown-context", f"verifiableCredential[{i}]: {why}")
    if "proof" not in vp:
        return _bad(name, "proof-missing", "presentation has no proof")
    return _ok(name, "well-formed presentation", credentials=len(items))


def _holder_proof(
    vp: Mapping[str, Any],
    resolve_holder_key: Callable[[str], Ed25519PublicKey],
    now: datetime,
) -> CheckResult:
    name = "holder-proof"
    result = verify_proof(
        vp, resolve_key=resolve_holder_key, expected_purpose=AUTHENTICATION, now=now
    )
    if not result.verified:
        assert result.error is not None
        code = result.error.code
        if code == "key-resolution-failed":
            code = "key-not-authorized"
        return _bad(name, code, result.error.message)
    if (result.verification_method or "").partition("#")[0] != vp.get("holder"):
        return _bad(name, "not-holder-key", "proof was not made with a key of the holder DID")
    return _ok(
        name,
        "holder's key signed the presentation",
        cryptosuite=result.cryptosuite,
        verificationMethod=result.verification_method,
    )


def _proof_field(vp: Mapping[str, Any], key: str) -> object:
    proof = vp.get("proof")
    if isinstance(proof, list) and len(proof) == 1:
        proof = proof[0]
    return proof.get(key) if isinstance(proof, Mapping) else None


def _challenge(
    vp: Mapping[str, Any],
    consume: ChallengeConsumer,
    now: datetime,
    expected_challenge: str | None,
    expected_domain: str | None,
) -> tuple[CheckResult, str | None, str | None]:
    name = "challenge"
    challenge = _proof_field(vp, "challenge")
    domain = _proof_field(vp, "domain")
    if not isinstance(challenge, str) or not 0 < len(challenge) <= _MAX_CHALLENGE:
        return _bad(name, "challenge-missing", "the proof carries no challenge"), None, None
    if not isinstance(domain, str) or not 0 < len(domain) <= _MAX_DOMAIN:
        return _bad(name, "domain-missing", "the proof carries no single domain"), None, None
    if expected_challenge is not None and challenge != expected_challenge:
        return (
            _bad(name, "challenge-mismatch", "the proof's challenge is not the expected one"),
            challenge,
            domain,
        )
    if expected_domain is not None and domain != expected_domain:
        return (
            _bad(name, "domain-mismatch", "the proof's domain is not the expected one"),
            challenge,
            domain,
        )
    code = consume(challenge, domain, now)
    if code == "ok":
        return _ok(name, CHALLENGE_OUTCOMES["ok"], domain=domain), challenge, domain
    return _bad(name, code, CHALLENGE_OUTCOMES.get(code, "challenge refused")), challenge, domain


def _binding(vp: Mapping[str, Any], vcs: Sequence[Mapping[str, Any]]) -> CheckResult:
    holder = vp.get("holder")
    for i, vc in enumerate(vcs):
        subject = vc.get("credentialSubject")
        subjects = _as_list(subject)
        ids = {s.get("id") for s in subjects if isinstance(s, Mapping)}
        if ids != {holder}:
            return _bad(
                "holder-binding",
                "subject-not-holder",
                f"verifiableCredential[{i}] is about someone other than the holder",
                credential=i,
            )
    return _ok("holder-binding", "every credential is about the holder")


def _aggregate(name: str, results: Sequence[VerificationResult]) -> CheckResult:
    source = {"credential-structure": "structure", "credential-proof": "proof"}.get(name, name)
    for i, r in enumerate(results):
        c = r.check(source)
        if not c.ok:
            return _bad(name, c.code, f"verifiableCredential[{i}]: {c.message}", credential=i)
    return _ok(name, f"{source} passed for every credential", credentials=len(results))


def verify_presentation(
    vp: object,
    *,
    resolve_holder_key: Callable[[str], Ed25519PublicKey],
    credential_verifier: Callable[[Mapping[str, Any]], VerificationResult],
    consume_challenge: ChallengeConsumer,
    now: datetime,
    expected_challenge: str | None = None,
    expected_domain: str | None = None,
) -> PresentationResult:
    """Run every check of :data:`CHECKS`; never raises for a malformed presentation.

    ``resolve_holder_key(vm_id)`` returns the key only if the holder DID currently authorizes
    it for authentication (it may raise ZhixinError/LookupError/ValueError otherwise);
    ``credential_verifier(vc)`` is :func:`~identity.credentials.verify_credential` bound to
    the chain and ``now``; ``consume_challenge`` marks the proof's challenge used.
    ``expected_challenge``/``expected_domain`` are the VC-API verify options, if given.
    """
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    structure = _structure(vp)
    if not structure.ok:
        skipped = tuple(
            _bad(n, "not-checked", "presentation is malformed (see structure)") for n in CHECKS[1:]
        )
        holder = vp.get("holder") if isinstance(vp, Mapping) else None
        return PresentationResult(
            (structure, *skipped), holder=holder if isinstance(holder, str) else None
        )
    assert isinstance(vp, Mapping)
    vcs: list[Mapping[str, Any]] = _as_list(vp["verifiableCredential"])
    holder_proof = _holder_proof(vp, resolve_holder_key, now)
    challenge, ch, dom = _challenge(vp, consume_challenge, now, expected_challenge, expected_domain)
    results = tuple(credential_verifier(vc) for vc in vcs)
    checks = (
        structure,
        holder_proof,
        challenge,
        _binding(vp, vcs),
        *(_aggregate(n, results) for n in CHECKS[4:]),
    )
    return PresentationResult(checks, results, vp["holder"], ch, dom)


# ---- challenges (database adapter) ----


@dataclass(frozen=True)
class Challenge:
    challenge: str
    domain: str
    created_at: datetime
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "challenge": self.challenge,
            "domain": self.domain,
            "expires": self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _ms(t: datetime) -> int:
    if t.tzinfo is None:
        raise TypeError("times must be timezone-aware")
    return int(t.timestamp() * 1000)


def check_domain(domain: object) -> str:
    """A verifier's domain: 1..255 printable characters without spaces."""
    if not isinstance(domain, str) or not 0 < len(domain) <= _MAX_DOMAIN:
        raise InvalidDomain(f"domain must be 1..{_MAX_DOMAIN} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in domain):
        raise InvalidDomain("domain must not contain spaces or control characters")
    return domain


@dataclass
class ChallengeStore:
    """Challenges in the ``challenges`` table; :meth:`consume` is the single-use gate.

    ``engine`` may be a dedicated engine on the service database (see
    ``api.identity_services``: SQLite ``synchronous=NORMAL`` there, since a challenge is not
    worth an fsync); correctness needs only the atomic UPDATE.
    """

    engine: Engine
    ttl: timedelta = DEFAULT_CHALLENGE_TTL
    purge_every: int = 1000
    _issued: int = field(default=0, init=False)
    _write_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _conn: Any = field(default=None, init=False, repr=False)

    def issue(self, domain: str, now: datetime) -> Challenge:
        domain = check_domain(domain)
        ch = Challenge(secrets.token_urlsafe(24), domain, now, now + self.ttl)
        with self.engine.begin() as conn:
            conn.execute(
                insert(challenges).values(
                    challenge=ch.challenge,
                    domain=domain,
                    created_at=_ms(now),
                    expires_at=_ms(ch.expires_at),
                    used_at=None,
                )
            )
        self._issued += 1
        if self._issued % self.purge_every == 0:
            self.purge(now)
        return ch

    def issue_many(self, domain: str, now: datetime, count: int) -> list[Challenge]:
        """Several challenges in one transaction (benchmarks, batch kiosks)."""
        domain = check_domain(domain)
        out = [
            Challenge(secrets.token_urlsafe(24), domain, now, now + self.ttl) for _ in range(count)
        ]
        with self.engine.begin() as conn:
            conn.execute(
                insert(challenges),
                [
                    {
                        "challenge": c.challenge,
                        "domain": domain,
                        "created_at": _ms(now),
                        "expires_at": _ms(c.expires_at),
                        "used_at": None,
                    }
                    for c in out
                ],
            )
        return out

    def consume(self, challenge: str, domain: str, now: datetime) -> str:
        """``"ok"`` for exactly one call per issued, unexpired challenge of ``domain``."""
        t = _ms(now)
        if self.engine.dialect.name == "sqlite":
            if self._consume_sqlite(challenge, domain, t):
                return "ok"
            with self.engine.connect() as conn:
                return self._refusal(conn, challenge, domain)
        with self.engine.begin() as conn:
            res = conn.execute(
                update(challenges)
                .where(
                    challenges.c.challenge == challenge,
                    challenges.c.domain == domain,
                    challenges.c.used_at.is_(None),
                    challenges.c.expires_at > t,
                )
                .values(used_at=t)
            )
            if res.rowcount == 1:
                return "ok"
            return self._refusal(conn, challenge, domain)

    def _consume_sqlite(self, challenge: str, domain: str, t: int) -> bool:
        """The same single-use UPDATE on the raw DB-API connection: SQLAlchemy's statement
        building and execution context cost ~5x the SQLite work on every verification."""
        with self._write_lock:  # queue here, not in SQLite's sleeping busy handler
            return self._update_sqlite(challenge, domain, t)

    def _update_sqlite(self, challenge: str, domain: str, t: int) -> bool:
        """One UPDATE and its commit, on a pooled connection that is kept between uses (a
        pool checkout and return cost as much as the statement); any error gives it back."""
        conn = self._conn
        if conn is None:
            conn = self.engine.raw_connection()
        try:
            dbapi = conn.driver_connection
            used = dbapi.execute(_CONSUME_SQL, (t, challenge, domain, t)).rowcount == 1
            dbapi.commit()
        except BaseException:
            self._conn = None
            try:
                conn.rollback()
            finally:
                conn.close()
            raise
        if isinstance(self.engine.pool, QueuePool):  # not a per-thread or shared connection
            self._conn = conn
        else:
            conn.close()  # back to the pool
        return used

    @staticmethod
    def _refusal(conn: Connection, challenge: str, domain: str) -> str:
        """Why an unused challenge could not be consumed (a CHALLENGE_OUTCOMES code)."""
        row = conn.execute(
            select(challenges.c.domain, challenges.c.expires_at, challenges.c.used_at).where(
                challenges.c.challenge == challenge
            )
        ).first()
        if row is None:
            return "unknown-challenge"
        if row.domain != domain:
            return "domain-mismatch"
        if row.used_at is not None:
            return "challenge-used"
        return "challenge-expired"

    def purge(self, now: datetime, keep: timedelta = timedelta(hours=1)) -> int:
        """Delete challenges that expired more than ``keep`` ago (used or not)."""
        with self.engine.begin() as conn:
            res = conn.execute(delete(challenges).where(challenges.c.expires_at < _ms(now - keep)))
        return int(res.rowcount or 0)
