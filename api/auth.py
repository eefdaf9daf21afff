"""Sign-in: EIP-4361 Sign-In with Ethereum for chain-key holders (agency staff, auditors, rule
publishers, issuers, the governor) and DID authentication for citizens; server-side sessions.

Invariants:

* :func:`parse_siwe` is exact: a message is accepted only if it matches the EIP-4361 ABNF *and*
  re-renders byte for byte from its parsed fields (:meth:`SiweMessage.to_text`), so two
  different texts never parse to the same message. :func:`verify_siwe` is pure: text,
  signature, the expected domains, chain id and ``now`` in; the verified message or a named
  :class:`SignInRefused` out.
* A SIWE nonce and a DID challenge are single use and short-lived; both are consumed by one
  atomic SQL ``UPDATE`` (:class:`NonceStore`, :class:`identity.presentations.ChallengeStore`).
* A session token is random (256 bits), returned once, and stored only as its SHA-256
  (:class:`SessionStore`); sign-out revokes it in the database, so it stops working at once.
* Sessions bind to an address (SIWE) or to a holder DID and, if the presentation carried a
  valid identity credential, to the subject's keyed pseudonym, computed here from the
  credential; the resident identity number itself is never stored.
* Roles are never stored in a session: they are read from the chain (:class:`RolesCache`) and
  a role revoked on chain stops authorizing within ``ttl`` seconds.
* Nothing secret reaches a log line: no token, signature, message, address, DID or pseudonym.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from fastapi import Request
from sqlalchemy import Engine, delete, insert, select, update

from identity.credentials import CREDENTIAL_TYPE
from identity.jsonld import bundled_context_urls
from identity.presentations import AUTHENTICATION, PRESENTATION_TYPE
from identity.proofs import verify_proof
from identity.status import CREDENTIALS_V2_CONTEXT
from ledger.errors import Forbidden, InvalidInput, ZhixinError
from ledger.roles import Role, RolesClient

from .auth_db import auth_nonces, auth_sessions
from .runtime import Runtime

__all__ = [
    "COOKIE_NAME",
    "AuthService",
    "NonceStore",
    "RolesCache",
    "SessionRecord",
    "SessionStore",
    "SignInRefused",
    "SiweMessage",
    "Unauthenticated",
    "get_auth",
    "parse_siwe",
    "verify_siwe",
]

COOKIE_NAME: Final = "zhixin_session"
TOKEN_PREFIX: Final = "zxs_"
MAX_MESSAGE: Final = 4096
DEFAULT_SKEW: Final = timedelta(seconds=60)
_HEADER_SUFFIX: Final = " wants you to sign in with your Ethereum account:"


class Unauthenticated(ZhixinError):
    """No session, or a token that is unknown, expired, revoked or malformed (401)."""

    code = "unauthenticated"
    status = 401


class SignInRefused(Unauthenticated):
    """A sign-in attempt failed a named check (``code`` says which)."""

    code = "sign-in-refused"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.code = code


class MalformedSiwe(InvalidInput):
    code = "siwe-malformed"


# ---- EIP-4361 messages (pure) ----

_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*"
_AUTHORITY = r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]+"
_RE_HEADER = re.compile(rf"(?:(?P<scheme>{_SCHEME})://)?(?P<domain>{_AUTHORITY})")
_RE_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_RE_STATEMENT = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]*")
_RE_URI = re.compile(rf"{_SCHEME}:[!-~]+")
_RE_NONCE = re.compile(r"[A-Za-z0-9]{8,64}")
_RE_CHAIN = re.compile(r"[1-9][0-9]{0,19}")
_RE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")
_RE_REQUEST_ID = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@]*")


def _time(value: str, name: str) -> datetime:
    if not _RE_TIME.fullmatch(value):
        raise MalformedSiwe(f"{name} must be an RFC 3339 date-time")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedSiwe(f"{name} must be an RFC 3339 date-time") from None


@dataclass(frozen=True)
class SiweMessage:
    """The terms of an EIP-4361 message, in ABNF order; times are kept as written."""

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: str
    statement: str | None = None
    version: str = "1"
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()
    scheme: str | None = None

    def to_text(self) -> str:
        """The exact text a wallet signs (EIP-191 ``personal_sign``)."""
        head = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [head + _HEADER_SUFFIX, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {self.issued_at}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {self.expiration_time}")
        if self.not_before is not None:
            lines.append(f"Not Before: {self.not_before}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)


def _field(lines: list[str], i: int, tag: str, pattern: re.Pattern[str], name: str) -> str:
    if i >= len(lines) or not lines[i].startswith(tag):
        raise MalformedSiwe(f"expected {tag.strip()!r} on line {i + 1}")
    value = lines[i][len(tag) :]
    if not pattern.fullmatch(value):
        raise MalformedSiwe(f"{name} is not valid")
    return value


def parse_siwe(text: object) -> SiweMessage:
    """Parse an EIP-4361 message exactly (see the module invariants) or raise MalformedSiwe."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_MESSAGE:
        raise MalformedSiwe(f"message must be a text of 1..{MAX_MESSAGE} characters")
    if "\r" in text:
        raise MalformedSiwe("lines must end with LF only")
    lines = text.split("\n")
    if len(lines) < 9 or not lines[0].endswith(_HEADER_SUFFIX):
        raise MalformedSiwe("not a Sign-In with Ethereum message")
    head = _RE_HEADER.fullmatch(lines[0][: -len(_HEADER_SUFFIX)])
    if head is None:
        raise MalformedSiwe("domain is not a valid authority")
    address = lines[1]
    if not _RE_ADDRESS.fullmatch(address):
        raise MalformedSiwe("address must be 0x and 40 hex digits")
    if to_checksum_address(address) != address:
        raise MalformedSiwe("address must be in EIP-55 checksum form")
    if lines[2] != "":
        raise MalformedSiwe("expected an empty line after the address")
    statement: str | None = None
    i = 3
    if lines[3] != "" or (lines[4] == "" and lines[5:6] and lines[5].startswith("URI: ")):
        statement = lines[3]
        if not _RE_STATEMENT.fullmatch(statement):
            raise MalformedSiwe("statement has characters EIP-4361 does not allow")
        i = 4
    if lines[i] != "":
        raise MalformedSiwe("expected an empty line before URI")
    i += 1
    uri = _field(lines, i, "URI: ", _RE_URI, "URI")
    version = _field(lines, i + 1, "Version: ", re.compile("1"), "Version")
    chain = _field(lines, i + 2, "Chain ID: ", _RE_CHAIN, "Chain ID")
    nonce = _field(lines, i + 3, "Nonce: ", _RE_NONCE, "Nonce")
    issued = _field(lines, i + 4, "Issued At: ", _RE_TIME, "Issued At")
    i += 5
    optional: dict[str, str | None] = {"exp": None, "nbf": None, "rid": None}
    for key, tag, pattern in (
        ("exp", "Expiration Time: ", _RE_TIME),
        ("nbf", "Not Before: ", _RE_TIME),
        ("rid", "Request ID: ", _RE_REQUEST_ID),
    ):
        if i < len(lines) and lines[i].startswith(tag):
            optional[key] = _field(lines, i, tag, pattern, tag.rstrip(": "))
            i += 1
    resources: list[str] = []
    if i < len(lines) and lines[i] == "Resources:":
        i += 1
        while i < len(lines) and lines[i].startswith("- "):
            if not _RE_URI.fullmatch(lines[i][2:]):
                raise MalformedSiwe(f"resource on line {i + 1} is not a URI")
            resources.append(lines[i][2:])
            i += 1
    if i != len(lines):
        raise MalformedSiwe(f"unexpected content on line {i + 1}")
    for name, value in (("Issued At", issued), ("Expiration Time", optional["exp"])):
        if value is not None:
            _time(value, name)
    if optional["nbf"] is not None:
        _time(optional["nbf"], "Not Before")
    msg = SiweMessage(
        domain=head["domain"],
        address=address,
        uri=uri,
        chain_id=int(chain),
        nonce=nonce,
        issued_at=issued,
        statement=statement,
        version=version,
        expiration_time=optional["exp"],
        not_before=optional["nbf"],
        request_id=optional["rid"],
        resources=tuple(resources),
        scheme=head["scheme"],
    )
    if msg.to_text() != text:  # pragma: no cover - the grammar above is exact
        raise MalformedSiwe("message is not in canonical EIP-4361 form")
    return msg


def recover_signer(text: str, signature: object) -> str:
    """The EIP-55 address whose key made the EIP-191 ``personal_sign`` signature of ``text``."""
    if not isinstance(signature, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", signature):
        raise SignInRefused("siwe-signature", "signature must be 0x and 65 bytes in hex")
    try:
        return str(Account.recover_message(encode_defunct(text=text), signature=signature))
    except Exception:  # eth-account raises several types for a bad r, s or v
        raise SignInRefused("siwe-signature", "the signature does not verify") from None


def verify_siwe(
    text: object,
    signature: object,
    *,
    domains: Iterable[str],
    chain_id: int,
    now: datetime,
    skew: timedelta = DEFAULT_SKEW,
) -> SiweMessage:
    """Every check of a SIWE sign-in except the nonce's single use (that needs the database)."""
    if now.tzinfo is None:
        raise TypeError("now must be timezone-aware")
    msg = parse_siwe(text)
    assert isinstance(text, str)
    if msg.domain not in set(domains):
        raise SignInRefused("siwe-domain", "the message is for another domain")
    if msg.chain_id != chain_id:
        raise SignInRefused("siwe-chain", "the message is for another chain")
    if _time(msg.issued_at, "Issued At") > now + skew:
        raise SignInRefused("siwe-time", "the message is issued in the future")
    if msg.expiration_time is not None and _time(msg.expiration_time, "Expiration Time") <= now:
        raise SignInRefused("siwe-expired", "the message has expired")
    if msg.not_before is not None and _time(msg.not_before, "Not Before") > now + skew:
        raise SignInRefused("siwe-time", "the message is not valid yet")
    if recover_signer(text, signature) != msg.address:
        raise SignInRefused("siwe-signature", "the signature is not the address's")
    return msg


# ---- nonces, sessions, roles (database and chain adapters) ----


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class NonceStore:
    """SIWE nonces in ``auth_nonces``; :meth:`consume` is the single-use gate."""

    engine: Engine
    ttl: timedelta = timedelta(minutes=5)
    purge_every: int = 500
    _issued: int = field(default=0, init=False)

    def issue(self, now: datetime) -> tuple[str, datetime]:
        nonce = secrets.token_hex(16)  # 32 alphanumerics, as EIP-4361 asks (>= 8)
        expires = now + self.ttl
        with self.engine.begin() as conn:
            conn.execute(
                insert(auth_nonces).values(
                    nonce=nonce, created_at=_ms(now), expires_at=_ms(expires), used_at=None
                )
            )
        self._issued += 1
        if self._issued % self.purge_every == 0:
            self.purge(now)
        return nonce, expires

    def consume(self, nonce: str, now: datetime) -> str:
        """``"ok"`` for exactly one call per issued, unexpired nonce; else why not."""
        t = _ms(now)
        with self.engine.begin() as conn:
            res = conn.execute(
                update(auth_nonces)
                .where(
                    auth_nonces.c.nonce == nonce,
                    auth_nonces.c.used_at.is_(None),
                    auth_nonces.c.expires_at > t,
                )
                .values(used_at=t)
            )
            if res.rowcount == 1:
                return "ok"
            row = conn.execute(
                select(auth_nonces.c.used_at).where(auth_nonces.c.nonce == nonce)
            ).first()
        if row is None:
            return "unknown"
        return "used" if row.used_at is not None else "expired"

    def purge(self, now: datetime, keep: timedelta = timedelta(hours=1)) -> int:
        with self.engine.begin() as conn:
            res = conn.execute(
                delete(auth_nonces).where(auth_nonces.c.expires_at < _ms(now - keep))
            )
        return int(res.rowcount or 0)


@dataclass(frozen=True)
class SessionRecord:
    """A live session as stored (no token: only its hash)."""

    token_hash: str = field(repr=False)
    kind: Literal["siwe", "did"]
    address: str | None
    did: str | None
    pseudonym: str | None
    created_at: int  # unix s
    expires_at: int  # unix s


@dataclass
class SessionStore:
    """Opaque bearer tokens, stored hashed with an expiry; revocation is a database write."""

    engine: Engine
    ttl: timedelta = timedelta(minutes=30)
    purge_every: int = 500
    _created: int = field(default=0, init=False)

    def create(
        self,
        now: datetime,
        *,
        kind: Literal["siwe", "did"],
        address: str | None = None,
        did: str | None = None,
        pseudonym: str | None = None,
    ) -> tuple[str, SessionRecord]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = now + self.ttl
        rec = SessionRecord(
            token_hash(token),
            kind,
            address,
            did,
            pseudonym,
            int(now.timestamp()),
            int(expires.timestamp()),
        )
        with self.engine.begin() as conn:
            conn.execute(
                insert(auth_sessions).values(
                    token_hash=rec.token_hash,
                    kind=kind,
                    address=address,
                    did=did,
                    pseudonym=pseudonym,
                    created_at=_ms(now),
                    expires_at=_ms(expires),
                    revoked_at=None,
                )
            )
        self._created += 1
        if self._created % self.purge_every == 0:
            self.purge(now)
        return token, rec

    def lookup(self, token: str, now: datetime) -> SessionRecord | None:
        """The live session of ``token``; None if unknown, expired or revoked."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        t = auth_sessions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t).where(
                    t.c.token_hash == token_hash(token),
                    t.c.revoked_at.is_(None),
                    t.c.expires_at > _ms(now),
                )
            ).first()
        if row is None:
            return None
        return SessionRecord(
            row.token_hash,
            row.kind,
            row.address,
            row.did,
            row.pseudonym,
            int(row.created_at) // 1000,
            int(row.expires_at) // 1000,
        )

    def revoke(self, hashed: str, now: datetime) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(
                update(auth_sessions)
                .where(auth_sessions.c.token_hash == hashed, auth_sessions.c.revoked_at.is_(None))
                .values(revoked_at=_ms(now))
            )
        return bool(res.rowcount)

    def purge(self, now: datetime, keep: timedelta = timedelta(days=1)) -> int:
        """Forget sessions that ended (expired) more than ``keep`` ago."""
        with self.engine.begin() as conn:
            res = conn.execute(
                delete(auth_sessions).where(auth_sessions.c.expires_at < _ms(now - keep))
            )
        return int(res.rowcount or 0)


class RolesCache:
    """Roles of an address as read from the Roles contract, kept for ``ttl`` seconds."""

    def __init__(self, roles: RolesClient, ttl: float = 10.0) -> None:
        self.client = roles
        self.ttl = ttl
        self._entries: dict[str, tuple[float, frozenset[Role]]] = {}
        self._lock = threading.Lock()

    def get(self, address: str) -> frozenset[Role]:
        now = time.monotonic()
        hit = self._entries.get(address)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        held = frozenset(r for r in Role if self.client.has_role(r, address))
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[address] = (time.monotonic(), held)
        return held

    def invalidate(self, address: str | None = None) -> None:
        with self._lock:
            if address is None:
                self._entries.clear()
            else:
                self._entries.pop(address, None)


# ---- DID authentication (citizens) ----


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _bare_presentation_holder(
    vp: Mapping[str, Any],
    *,
    resolve_holder_key: Callable[[str], Any],
    consume: Callable[[str, str, datetime], str],
    domain: str,
    now: datetime,
) -> str:
    """Holder proof and challenge of a presentation that carries no credential.

    :func:`identity.presentations.verify_presentation` needs at least one credential; signing
    in does not, so the same two checks (holder key authorized for authentication, challenge
    of this verifier used once) are made here with the same building blocks.
    """
    ctx = vp.get("@context")
    known = bundled_context_urls()
    if (
        not isinstance(ctx, list)
        or ctx[:1] != [CREDENTIALS_V2_CONTEXT]
        or not all(isinstance(c, str) and c in known for c in ctx)
    ):
        raise SignInRefused("did-structure", "@context must be bundled, starting with VC 2.0")
    if PRESENTATION_TYPE not in [t for t in _as_list(vp.get("type")) if isinstance(t, str)]:
        raise SignInRefused("did-structure", f"type must include {PRESENTATION_TYPE}")
    holder = vp.get("holder")
    if not isinstance(holder, str) or not holder.startswith("did:") or len(holder) > 512:
        raise SignInRefused("did-structure", "holder must be the holder's DID")
    proof = vp.get("proof")
    if not isinstance(proof, Mapping):
        raise SignInRefused("did-structure", "the presentation needs one proof")
    challenge = proof.get("challenge")
    if not isinstance(challenge, str) or not 0 < len(challenge) <= 64:
        raise SignInRefused("did-challenge", "the proof carries no challenge")
    result = verify_proof(
        vp,
        resolve_key=resolve_holder_key,
        expected_purpose=AUTHENTICATION,
        domain=domain,
        now=now,
    )
    if not result.verified:
        raise SignInRefused("did-holder-proof", "the holder's proof does not verify")
    if (result.verification_method or "").partition("#")[0] != holder:
        raise SignInRefused("did-holder-proof", "the proof was not made with the holder's key")
    outcome = consume(challenge, domain, now)
    if outcome != "ok":
        raise SignInRefused("did-challenge", f"challenge refused: {outcome}")
    return holder


def identity_number(vp: Mapping[str, Any]) -> str | None:
    """The resident identity number of the presentation's identity credential, if any (one
    number only: two credentials naming different people are refused)."""
    numbers = set()
    for vc in _as_list(vp.get("verifiableCredential")):
        if not isinstance(vc, Mapping) or CREDENTIAL_TYPE not in _as_list(vc.get("type")):
            continue
        for subject in _as_list(vc.get("credentialSubject")):
            if isinstance(subject, Mapping) and isinstance(subject.get("residentIdNumber"), str):
                numbers.add(subject["residentIdNumber"])
    if len(numbers) > 1:
        raise SignInRefused("did-credentials", "the credentials name more than one person")
    return next(iter(numbers), None)


# ---- the service ----


class AuthService:
    """Nonces, sessions and roles for one runtime (``app.state.auth``)."""

    def __init__(self, rt: Runtime, *, roles_ttl: float = 10.0) -> None:
        if rt.engine is None:
            from .deps import ServiceStarting

            raise ServiceStarting("the database is starting")
        st = rt.settings
        self.rt = rt
        self.chain_id = rt.deployment.chain_id
        self.domain = st.public_domain or f"{st.host}:{st.port}"
        self.domains = frozenset({self.domain} if st.public_domain else {self.domain, st.host})
        self.uri = st.public_url or f"http://{self.domain}"
        self.nonces = NonceStore(rt.engine, timedelta(seconds=st.nonce_ttl_s))
        self.sessions = SessionStore(rt.engine, timedelta(seconds=st.session_ttl_s))
        self.roles = RolesCache(rt.roles, roles_ttl)
        self.cookie_secure = not st.dev

    def sign_in_siwe(self, message: object, signature: object, now: datetime) -> SiweMessage:
        """A verified message whose nonce this call consumed; refusals are named."""
        msg = verify_siwe(message, signature, domains=self.domains, chain_id=self.chain_id, now=now)
        outcome = self.nonces.consume(msg.nonce, now)
        if outcome != "ok":
            raise SignInRefused("siwe-nonce", f"nonce refused: {outcome}")
        if not self.roles.get(msg.address):
            self.roles.invalidate(msg.address)  # a role granted a moment ago counts next time
            raise Forbidden("the address holds no role: sign-in with Ethereum is for role holders")
        return msg

    def sign_in_did(
        self, ids: Any, credit: Any, vp: object, now: datetime
    ) -> tuple[str, str | None]:
        """(holder DID, pseudonym or None) of a verified presentation over our challenge."""
        if not isinstance(vp, Mapping):
            raise SignInRefused("did-structure", "the presentation must be a JSON object")
        vcs = vp.get("verifiableCredential")
        if vcs is None or vcs == []:
            holder = _bare_presentation_holder(
                vp,
                resolve_holder_key=lambda vm: ids.holder_key(vm, now),
                consume=ids.challenges.consume,
                domain=self.domain,
                now=now,
            )
            return holder, None
        result = ids.verify_presentation(vp, now, domain=self.domain)
        if not result.verified:
            raise SignInRefused(
                "did-presentation", "the presentation did not verify", failed=list(result.failed)
            )
        number = identity_number(vp)
        if number is None:
            return str(result.holder), None
        _kind, pseud = credit.subject_pseudonym("person", number)
        return str(result.holder), "0x" + bytes(pseud).hex()


_BUILD_LOCK = threading.Lock()


def get_auth(request: Request) -> AuthService:
    """The app's :class:`AuthService`, built on first use for the current runtime."""
    rt: Runtime | None = getattr(request.app.state, "runtime", None)
    if rt is None:
        from .deps import ServiceStarting

        raise ServiceStarting("the service is starting")
    svc: AuthService | None = getattr(request.app.state, "auth", None)
    if svc is not None and svc.rt is rt:
        return svc
    with _BUILD_LOCK:
        svc = getattr(request.app.state, "auth", None)
        if svc is None or svc.rt is not rt:
            svc = AuthService(rt)
            request.app.state.auth = svc
        return svc


def utcnow() -> datetime:
    return datetime.now(UTC)
