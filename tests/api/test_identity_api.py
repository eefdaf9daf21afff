"""The identity HTTP API on the embedded chain: issue, present, verify; revocation and
suspension; DID resolution; refused did:ethr changes and recoveries; and every bad-input path
(a named failed check or a 4xx problem, never a 500). The whole citizen flow with key rotation
and lost-key recovery, on both chains, is tests/api/test_citizen_flow.py."""

from __future__ import annotations

import copy
import hashlib
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
from identity.multikey import did_key_from_public_key
from identity.multikey import verification_method_id as did_key_vm
from identity.presentations import build_presentation, sign_presentation
from identity.status import format_datetime
from ledger.chain import new_account
from ledger.roles import Role, RolesClient
from tests.api.auth_helpers import headers
from tests.api.test_citizen_flow import change, signed_change_body

RIC = "11010519491231002X"
DOMAIN = "bank.example"
SIGAUTH_ED25519 = "did/pub/Ed25519/sigAuth/base58"


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("identity")
    with TestClient(create_app(Settings(data_dir=d, chain="embedded", dev=True))) as client:
        client.get("/1.0/identifiers/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
        client.app.state.identity.head.ttl = 0.0  # type: ignore[attr-defined]
        yield client


class Holder:
    def __init__(self, did: str, vm: str, key: Ed25519PrivateKey) -> None:
        self.did, self.vm, self.key = did, vm, key

    @classmethod
    def did_key(cls) -> Holder:
        key = Ed25519PrivateKey.generate()
        did = did_key_from_public_key(key.public_key())
        return cls(did, did_key_vm(did), key)


def issuer_headers(c: TestClient) -> dict[str, str]:
    """A session of the demo issuer (ISSUER role): issuing and status changes need one."""
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    return headers(c, rt.dev_identities["issuer"]["private_key"])


def issue(c: TestClient, holder: str, **over: Any) -> dict[str, Any]:
    subject = {
        "id": holder,
        "verifiedName": "张三",
        "residentIdNumber": RIC,
        "residenceDistrict": "禅城区",
    }
    cred: dict[str, Any] = {"credentialSubject": subject, **over}
    r = c.post("/credentials/issue", json={"credential": cred}, headers=issuer_headers(c))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def challenge(c: TestClient, domain: str = DOMAIN) -> str:
    r = c.post("/challenges", json={"domain": domain})
    assert r.status_code == 200, r.text
    return r.json()["challenge"]  # type: ignore[no-any-return]


def present(
    c: TestClient, h: Holder, vcs: list[dict[str, Any]], *, ch: str | None = None, **kw: Any
) -> dict[str, Any]:
    return sign_presentation(
        build_presentation(h.did, vcs),
        private_key=kw.get("key", h.key),
        verification_method=h.vm,
        challenge=ch or challenge(c),
        domain=kw.get("domain", DOMAIN),
        created=format_datetime(datetime.now(UTC)),
    )


def verify(c: TestClient, vp: Any, **options: Any) -> dict[str, Any]:
    r = c.post("/presentations/verify", json={"verifiablePresentation": vp, "options": options})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def code(result: dict[str, Any], name: str) -> str:
    return next(x["code"] for x in result["checks"] if x["name"] == name)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def citizen(c: TestClient) -> tuple[Holder, dict[str, Any]]:
    h = Holder.did_key()
    return h, issue(c, h.did)


def test_citizen_presents_once(c: TestClient, citizen: tuple[Holder, dict[str, Any]]) -> None:
    h, issued = citizen
    vc = issued["verifiableCredential"]
    assert vc["issuer"].startswith("did:ethr:") and vc["id"] == issued["credentialId"]
    ch = challenge(c)
    vp = present(c, h, [vc], ch=ch)
    res = verify(c, vp, challenge=ch, domain=DOMAIN)
    assert res["verified"] is True and res["failed"] == []
    names = [x["name"] for x in res["checks"]]
    assert names[:4] == ["structure", "holder-proof", "challenge", "holder-binding"]
    assert {"credential-proof", "issuer-role", "status", "validity"} <= set(names)
    again = verify(c, vp)
    assert again["verified"] is False and again["failed"] == ["challenge"]
    assert code(again, "challenge") == "challenge-used"
    # the credential alone
    r = c.post("/credentials/verify", json={"verifiableCredential": vc})
    assert r.status_code == 200 and r.json()["verified"] is True


def test_challenge_failures(c: TestClient, citizen: tuple[Holder, dict[str, Any]]) -> None:
    h, issued = citizen
    vc = issued["verifiableCredential"]
    unknown = verify(c, present(c, h, [vc], ch="never-issued-by-us"))
    assert code(unknown, "challenge") == "unknown-challenge"
    foreign = verify(c, present(c, h, [vc], ch=challenge(c, "other.example")))
    assert code(foreign, "challenge") == "domain-mismatch"
    ch = challenge(c)
    wrong_opt = verify(c, present(c, h, [vc], ch=ch), domain="shop.example")
    assert code(wrong_opt, "challenge") == "domain-mismatch"
    assert verify(c, present(c, h, [vc], ch=ch))["verified"] is True  # not burnt by the above
    r = c.post("/challenges", json={"domain": "has space"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_tampering_and_bad_proofs(c: TestClient, citizen: tuple[Holder, dict[str, Any]]) -> None:
    h, issued = citizen
    vc = issued["verifiableCredential"]
    tampered_vc = copy.deepcopy(vc)
    tampered_vc["credentialSubject"]["verifiedName"] = "李四"
    res = verify(c, present(c, h, [tampered_vc]))
    assert code(res, "credential-proof") == "invalid-signature"
    assert code(res, "anchor") == "not-anchored" and res["verified"] is False
    vp = present(c, h, [vc])
    vp["holder"] = Holder.did_key().did  # presentation altered after signing
    res = verify(c, vp)
    assert "holder-proof" in res["failed"] and "holder-binding" in res["failed"]
    vp = present(c, h, [vc])
    del vp["proof"]
    res = verify(c, vp)
    assert code(res, "structure") == "proof-missing"
    other = Ed25519PrivateKey.generate()
    res = verify(c, present(c, h, [vc], key=other))
    assert code(res, "holder-proof") == "invalid-signature"
    # someone else's credential in my presentation
    thief = Holder.did_key()
    res = verify(c, present(c, thief, [vc]))
    assert res["failed"] == ["holder-binding"]
    # wrong proof purpose
    vp = build_presentation(h.did, [vc])
    from identity.proofs import add_proof

    signed = add_proof(
        vp,
        private_key=h.key,
        verification_method=h.vm,
        created=format_datetime(datetime.now(UTC)),
        challenge=challenge(c),
        domain=DOMAIN,
    )
    assert code(verify(c, signed), "holder-proof") == "wrong-purpose"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        json.dumps({"verifiablePresentation": "a string"}).encode(),
        json.dumps({"nothing": 1}).encode(),
    ],
)
def test_malformed_requests_are_problems(c: TestClient, body: bytes) -> None:
    for path in ("/presentations/verify", "/credentials/verify", "/credentials/issue"):
        h = {"content-type": "application/json", **issuer_headers(c)}
        r = c.post(path, content=body, headers=h)
        assert 400 <= r.status_code < 500, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"


def test_malformed_documents_are_named_checks(
    c: TestClient, citizen: tuple[Holder, dict[str, Any]]
) -> None:
    h, issued = citizen
    vc = issued["verifiableCredential"]
    for vp, expect in [
        ({}, "context"),
        ({"@context": "https://www.w3.org/ns/credentials/v2"}, "context"),
        (
            {
                "@context": ["https://www.w3.org/ns/credentials/v2", "https://evil.example/ctx"],
                "type": ["VerifiablePresentation"],
            },
            "unknown-context",
        ),
        (
            {
                "@context": ["https://www.w3.org/ns/credentials/v2", {"@vocab": "urn:x:"}],
                "type": "VerifiablePresentation",
            },
            "unknown-context",
        ),
        ({**build_presentation(h.did, [vc]), "verifiableCredential": ["x"]}, "credential"),
        ({**build_presentation(h.did, [vc]), "holder": 7}, "holder"),
    ]:
        res = verify(c, vp)
        assert res["verified"] is False and code(res, "structure") == expect, res
        assert all(x["code"] == "not-checked" for x in res["checks"][1:])
    r = c.post("/credentials/verify", json={"verifiableCredential": {"@context": 5}})
    assert r.status_code == 200 and r.json()["verified"] is False


def test_issue_bad_input(c: TestClient) -> None:
    h = Holder.did_key()
    for cred in [
        {"credentialSubject": {"id": h.did, "verifiedName": "x", "residentIdNumber": "123"}},
        {
            "credentialSubject": {
                "id": h.did,
                "verifiedName": "x",
                "residentIdNumber": "110105194912310021",
                "residenceDistrict": "y",
            }
        },
        {
            "credentialSubject": {
                "id": "did:web:example.com",
                "verifiedName": "x",
                "residentIdNumber": RIC,
                "residenceDistrict": "y",
            }
        },
        {
            "credentialSubject": {
                "id": "did:ethr:0x1:0x" + "11" * 20,
                "verifiedName": "x",
                "residentIdNumber": RIC,
                "residenceDistrict": "y",
            }
        },
    ]:
        r = c.post("/credentials/issue", json={"credential": cred}, headers=issuer_headers(c))
        assert 400 <= r.status_code < 500, r.text
        assert r.headers["content-type"] == "application/problem+json"


def test_revocation_and_suspension(c: TestClient) -> None:
    h = Holder.did_key()
    issued = issue(c, h.did)
    vc = issued["verifiableCredential"]
    assert verify(c, present(c, h, [vc]))["verified"] is True
    r = c.post(
        "/credentials/status",
        json={"credentialId": vc["id"], "credentialStatus": [{"status": "suspended"}]},
        headers=issuer_headers(c),
    )
    assert r.status_code == 200 and r.json()["updates"][0]["changed"] is True
    res = verify(c, present(c, h, [vc]))
    assert res["failed"] == ["status"] and code(res, "status") == "suspended"
    r = c.post(
        "/credentials/status",
        json={"verifiableCredential": vc, "credentialStatus": [{"status": "unsuspended"}]},
        headers=issuer_headers(c),
    )
    assert r.status_code == 200
    assert verify(c, present(c, h, [vc]))["verified"] is True
    r = c.post(
        "/credentials/status",
        json={"credentialId": vc["id"], "credentialStatus": [{"status": "revoked"}]},
        headers=issuer_headers(c),
    )
    assert r.status_code == 200
    res = verify(c, present(c, h, [vc]))
    assert res["failed"] == ["status"] and code(res, "status") == "revoked"
    # the published list says so too
    url = next(e for e in vc["credentialStatus"] if e["statusPurpose"] == "revocation")
    list_id = url["statusListCredential"].rsplit("/", 1)[1]
    lst = c.get(f"/credentials/status-lists/{list_id}")
    assert lst.status_code == 200 and lst.json()["proof"]["proofPurpose"] == "assertionMethod"
    assert "BitstringStatusListCredential" in lst.json()["type"]
    for bad in (
        {"credentialId": "urn:uuid:nope", "credentialStatus": [{"status": "revoked"}]},
        {"credentialId": vc["id"], "credentialStatus": [{"status": "bogus"}]},
        {"credentialStatus": [{"status": "revoked"}]},
    ):
        r = c.post("/credentials/status", json=bad, headers=issuer_headers(c))
        assert 400 <= r.status_code < 500, r.text
    assert c.get("/credentials/status-lists/999").status_code == 404
    assert c.get("/credentials/status-lists/abc").status_code == 422


def test_expired_credential(c: TestClient) -> None:
    h = Holder.did_key()
    past = datetime.now(UTC) - timedelta(days=30)
    issued = issue(
        c,
        h.did,
        validFrom=format_datetime(past),
        validUntil=format_datetime(past + timedelta(days=1)),
    )
    res = verify(c, present(c, h, [issued["verifiableCredential"]]))
    assert res["failed"] == ["validity"] and code(res, "validity") == "expired"


def test_did_resolution(c: TestClient, citizen: tuple[Holder, dict[str, Any]]) -> None:
    h, issued = citizen
    r = c.get(f"/1.0/identifiers/{h.did}")
    assert r.status_code == 200 and r.json()["didDocument"]["id"] == h.did
    r = c.get(f"/1.0/identifiers/{issued['verifiableCredential']['issuer']}")
    doc = r.json()["didDocument"]
    assert r.status_code == 200 and any(m["type"] == "Multikey" for m in doc["verificationMethod"])
    for bad, err in [
        ("did:web:example.com", "methodNotSupported"),
        ("did:ethr:0xZZ", "invalidDid"),
        ("did:ethr:0x1:0x" + "11" * 20, "invalidDid"),
        ("did:key:zNotAKey", "invalidDid"),
        ("not-a-did", "invalidDid"),
    ]:
        r = c.get(f"/1.0/identifiers/{bad}")
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["didResolutionMetadata"]["error"] == err


# ---- did:ethr changes over HTTP: refusals (the whole flow is tests/api/test_citizen_flow.py) ----


def _problem(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    if code is not None:
        assert body["type"].endswith("/" + code), body
    return body


def test_did_changes_refused(c: TestClient) -> None:
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    owner = new_account()
    did = did_ethr(owner.address, rt.deployment.chain_id)
    new_owner = {"newOwner": new_account().address}

    def prepare(**body: Any) -> Any:
        return c.post("/dids/changes/prepare", json={"did": did, "op": "changeOwner", **body})

    # a did:key is its key: nothing to rotate or recover
    r = prepare(did=Holder.did_key().did, fields=new_owner)
    assert "did:key" in _problem(r, 422, "invalid-did")["detail"]
    _problem(prepare(did="did:ethr:0x1:" + owner.address, fields=new_owner), 422, "did-wrong-chain")
    _problem(prepare(op="mint", fields=new_owner), 422, "validation")
    _problem(prepare(fields={"newOwner": "0x12"}), 422, "invalid-input")
    _problem(prepare(fields={**new_owner, "extra": 1}), 422, "invalid-input")
    r = prepare(op="setAttribute", fields={"name": SIGAUTH_ED25519, "value": "zz", "validity": 1})
    _problem(r, 422, "invalid-input")

    # the registry is the judge of the signature: nothing is sent for a refused one
    stranger = new_account()
    r = change(c, did, stranger, "changeOwner", new_owner)
    body = _problem(r, 409, "contract-reverted")
    assert body["error_name"] == "DIDRegistrySignerNotOwner"
    assert body["args"] == [owner.address, stranger.address, owner.address]
    signed = signed_change_body(c, did, owner, "changeOwner", new_owner)
    assert c.post("/dids/changes", json=signed).status_code == 201
    body = _problem(c.post("/dids/changes", json=signed), 409)  # replayed
    assert body["error_name"] == "DIDRegistryInvalidNonce"
    assert body["args"] == [owner.address, 1, 0]
    forged = {**signed, "nonce": 1, "signature": "0x" + "11" * 65}
    body = _problem(c.post("/dids/changes", json=forged), 409)
    assert body["error_name"] == "DIDRegistryInvalidSignature"
    _problem(prepare(fields={}), 422, "invalid-input")
    bad_sig = {"did": did, "op": "changeOwner", "fields": new_owner, "nonce": 1, "deadline": 1}
    _problem(c.post("/dids/changes", json={**bad_sig, "signature": "0x1234"}), 422, "validation")

    # recovery: ISSUER only, with evidence, never to the zero address
    ev = "0x" + hashlib.sha256(b"record").hexdigest()
    rec = {"did": did, "newOwner": new_account().address, "evidenceHash": ev}
    _problem(c.post("/dids/recover", json=rec), 401)
    auditor = headers(c, rt.dev_identities["auditor"]["private_key"])
    _problem(c.post("/dids/recover", json=rec, headers=auditor), 403)
    h = issuer_headers(c)
    r = c.post("/dids/recover", json={**rec, "evidenceHash": "0x" + "00" * 32}, headers=h)
    assert _problem(r, 409)["error_name"] == "DIDRegistryMissingEvidence"
    r = c.post("/dids/recover", json={**rec, "newOwner": "0x" + "00" * 20}, headers=h)
    assert _problem(r, 409)["error_name"] == "DIDRegistryInvalidOwner"
    _problem(c.post("/dids/recover", json={**rec, "evidenceHash": "0x12"}, headers=h), 422)
    r = c.post("/dids/recover", json={**rec, "did": Holder.did_key().did}, headers=h)
    _problem(r, 422, "invalid-did")


def test_issuer_without_role_zz(c: TestClient, citizen: tuple[Holder, dict[str, Any]]) -> None:
    """Runs last in the module: takes ISSUER away from the demo issuer, then gives it back."""
    h, issued = citizen
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    roles = RolesClient(rt.chain, rt.deployment.address("Roles"))
    issuer = rt.dev_identities["issuer"]["address"]
    roles.revoke(rt.governor, Role.ISSUER, issuer)
    try:
        res = verify(c, present(c, h, [issued["verifiableCredential"]]))
        assert res["failed"] == ["issuer-role"] and code(res, "issuer-role") == "not-issuer"
    finally:
        roles.grant(rt.governor, Role.ISSUER, issuer)
    assert verify(c, present(c, h, [issued["verifiableCredential"]]))["verified"] is True
