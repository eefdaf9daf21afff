"""Annotated dependencies shared by the routers: the runtime, services, sessions and the gates.

Authorization invariants (every route applies one of these; see ``api/routes/*``):

* :data:`SessionDep` answers 401 without a live session (bearer token, else the HttpOnly
  cookie); a bad token is 401 even where a session is optional: it is never silently ignored.
* :func:`require_role` answers 403 unless the session's address holds one of the roles on
  chain now (read through :class:`api.auth.RolesCache`, so at most ``ttl`` seconds stale).
* :data:`ReaderDep` is the one gate in front of every read of records and list status: a legal
  entity's are public; a natural person's only to that person (session pseudonym), to the
  agencies that wrote them, and to auditors (:meth:`Reader.require_subject`,
  :meth:`Reader.visible`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select

from ledger.credit_service import CreditService
from ledger.db import credit_records
from ledger.errors import Forbidden, ZhixinError
from ledger.roles import Role

from .auth import COOKIE_NAME, AuthService, SessionRecord, Unauthenticated, get_auth, utcnow
from .runtime import Runtime
from .settings import Settings

__all__ = [
    "PERSON",
    "AgencySession",
    "AuditorSession",
    "AuthDep",
    "CreditDep",
    "IssuerSession",
    "OptionalSessionDep",
    "PublisherSession",
    "Reader",
    "ReaderDep",
    "RuntimeDep",
    "ServiceStarting",
    "Session",
    "SessionDep",
    "SettingsDep",
    "require_role",
    "subject_kinds",
]

PERSON = 1  # SubjectKind.PERSON, as written on chain
ENTITY = 2


class ServiceStarting(ZhixinError):
    code = "starting"
    status = 503


def get_runtime(request: Request) -> Runtime:
    rt: Runtime | None = getattr(request.app.state, "runtime", None)
    if rt is None:
        raise ServiceStarting("the service is starting")
    return rt


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_credit(request: Request) -> CreditService:
    rt = get_runtime(request)
    if rt.credit is None:
        raise ServiceStarting("the credit service is starting")
    return rt.credit


# ---- sessions ----


@dataclass(frozen=True)
class Session:
    """Who is calling: the stored session plus the roles the chain gives its address now."""

    record: SessionRecord
    roles: frozenset[Role] = frozenset()

    @property
    def address(self) -> str | None:
        return self.record.address

    @property
    def did(self) -> str | None:
        return self.record.did

    @property
    def pseudonym(self) -> str | None:
        return self.record.pseudonym

    def has(self, *roles: Role) -> bool:
        return any(r in self.roles for r in roles)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.record.kind,
            "address": self.address,
            "did": self.did,
            "subject": self.pseudonym,
            "roles": sorted(r.value for r in self.roles),
            "expires_at": self.record.expires_at,
        }


def bearer_token(request: Request) -> str | None:
    """The Authorization bearer token, else the session cookie; None if neither is sent."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        return token.strip()
    return request.cookies.get(COOKIE_NAME)


def get_optional_session(request: Request) -> Session | None:
    token = bearer_token(request)
    if token is None:
        return None
    auth = get_auth(request)
    rec = auth.sessions.lookup(token, utcnow())
    if rec is None:
        raise Unauthenticated("the session is unknown, expired or revoked")
    roles = auth.roles.get(rec.address) if rec.address is not None else frozenset()
    return Session(rec, roles)


def get_session(
    session: Annotated[Session | None, Depends(get_optional_session)],
) -> Session:
    if session is None:
        raise Unauthenticated("sign in first (POST /auth/siwe or POST /auth/did)")
    return session


def require_role(*roles: Role) -> Callable[[Session], Session]:
    """A dependency: the session, if its address holds one of ``roles`` on chain (else 403)."""
    names = " or ".join(r.value for r in roles)

    def dependency(session: Annotated[Session, Depends(get_session)]) -> Session:
        if not session.has(*roles):
            raise Forbidden(f"this needs a session of a {names} role holder")
        return session

    dependency.__name__ = f"require_{'_'.join(r.value.lower() for r in roles)}"
    return dependency


# ---- the reader gate ----


@dataclass
class Reader:
    """The caller as a reader of records: decides, never fetches the records themselves."""

    session: Session | None
    engine: Any = None
    _wrote: dict[str, bool] = field(default_factory=dict)

    @property
    def auditor(self) -> bool:
        return self.session is not None and self.session.has(Role.AUDITOR)

    @property
    def agency(self) -> str | None:
        """The caller's address if it holds AGENCY."""
        s = self.session
        return s.address if s is not None and s.has(Role.AGENCY) else None

    def is_subject(self, subject: str) -> bool:
        s = self.session
        return s is not None and s.pseudonym is not None and s.pseudonym == subject.lower()

    def wrote_about(self, subject: str) -> bool:
        """Whether the caller's agency wrote any record about ``subject`` (indexed)."""
        agency = self.agency
        if agency is None or self.engine is None:
            return False
        key = subject.lower()
        if key not in self._wrote:
            t = credit_records
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(t.c.id).where(t.c.subject == key, t.c.agency == agency).limit(1)
                ).first()
            self._wrote[key] = row is not None
        return self._wrote[key]

    def visible(self, kind: int, subject: str, agency: str | None = None) -> bool:
        """May the caller see this item (a record by ``agency``, or a subject's status)?"""
        if int(kind) != PERSON or self.auditor or self.is_subject(subject):
            return True
        if self.agency is None:
            return False
        return agency == self.agency if agency is not None else self.wrote_about(subject)

    def require_subject(self, kind: int, subject: str, agency: str | None = None) -> None:
        """401 without a session, 403 with one, unless :meth:`visible`."""
        if self.visible(kind, subject, agency):
            return
        if self.session is None:
            raise Unauthenticated("a natural person's records are visible only after sign-in")
        raise Forbidden("only the person, the agencies that wrote the records and auditors")

    def record_scope(self, kind: int, subject: str) -> str | None:
        """For a query of one subject's records: the agency the answer must be limited to
        (the caller's own records), None for everything; 401/403 if nothing is visible."""
        if int(kind) != PERSON or self.auditor or self.is_subject(subject):
            return None
        if self.agency is not None:
            return self.agency
        self.require_subject(kind, subject)  # raises
        return None  # pragma: no cover

    def filter(self, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items (records or list changes, with ``subject_kind``) the caller may see."""
        return [
            x
            for x in items
            if self.visible(int(x.get("subject_kind", PERSON)), str(x["subject"]), x.get("agency"))
        ]


def get_reader(
    request: Request, session: Annotated[Session | None, Depends(get_optional_session)]
) -> Reader:
    rt: Runtime | None = getattr(request.app.state, "runtime", None)
    return Reader(session, rt.engine if rt is not None else None)


def subject_kinds(engine: Any, subjects: Iterable[str]) -> dict[str, int]:
    """The subject kind of each pseudonym that appears in the index (absent: unknown)."""
    keys = sorted({s.lower() for s in subjects})
    out: dict[str, int] = {}
    t = credit_records
    with engine.connect() as conn:
        for i in range(0, len(keys), 500):
            rows = conn.execute(
                select(t.c.subject, t.c.subject_kind)
                .where(t.c.subject.in_(keys[i : i + 500]))
                .distinct()
            )
            out.update({str(s): int(k) for s, k in rows})
    return out


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CreditDep = Annotated[CreditService, Depends(get_credit)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AuthDep = Annotated[AuthService, Depends(get_auth)]
OptionalSessionDep = Annotated[Session | None, Depends(get_optional_session)]
SessionDep = Annotated[Session, Depends(get_session)]
ReaderDep = Annotated[Reader, Depends(get_reader)]
AgencySession = Annotated[Session, Depends(require_role(Role.AGENCY))]
AuditorSession = Annotated[Session, Depends(require_role(Role.AUDITOR))]
IssuerSession = Annotated[Session, Depends(require_role(Role.ISSUER))]
PublisherSession = Annotated[Session, Depends(require_role(Role.RULE_PUBLISHER))]
