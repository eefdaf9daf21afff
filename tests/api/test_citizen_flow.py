"""The whole citizen flow through the service's HTTP API, on the embedded chain and on anvil.

A did:ethr citizen (a did:key cannot rotate) publishes an Ed25519 authentication key, is issued
an identity credential in person, presents it over a verifier's challenge, rotates its owner key
(changeOwner signed with EIP-712 and relayed by the service), loses that key and is re-bound by
an ISSUER (the recovery recorded on chain), and finally has the credential revoked. Every step
asserts the named check of the per-check result, not only ``verified``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from identity.did import (
    ED25519_SIGAUTH_ATTRIBUTE,
    DIDRegistryClient,
    SignedOp,
    change_fields_from_json,
    did_ethr,
    sign_typed_data,
    signed_change_typed_data,
    typed_data_json,
)
from identity.multikey import encode_public_multikey
from identity.presentations import CHECKS, build_presentation, sign_presentation
from identity.status import format_datetime
from ledger.chain import new_account
from ledger.node import free_port
from tests.api.auth_helpers import headers

RIC = "11010519491231002X"
DOMAIN = "bank.example"


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def c(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The service on either chain (anvil: a real node child, mining every 0.2 s)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        chain=request.param,
        dev=True,
        node_port=free_port(),
        block_time=0.2,
        verify_workers=0,
    )
    with TestClient(create_app(settings)) as client:
        assert client.app.state.runtime.chain.kind == request.param  # type: ignore[attr-defined]
        yield client


def issuer_headers(c: TestClient) -> dict[str, str]:
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    return headers(c, rt.dev_identities["issuer"]["private_key"])


def signed_change_body(
    c: TestClient, did: str, owner: LocalAccount, op: SignedOp, fields: dict[str, Any]
) -> dict[str, Any]:
    """``owner`` signs the change (EIP-712) over the nonce and deadline the service gives."""
    prep = c.post("/dids/changes/prepare", json={"did": did, "op": op, "fields": fields})
    assert prep.status_code == 200, prep.text
    p = prep.json()
    # the wallet builds what it signs itself; the service only supplies nonce, chain, registry
    typed = signed_change_typed_data(
        op,
        did.rsplit(":", 1)[1],
        change_fields_from_json(op, fields),
        nonce=p["nonce"],
        deadline=p["deadline"],
        chain_id=p["chainId"],
        registry=p["registry"],
    )
    assert typed_data_json(typed) == p["typedData"]
    v, r, s = sign_typed_data(owner, typed)
    return {
        "did": did,
        "op": op,
        "fields": fields,
        "nonce": p["nonce"],
        "deadline": p["deadline"],
        "signature": "0x" + (r + s + bytes([v])).hex(),
    }


def change(
    c: TestClient, did: str, owner: LocalAccount, op: SignedOp, fields: dict[str, Any]
) -> Any:
    """``owner`` signs the change; the service relays it (the citizen pays no gas)."""
    return c.post("/dids/changes", json=signed_change_body(c, did, owner, op, fields))


def publish(c: TestClient, did: str, owner: LocalAccount, key: Ed25519PrivateKey) -> str:
    """The owner publishes an Ed25519 authentication key; returns its verification method."""
    raw = key.public_key().public_bytes_raw()
    fields = {"name": ED25519_SIGAUTH_ATTRIBUTE, "value": "0x" + raw.hex(), "validity": 3600}
    r = change(c, did, owner, "setAttribute", fields)
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == owner.address
    doc = c.get(f"/1.0/identifiers/{did}").json()["didDocument"]
    mb = encode_public_multikey(key.public_key())
    vm = next(m["id"] for m in doc["verificationMethod"] if m.get("publicKeyMultibase") == mb)
    assert vm in doc["authentication"]
    return str(vm)


def present_and_verify(
    c: TestClient, did: str, vm: str, key: Ed25519PrivateKey, vc: dict[str, Any]
) -> dict[str, Any]:
    """The holder signs over a fresh challenge of the verifier; the verifier verifies it."""
    ch = c.post("/challenges", json={"domain": DOMAIN}).json()["challenge"]
    vp = sign_presentation(
        build_presentation(did, [vc]),
        private_key=key,
        verification_method=vm,
        challenge=ch,
        domain=DOMAIN,
        created=format_datetime(datetime.now(UTC)),
    )
    r = c.post(
        "/presentations/verify",
        json={"verifiablePresentation": vp, "options": {"challenge": ch, "domain": DOMAIN}},
    )
    assert r.status_code == 200, r.text
    res: dict[str, Any] = r.json()
    assert [x["name"] for x in res["checks"]] == list(CHECKS)
    return res


def codes(res: dict[str, Any]) -> dict[str, str]:
    return {x["name"]: x["code"] for x in res["checks"]}


def passes(res: dict[str, Any]) -> bool:
    return res["verified"] is True and set(codes(res).values()) == {"ok"}


def test_citizen_flow(c: TestClient) -> None:
    rt = c.app.state.runtime  # type: ignore[attr-defined]
    dids = DIDRegistryClient(rt.chain, rt.deployment.address("DIDRegistry"))

    # a new did:ethr wallet: an owner key (never pays gas) and an Ed25519 presentation key
    owner1 = new_account()
    identity = owner1.address
    did = did_ethr(identity, rt.deployment.chain_id)
    k1 = Ed25519PrivateKey.generate()
    vm1 = publish(c, did, owner1, k1)

    # in-person issuance by the ISSUER
    subject = {
        "id": did,
        "verifiedName": "张三",
        "residentIdNumber": RIC,
        "verificationLevel": "in-person",
        "residenceDistrict": "禅城区",
    }
    r = c.post(
        "/credentials/issue",
        json={"credential": {"credentialSubject": subject}},
        headers=issuer_headers(c),
    )
    assert r.status_code == 201, r.text
    vc = r.json()["verifiableCredential"]
    assert vc["credentialSubject"]["id"] == did

    # presentation to a verifier over its challenge: every named check passes
    res = present_and_verify(c, did, vm1, k1, vc)
    assert passes(res), res

    # key rotation: the owner signs changeOwner (EIP-712), the service relays it
    owner2 = new_account()
    r = change(c, did, owner1, "changeOwner", {"newOwner": owner2.address})
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == owner2.address == dids.identity_owner(identity)
    old = present_and_verify(c, did, vm1, k1, vc)
    assert old["failed"] == ["holder-proof"]
    assert codes(old)["holder-proof"] == "key-not-authorized"
    k2 = Ed25519PrivateKey.generate()
    vm2 = publish(c, did, owner2, k2)
    res = present_and_verify(c, did, vm2, k2, vc)
    assert passes(res), res
    # the old owner key can no longer change the DID
    r = change(c, did, owner1, "changeOwner", {"newOwner": owner1.address})
    assert r.status_code == 409 and r.json()["error_name"] == "DIDRegistrySignerNotOwner"

    # lost key: an ISSUER re-binds the DID after in-person re-verification, on the record
    owner3 = new_account()
    evidence = hashlib.sha256(b"re-verification record, counter 3").digest()
    body = {"did": did, "newOwner": owner3.address, "evidenceHash": "0x" + evidence.hex()}
    r = c.post("/dids/recover", json=body, headers=issuer_headers(c))
    assert r.status_code == 201, r.text
    issuer = rt.dev_identities["issuer"]["address"]
    assert r.json()["owner"] == owner3.address and r.json()["issuer"] == issuer
    recovered = dids.change_log(identity).recoveries[-1]
    assert (recovered.owner, recovered.issuer, recovered.evidence_hash) == (
        owner3.address,
        issuer,
        evidence,
    )
    lost = present_and_verify(c, did, vm2, k2, vc)
    assert lost["failed"] == ["holder-proof"]
    assert codes(lost)["holder-proof"] == "key-not-authorized"
    r = change(c, did, owner2, "changeOwner", {"newOwner": owner2.address})
    assert r.status_code == 409 and r.json()["error_name"] == "DIDRegistrySignerNotOwner"
    k3 = Ed25519PrivateKey.generate()
    vm3 = publish(c, did, owner3, k3)
    res = present_and_verify(c, did, vm3, k3, vc)
    assert passes(res), res

    # revocation: the issuer revokes; the same holder key now fails on status alone
    r = c.post(
        "/credentials/status",
        json={"credentialId": vc["id"], "credentialStatus": [{"status": "revoked"}]},
        headers=issuer_headers(c),
    )
    assert r.status_code == 200 and r.json()["updates"][0]["changed"] is True
    res = present_and_verify(c, did, vm3, k3, vc)
    assert res["failed"] == ["status"] and codes(res)["status"] == "revoked"
    assert codes(res)["holder-proof"] == "ok"
