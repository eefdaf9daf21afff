"""Sign-in on the embedded dev service: SIWE (EIP-4361) for role holders, DID authentication
for citizens; every refusal is a named RFC 9457 problem; sign-out revokes at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from api.auth import MalformedSiwe, SiweMessage, parse_siwe, verify_siwe
from api.main import create_app
from api.settings import Settings
from identity.presentations import sign_presentation
from identity.status import format_datetime
from tests.api.auth_helpers import did_sign_in, sign_text, siwe_message, siwe_sign_in
from tests.api.test_identity_api import RIC, Holder

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("auth")
    settings = Settings(data_dir=d, chain="embedded", dev=True, index_poll_s=0.05)
    with TestClient(create_app(settings)) as c:
        yield c, json.loads((d / "dev-keys.json").read_text())


def refused(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("/" + code), r.json()


# ---- the message grammar (pure) ----

EXAMPLE = SiweMessage(
    domain="service.org",
    address="0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    uri="https://service.org/login",
    chain_id=1,
    nonce="32891756",
    issued_at="2021-09-30T16:25:24Z",
    statement="I accept the ServiceOrg Terms of Service: https://service.org/tos",
    resources=("ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",),
)


def test_message_round_trips_and_is_exact() -> None:
    for msg in (
        EXAMPLE,
        replace(EXAMPLE, statement=None, resources=()),
        replace(EXAMPLE, statement="", expiration_time="2021-10-01T00:00:00Z"),
        replace(EXAMPLE, scheme="https", not_before="2021-09-30T16:25:24Z", request_id="r-1"),
    ):
        assert parse_siwe(msg.to_text()) == msg
    text = EXAMPLE.to_text()
    for bad in (
        text + "\n",
        text.replace("\n", "\r\n"),
        text.replace(EXAMPLE.address, EXAMPLE.address.lower().replace("0x", "0X")),
        text.replace(EXAMPLE.address, "0xc02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"),  # checksum
        text.replace("Version: 1", "Version: 2"),
        text.replace("Nonce: 32891756", "Nonce: 1234"),
        text.replace("Issued At: 2021-09-30T16:25:24Z", "Issued At: yesterday"),
        text.replace("URI: ", "Uri: "),
        text.replace("I accept", "I accept\nthis"),
        "hello",
    ):
        with pytest.raises(MalformedSiwe):
            parse_siwe(bad)


def test_verify_checks_domain_chain_times_and_signature() -> None:
    acct = Account.create()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    msg = replace(EXAMPLE, address=acct.address, issued_at="2026-01-01T00:00:00Z")
    text = msg.to_text()
    sig = sign_text(text, acct.key.hex())
    assert verify_siwe(text, sig, domains={"service.org"}, chain_id=1, now=now) == msg

    def code(text: str, sig: str, **kw: Any) -> str:
        args: dict[str, Any] = {"domains": {"service.org"}, "chain_id": 1, "now": now, **kw}
        with pytest.raises(Exception) as exc:
            verify_siwe(text, sig, **args)
        return exc.value.code  # type: ignore[attr-defined,no-any-return]

    assert code(text, sig, domains={"other.org"}) == "siwe-domain"
    assert code(text, sig, chain_id=2) == "siwe-chain"
    assert code(text, sig, now=now - timedelta(minutes=5)) == "siwe-time"
    late = replace(msg, expiration_time="2025-12-31T23:59:59Z").to_text()
    assert code(late, sign_text(late, acct.key.hex())) == "siwe-expired"
    early = replace(msg, not_before="2026-01-02T00:00:00Z").to_text()
    assert code(early, sign_text(early, acct.key.hex())) == "siwe-time"
    other = Account.create()
    assert code(text, sign_text(text, other.key.hex())) == "siwe-signature"
    assert code(text, "0x" + "00" * 65) == "siwe-signature"
    assert code(text, "nope") == "siwe-signature"


# ---- over HTTP ----


def test_siwe_sign_in_me_and_logout(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    r = siwe_sign_in(c, keys["auditor"]["private_key"])
    assert r.status_code == 200, r.text
    body = r.json()
    token = body["token"]
    assert body["token_type"] == "Bearer" and body["session"]["roles"] == ["AUDITOR"]
    assert "httponly" in r.headers["set-cookie"].lower()
    h = {"Authorization": f"Bearer {token}"}
    me = c.get("/auth/me", headers=h).json()
    assert me["address"] == keys["auditor"]["address"] and me["roles"] == ["AUDITOR"]
    # the cookie works as well as the header
    c.cookies.set("zhixin_session", token)
    assert c.get("/auth/me").status_code == 200
    c.cookies.clear()
    assert c.post("/auth/logout", headers=h).status_code == 204
    refused(c.get("/auth/me", headers=h), 401, "unauthenticated")
    refused(c.post("/auth/logout", headers=h), 401, "unauthenticated")


def test_missing_forged_and_expired_tokens_are_401(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    r = c.get("/auth/me")
    refused(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")
    for h in ("Bearer zxs_" + "A" * 43, "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer "):
        refused(c.get("/auth/me", headers={"Authorization": h}), 401, "unauthenticated")
    r = siwe_sign_in(c, keys["agency-tax"]["private_key"])
    token = r.json()["token"]
    auth = c.app.state.auth  # type: ignore[attr-defined]
    later = datetime.now(UTC) + auth.sessions.ttl + timedelta(seconds=1)
    assert auth.sessions.lookup(token, datetime.now(UTC)) is not None
    assert auth.sessions.lookup(token, later) is None  # expired
    with auth.sessions.engine.begin() as conn:  # age it in the database: the route says 401
        conn.exec_driver_sql("UPDATE auth_sessions SET expires_at = 1")
    refused(c.get("/auth/me", headers={"Authorization": f"Bearer {token}"}), 401, "unauthenticated")


def test_siwe_refusals(env: tuple[TestClient, dict[str, Any]]) -> None:
    c, keys = env
    key = keys["agency-tax"]["private_key"]
    refused(siwe_sign_in(c, key, domain="evil.example"), 401, "siwe-domain")
    refused(siwe_sign_in(c, key, chain_id=1), 401, "siwe-chain")
    refused(siwe_sign_in(c, key, nonce="neverissued1"), 401, "siwe-nonce")
    old = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused(siwe_sign_in(c, key, expiration_time=old), 401, "siwe-expired")
    # replay: the same message and signature a second time
    msg = siwe_message(c, Account.from_key(key).address).to_text()
    body = {"message": msg, "signature": sign_text(msg, key)}
    assert c.post("/auth/siwe", json=body).status_code == 200
    c.cookies.clear()
    refused(c.post("/auth/siwe", json=body), 401, "siwe-nonce")
    # signed by someone else than the address in the message
    msg = siwe_message(c, Account.from_key(key).address).to_text()
    other = keys["auditor"]["private_key"]
    refused(c.post("/auth/siwe", json={"message": msg, "signature": sign_text(msg, other)}),
            401, "siwe-signature")  # fmt: skip
    # an expired nonce
    auth = c.app.state.auth  # type: ignore[attr-defined]
    n, _ = auth.nonces.issue(datetime.now(UTC) - timedelta(hours=1))
    refused(siwe_sign_in(c, key, nonce=n), 401, "siwe-nonce")
    # malformed
    r = c.post("/auth/siwe", json={"message": "hello", "signature": "0x00"})
    refused(r, 422, "siwe-malformed")
    # an address with no role on chain
    refused(siwe_sign_in(c, Account.create().key.hex()), 403, "forbidden")


def test_did_sign_in_with_and_without_credential(env: tuple[TestClient, dict[str, Any]]) -> None:
    from tests.api.auth_helpers import as_

    c, keys = env
    h = Holder.did_key()
    r = did_sign_in(c, h.did, h.vm, h.key)
    assert r.status_code == 200, r.text
    s = r.json()["session"]
    assert s["kind"] == "did" and s["did"] == h.did and s["subject"] is None
    subject = {"id": h.did, "verifiedName": "张三", "residentIdNumber": RIC,
               "residenceDistrict": "禅城区"}  # fmt: skip
    r = c.post("/credentials/issue", json={"credential": {"credentialSubject": subject}},
               headers=as_(c, keys, "issuer"))  # fmt: skip
    assert r.status_code == 201, r.text
    vc = r.json()["verifiableCredential"]
    r = did_sign_in(c, h.did, h.vm, h.key, [vc])
    assert r.status_code == 200, r.text
    credit = c.app.state.runtime.credit  # type: ignore[attr-defined]
    expected = "0x" + credit.subject_pseudonym("person", RIC)[1].hex()
    assert r.json()["session"]["subject"] == expected
    assert RIC not in r.text
    me = c.get("/auth/me", headers={"Authorization": f"Bearer {r.json()['token']}"}).json()
    assert me["subject"] == expected and me["roles"] == []
    # someone else's key, a foreign domain, a replayed challenge
    refused(did_sign_in(c, h.did, h.vm, Holder.did_key().key), 401, "did-holder-proof")
    refused(did_sign_in(c, h.did, h.vm, h.key, domain="bank.example"), 401, "did-holder-proof")
    ch = c.get("/auth/did/challenge").json()
    vp = {"@context": ["https://www.w3.org/ns/credentials/v2"],
          "type": ["VerifiablePresentation"], "holder": h.did}  # fmt: skip
    vp = sign_presentation(vp, private_key=h.key, verification_method=h.vm,
                           challenge=ch["challenge"], domain=ch["domain"],
                           created=format_datetime(datetime.now(UTC)))  # fmt: skip
    assert c.post("/auth/did", json={"verifiablePresentation": vp}).status_code == 200
    c.cookies.clear()
    refused(c.post("/auth/did", json={"verifiablePresentation": vp}), 401, "did-challenge")
    thief = Holder.did_key()
    refused(did_sign_in(c, thief.did, thief.vm, thief.key, [vc]), 401, "did-presentation")
