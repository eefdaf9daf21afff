"""Sign-in over HTTP: SIWE (EIP-4361) for chain-key holders, a verifiable presentation over a
server challenge for citizens; sign-out and "who am I".

Invariants:

* A token is in exactly one response body (the sign-in's) and its HttpOnly cookie; it is
  never logged, and only its hash is stored (:mod:`api.auth`).
* Every refusal is an RFC 9457 problem: 401 with a named ``type`` for a failed sign-in check,
  422 for a malformed message, 403 for an address that holds no role.
* ``now`` is read once per request and handed to the pure verifiers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from ..auth import COOKIE_NAME, AuthService, SessionRecord
from ..deps import AuthDep, CreditDep, SessionDep
from ..identity_services import IdentityServices, get_identity

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["sign-in"])
IdentityDep = Annotated[IdentityServices, Depends(get_identity)]


class SiweIn(BaseModel):
    message: str = Field(max_length=4096, description="the EIP-4361 message, exactly as signed")
    signature: str = Field(max_length=200, description="EIP-191 personal_sign signature, 0x hex")


class DidIn(BaseModel):
    verifiablePresentation: dict[str, Any] = Field(
        description="signed for authentication over a challenge from GET /auth/did/challenge"
    )


def _format(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _issue(
    auth: AuthService, response: Response, rec: SessionRecord, token: str, roles: Any
) -> dict[str, Any]:
    """The session's one appearance: body and HttpOnly cookie."""
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=rec.expires_at - rec.created_at,
        httponly=True,
        secure=auth.cookie_secure,
        samesite="strict",
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    return {
        "token": token,
        "token_type": "Bearer",
        "expires_at": rec.expires_at,
        "expires_in": rec.expires_at - rec.created_at,
        "session": {
            "kind": rec.kind,
            "address": rec.address,
            "did": rec.did,
            "subject": rec.pseudonym,
            "roles": sorted(r.value for r in roles),
        },
    }


@router.get("/siwe/nonce", summary="A single-use nonce and the terms of the message to sign")
def siwe_nonce(auth: AuthDep, response: Response) -> dict[str, Any]:
    now = datetime.now(UTC)
    nonce, expires = auth.nonces.issue(now)
    response.headers["Cache-Control"] = "no-store"
    return {
        "nonce": nonce,
        "expires": _format(expires),
        "domain": auth.domain,
        "uri": auth.uri,
        "chainId": auth.chain_id,
        "version": "1",
        "issuedAt": _format(now),
    }


@router.post("/siwe", summary="Sign in with Ethereum (EIP-4361): message + signature → session")
def siwe(body: SiweIn, auth: AuthDep, response: Response) -> dict[str, Any]:
    now = datetime.now(UTC)
    msg = auth.sign_in_siwe(body.message, body.signature, now)
    token, rec = auth.sessions.create(now, kind="siwe", address=msg.address)
    return _issue(auth, response, rec, token, auth.roles.get(msg.address))


@router.get("/did/challenge", summary="A single-use challenge for a DID sign-in presentation")
def did_challenge(auth: AuthDep, ids: IdentityDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "no-store"
    return ids.issue_challenge(auth.domain, datetime.now(UTC)).to_json()


@router.post("/did", summary="Sign in as a DID holder with a presentation over our challenge")
def did(
    body: DidIn, auth: AuthDep, ids: IdentityDep, credit: CreditDep, response: Response
) -> dict[str, Any]:
    now = datetime.now(UTC)
    holder, pseudonym = auth.sign_in_did(ids, credit, body.verifiablePresentation, now)
    token, rec = auth.sessions.create(now, kind="did", did=holder, pseudonym=pseudonym)
    return _issue(auth, response, rec, token, frozenset())


@router.post("/logout", status_code=204, summary="Revoke this session now")
def logout(session: SessionDep, auth: AuthDep) -> Response:
    auth.sessions.revoke(session.record.token_hash, datetime.now(UTC))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", summary="The calling session and the roles its address holds on chain now")
def me(session: SessionDep) -> dict[str, Any]:
    return session.to_json()
