"""SD-JWT VC over HTTP on the embedded chain: /credentials/issue-sd and
/presentations/verify-sd with the service's issuer, chain roles, status lists and challenges;
named failed checks (200) and malformed requests (4xx problem+json), never a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from identity.did import did_ethr
from identity.sdjwt import CHECKS, present_sd_jwt
from ledger.chain import new_account
from ledger.roles import Role, RolesClient
from tests.api.test_citizen_flow import change, publish
from tests.api.test_identity_api import DOMAIN, RIC, Holder, challenge, issuer_headers


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("sdjwt")
    with TestClient(create_app(Settings(data_dir=d, chain="embedded", dev=True))) as client:
        client.get("/1.0/identifiers/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
        client.app.state.identity.head.ttl = 0.0  # type: ignore[attr-defined]
        yield client


def issue_sd(c: TestClient, holder: str, **subject: Any) -> dict[str, Any]:
    body = {
        "credential": {
            "credentialSubject": {
                "id": holder,
                "verifiedName": "张三",
                "residentIdNumber": RIC,
                "residenceDistrict": "禅城区",
                **subject,
            }
        }
    }
    r = c.post("/credentials/issue-sd", json=body, headers=issuer_headers(c))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def present(
    c: TestClient,
    sd: str,
    key: Ed25519PrivateKey,
    disclose: tuple[str, ...] = ("age_over_18", "resident_of"),
    **kw: Any,
) -> str:
    return present_sd_jwt(
        sd,
        disclose=disclose,
        holder_key=key,
        nonce=kw.get("nonce") or challenge(c),
        aud=kw.get("aud", DOMAIN),
        now=datetime.now(UTC),
    )


def verify(c: TestClient, presentation: Any, domain: str | None = DOMAIN) -> dict[str, Any]:
    r = c.post("/presentations/verify-sd", json={"presentation": presentation, "domain": domain})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def code(res: dict[str, Any], name: str) -> str:
    return next(x["code"] for x in res["checks"] if x["name"] == name)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def citizen(c: TestClient) -> tuple[Holder, dict[str, Any]]:
    h = Holder.did_key()
    return h, issue_sd(c, h.did)


def test_resident_over_18_without_id_number(
    c: TestClient, citizen: tuple[Holder, dict[str, Any]]
) -> None:
    h, issued = citizen
    assert issued["holderKeyId"] == h.vm and issued["credentialId"].startswith("urn:uuid:")
    p = present(c, issued["sdJwt"], h.key)
    res = verify(c, p)
    assert res["verified"] is True and res["failed"] == [], res
    assert [x["name"] for x in res["checks"]] == list(CHECKS)
    assert res["disclosed"] == {"age_over_18": True, "resident_of": "440604"}
    assert res["holder"] == h.did and res["issuer"].startswith("did:ethr:")
    for part in p.split("~")[:-1]:  # the issuer JWT and the two disclosures
        for seg in part.split("."):
            text = base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)).decode("utf-8", "replace")
            assert RIC not in text and "张三" not in text and "禅城区" not in text
    # the same presentation again: its nonce is used
    again = verify(c, p)
    assert again["failed"] == ["challenge"] and code(again, "challenge") == "challenge-used"


def test_named_failures(c: TestClient, citizen: tuple[Holder, dict[str, Any]]) -> None:
    h, issued = citizen
    sd = issued["sdJwt"]
    res = verify(c, present(c, sd, h.key, nonce="not-from-this-verifier"))
    assert res["failed"] == ["challenge"] and code(res, "challenge") == "unknown-challenge"
    res = verify(c, present(c, sd, h.key, aud="evil.example"))
    assert code(res, "challenge") == "aud-mismatch"
    res = verify(c, present(c, sd, Ed25519PrivateKey.generate()))
    assert res["failed"] == ["key-binding"] and code(res, "key-binding") == "kb-signature"
    p = present(c, sd, h.key)
    res = verify(c, p[: p.rindex("~") + 1])
    assert code(res, "key-binding") == "kb-missing" and res["disclosed"] == {}
    res = verify(c, "garbage")
    assert res["failed"] == list(CHECKS) and code(res, "structure") == "malformed"


def test_expired(c: TestClient) -> None:
    h = Holder.did_key()
    now = datetime.now(UTC)
    body = {
        "credential": {
            "credentialSubject": {
                "id": h.did,
                "verifiedName": "李四",
                "residentIdNumber": RIC,
                "residenceDistrict": "南海区",
            },
            "validFrom": (now - timedelta(days=2)).isoformat(),
            "validUntil": (now - timedelta(days=1)).isoformat(),
        }
    }
    r = c.post("/credentials/issue-sd", json=body, headers=issuer_headers(c))
    assert r.status_code == 201, r.text
    res = verify(c, present(c, r.json()["sdJwt"], h.key, ("resident_of",)))
    assert res["failed"] == ["validity"] and code(res, "validity") == "expired"


def test_revocation_and_suspension(c: TestClient) -> None:
    h = Holder.did_key()
    issued = issue_sd(c, h.did)

    def set_status(status: str) -> None:
        r = c.post(
            "/credentials/status",
            json={"credentialId": issued["credentialId"], "credentialStatus": [{"status": status}]},
            headers=issuer_headers(c),
        )
        assert r.status_code == 200, r.text

    set_status("suspended")
    res = verify(c, present(c, issued["sdJwt"], h.key))
    assert res["failed"] == ["status"] and code(res, "status") == "suspended"
    set_status("unsuspended")
    assert verify(c, present(c, issued["sdJwt"], h.key))["verified"] is True
    set_status("revoked")
    assert code(verify(c, present(c, issued["sdJwt"], h.key)), "status") == "revoked"


def test_did_ethr_holder_and_key_rotation(c: TestClient) -> None:
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    owner = new_account()
    did = did_ethr(owner.address, rt.deployment.chain_id)
    key = Ed25519PrivateKey.generate()
    vm = publish(c, did, owner, key)
    r = c.post(
        "/credentials/issue-sd",
        json={
            "credential": {
                "credentialSubject": {
                    "id": did,
                    "verifiedName": "王五",
                    "residentIdNumber": RIC,
                    "residenceDistrict": "禅城区",
                }
            }
        },
        headers=issuer_headers(c),
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    issued = issue_sd(c, did, holderKeyId=vm)
    assert verify(c, present(c, issued["sdJwt"], key))["verified"] is True
    # a lost device: the owner rotates, and the old key no longer binds
    assert (
        change(c, did, owner, "changeOwner", {"newOwner": new_account().address}).status_code == 201
    )
    res = verify(c, present(c, issued["sdJwt"], key))
    assert res["failed"] == ["key-binding"] and code(res, "key-binding") == "holder-key-revoked"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"presentation": 42},
        {"presentation": ["a"]},
        {"presentation": "x", "domain": 5},
        {"presentation": "x" * 70_000},
    ],
)
def test_malformed_requests_are_problems(c: TestClient, body: Any) -> None:
    r = c.post("/presentations/verify-sd", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = c.post(
        "/presentations/verify-sd",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert 400 <= r.status_code < 500


def test_issue_sd_needs_issuer_and_valid_input(c: TestClient) -> None:
    h = Holder.did_key()
    subject = {"id": h.did, "verifiedName": "x", "residentIdNumber": RIC, "residenceDistrict": "y"}
    r = c.post("/credentials/issue-sd", json={"credential": {"credentialSubject": subject}})
    assert r.status_code in (401, 403)
    for bad in (
        {**subject, "residentIdNumber": "110105194912310021"},
        {**subject, "residenceDistrictCode": "44060"},
        {**subject, "id": "did:web:example.com"},
        {**subject, "holderKeyId": Holder.did_key().vm},
        {**subject, "verificationLevel": "postcard"},
    ):
        r = c.post(
            "/credentials/issue-sd",
            json={"credential": {"credentialSubject": bad}},
            headers=issuer_headers(c),
        )
        assert 400 <= r.status_code < 500, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    # an unknown district without a code: no resident_of disclosure
    issued = issue_sd(c, h.did, residenceDistrict="某区")
    jwt = issued["sdJwt"].split("~")
    names = {json.loads(base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)))[1] for d in jwt[1:-1]}
    assert "resident_of" not in names and "age_over_18" in names


def test_issuer_without_role_zz(c: TestClient, citizen: tuple[Holder, dict[str, Any]]) -> None:
    """Runs last: takes ISSUER away from the demo issuer, then gives it back."""
    h, issued = citizen
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    roles = RolesClient(rt.chain, rt.deployment.address("Roles"))
    issuer = rt.dev_identities["issuer"]["address"]
    roles.revoke(rt.governor, Role.ISSUER, issuer)
    try:
        res = verify(c, present(c, issued["sdJwt"], h.key))
        assert res["failed"] == ["issuer-role"] and code(res, "issuer-role") == "not-issuer"
    finally:
        roles.grant(rt.governor, Role.ISSUER, issuer)
    assert verify(c, present(c, issued["sdJwt"], h.key))["verified"] is True
