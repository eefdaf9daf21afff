"""What the verifier caches for speed never outlives what it was derived from.

Every test warms the caches first (prepared credential, verified signatures, DID change logs
and keys, issuer role, anchor, status lists), checks that the warm path was really taken,
then changes the chain directly (so no cache is told) or replays a request, and shows that
the next verification fails on exactly the right check once the service has seen the block.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from identity import credentials as credentials_module
from identity.did import ED25519_SIGAUTH_ATTRIBUTE, ED25519_VERIKEY_ATTRIBUTE, did_ethr
from identity.multikey import did_key_from_public_key, encode_public_multikey
from identity.multikey import verification_method_id as did_key_vm
from identity.presentations import build_presentation, sign_presentation
from identity.status import format_datetime
from ledger.chain import Sender, new_account
from ledger.deploy import decoder

DOMAIN = "caches.example"
CLAIMS = {
    "verifiedName": "张三",
    "residentIdNumber": "11010519491231002X",
    "residenceDistrict": "禅城区",
}


def _app(data_dir: Path, database_url: str | None = None) -> TestClient:
    settings = Settings(data_dir=data_dir, chain="embedded", dev=True, database_url=database_url)
    return TestClient(create_app(settings))


def _start(c: TestClient) -> None:
    """Builds the identity services (on the first identity request)."""
    c.get("/1.0/identifiers/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")


@pytest.fixture
def c(tmp_path: Path) -> Iterator[TestClient]:
    with _app(tmp_path / "data") as client:
        _start(client)
        yield client


def _ids(c: TestClient) -> Any:
    return c.app.state.identity  # type: ignore[attr-defined]


def _issue(c: TestClient, holder: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    rec = _ids(c).issue(
        holder=holder, claims=CLAIMS, valid_from=now, valid_until=now + timedelta(days=30), now=now
    )
    return rec.credential  # type: ignore[no-any-return]


def _body(c: TestClient, holder: str, vm: str, key: Ed25519PrivateKey, vc: dict[str, Any]) -> bytes:
    ch = c.post("/challenges", json={"domain": DOMAIN}).json()["challenge"]
    vp = sign_presentation(
        build_presentation(holder, [vc]),
        private_key=key,
        verification_method=vm,
        challenge=ch,
        domain=DOMAIN,
        created=format_datetime(datetime.now(UTC)),
    )
    return json.dumps({"verifiablePresentation": vp}).encode()


def _post(c: TestClient, body: bytes) -> dict[str, Any]:
    r = c.post("/presentations/verify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _codes(res: dict[str, Any]) -> dict[str, str]:
    return {x["name"]: x["code"] for x in res["checks"]}


def _next_block_seen(c: TestClient, block: int) -> None:
    ids = _ids(c)
    assert ids.chain.head() > block
    time.sleep(ids.head.ttl + 0.05)


class _Counting:
    """Counts the credentials prepared afresh (cache misses)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.misses = 0
        real = credentials_module._prepare

        def counted(vc: object, digest: bytes | None) -> Any:
            self.misses += 1
            return real(vc, digest)

        monkeypatch.setattr(credentials_module, "_prepare", counted)


def _did_key_holder() -> tuple[str, str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    did = did_key_from_public_key(key.public_key())
    return did, did_key_vm(did), key


def test_revocation_after_caching_is_reported(
    c: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder, vm, key = _did_key_holder()
    vc = _issue(c, holder)
    counting = _Counting(monkeypatch)
    assert _post(c, _body(c, holder, vm, key, vc))["verified"] is True
    assert _post(c, _body(c, holder, vm, key, vc))["verified"] is True
    assert counting.misses <= 1  # the second presentation used the prepared credential
    ids = _ids(c)
    block = ids.head.get()
    ids.issuer().revoke(vc)  # straight to the chain: no cache is told
    _next_block_seen(c, block)
    res = _post(c, _body(c, holder, vm, key, vc))
    assert counting.misses <= 1  # still the cached preparation, and yet:
    assert res["failed"] == ["status"] and _codes(res)["status"] == "revoked"


def test_an_altered_copy_of_a_cached_credential_is_not_the_cached_one(c: TestClient) -> None:
    holder, vm, key = _did_key_holder()
    vc = _issue(c, holder)
    assert _post(c, _body(c, holder, vm, key, vc))["verified"] is True
    altered = copy.deepcopy(vc)
    altered["credentialSubject"]["residenceDistrict"] = "南海区"
    res = _post(c, _body(c, holder, vm, key, altered))
    assert _codes(res)["credential-proof"] == "invalid-signature"
    assert _codes(res)["anchor"] == "not-anchored"
    reordered = dict(reversed(list(vc.items())))  # same credential, other key order
    assert _post(c, _body(c, holder, vm, key, reordered))["verified"] is True


def test_issuer_key_revoked_after_caching_is_refused(c: TestClient) -> None:
    holder, vm, key = _did_key_holder()
    vc = _issue(c, holder)
    assert _post(c, _body(c, holder, vm, key, vc))["verified"] is True
    assert _post(c, _body(c, holder, vm, key, vc))["verified"] is True  # every cache warm
    ids = _ids(c)
    iss = ids.issuer()
    raw = iss.private_key.public_key().public_bytes_raw()
    block = ids.head.get()
    ids.dids.revoke_attribute(iss.sender, iss.sender.address, ED25519_VERIKEY_ATTRIBUTE, raw)
    _next_block_seen(c, block)
    res = _post(c, _body(c, holder, vm, key, vc))
    assert res["failed"] == ["credential-proof"]
    assert _codes(res)["credential-proof"] == "key-resolution-failed"


def test_holder_did_rotation_elsewhere_refuses_the_old_key(c: TestClient) -> None:
    ids = _ids(c)
    chain = ids.chain
    owner1, owner2 = new_account(), new_account()
    chain.fund(owner1.address)
    identity = owner1.address
    did = did_ethr(identity, ids.chain_id)
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw()
    ids.dids.set_attribute(
        Sender(chain, owner1, decoder()), identity, ED25519_SIGAUTH_ATTRIBUTE, raw, 3600
    )
    ids.head.expire()
    doc = c.get(f"/1.0/identifiers/{did}").json()["didDocument"]
    mb = encode_public_multikey(key.public_key())
    vm = next(m["id"] for m in doc["verificationMethod"] if m.get("publicKeyMultibase") == mb)
    vc = _issue(c, did)
    assert _post(c, _body(c, did, vm, key, vc))["verified"] is True
    assert _post(c, _body(c, did, vm, key, vc))["verified"] is True  # log and key cached
    block = ids.head.get()
    ids.dids.change_owner(Sender(chain, owner1, decoder()), identity, owner2.address)
    _next_block_seen(c, block)
    res = _post(c, _body(c, did, vm, key, vc))
    assert res["failed"] == ["holder-proof"]
    assert _codes(res)["holder-proof"] == "key-not-authorized"


def test_replayed_presentation_is_refused_also_after_a_restart(tmp_path: Path) -> None:
    holder, vm, key = _did_key_holder()
    data = tmp_path / "data"
    db = f"sqlite:///{tmp_path / 'kept.db'}"  # kept across starts (the embedded default is not)
    with _app(data, db) as c:
        _start(c)
        vc = _issue(c, holder)
        body = _body(c, holder, vm, key, vc)
        assert _post(c, body)["verified"] is True
        replay = _post(c, body)
        assert replay["failed"] == ["challenge"]
        assert _codes(replay)["challenge"] == "challenge-used"
        unused = _body(c, holder, vm, key, vc)
    with _app(data, db) as c:  # a new service on the same database
        _start(c)
        assert _codes(_post(c, body))["challenge"] == "challenge-used"
        assert _codes(_post(c, unused))["challenge"] == "ok"  # issued before, still valid
