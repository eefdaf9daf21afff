"""Sign a dev identity in by SIWE (EIP-4361), or a DID holder by a presentation, in tests.

The client's cookie jar is cleared after each sign-in, so a test's requests carry a session
only through the ``Authorization`` headers it passes explicitly.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient

from api.auth import SiweMessage
from identity.presentations import build_presentation, sign_presentation
from identity.status import CREDENTIALS_V2_CONTEXT, format_datetime

__all__ = [
    "as_",
    "bearer",
    "did_sign_in",
    "headers",
    "sign_text",
    "siwe_message",
    "siwe_sign_in",
]

_TOKENS: dict[tuple[int, str], str] = {}


def siwe_message(c: TestClient, address: str, **over: Any) -> SiweMessage:
    """A message over a fresh server nonce, with the terms the server announces."""
    r = c.get("/auth/siwe/nonce")
    assert r.status_code == 200, r.text
    n = r.json()
    msg = SiweMessage(
        domain=n["domain"],
        address=address,
        uri=n["uri"],
        chain_id=n["chainId"],
        nonce=n["nonce"],
        issued_at=n["issuedAt"],
        statement="Sign in to zhixin",
    )
    return replace(msg, **over)


def sign_text(text: str, key: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=text), key).signature).hex()


def siwe_sign_in(c: TestClient, key: str, **over: Any) -> Any:
    """POST /auth/siwe for the account of ``key``; the raw response."""
    msg = siwe_message(c, Account.from_key(key).address, **over)
    text = msg.to_text()
    r = c.post("/auth/siwe", json={"message": text, "signature": sign_text(text, key)})
    c.cookies.clear()
    return r


def bearer(c: TestClient, key: str) -> str:
    """A session token for ``key`` (cached per app: sign-in once per test module)."""
    cache = (id(c.app), key)
    if cache not in _TOKENS:
        r = siwe_sign_in(c, key)
        assert r.status_code == 200, r.text
        _TOKENS[cache] = r.json()["token"]
    return _TOKENS[cache]


def headers(c: TestClient, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer(c, key)}"}


def as_(c: TestClient, keys: dict[str, Any], name: str) -> dict[str, str]:
    """Headers of the dev identity ``name`` (agency-tax, auditor, issuer, ...)."""
    return headers(c, keys[name]["private_key"])


def did_sign_in(
    c: TestClient,
    did: str,
    vm: str,
    key: Ed25519PrivateKey,
    vcs: list[dict[str, Any]] | None = None,
    *,
    domain: str | None = None,
) -> Any:
    """POST /auth/did with a presentation (credentials optional) over a fresh challenge."""
    ch = c.get("/auth/did/challenge").json()
    if vcs:
        vp = build_presentation(did, vcs)
    else:
        vp = {
            "@context": [CREDENTIALS_V2_CONTEXT],
            "type": ["VerifiablePresentation"],
            "holder": did,
        }
    signed = sign_presentation(
        vp,
        private_key=key,
        verification_method=vm,
        challenge=ch["challenge"],
        domain=domain or ch["domain"],
        created=format_datetime(datetime.now(UTC)),
    )
    r = c.post("/auth/did", json={"verifiablePresentation": signed})
    c.cookies.clear()
    return r
