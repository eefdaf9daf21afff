"""The verifier's caches stay honest: a revocation made on chain after a verification (by
another party, so nothing here invalidates anything) fails the next verification once the
service has seen a new block, though every cache (issuer key, role, anchor, status list,
decoded bitstring, signature) was warm."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from identity.multikey import did_key_from_public_key, verification_method_id
from identity.presentations import build_presentation, sign_presentation
from identity.status import format_datetime

DOMAIN = "cache.example"


def test_revocation_after_verification_is_seen_after_a_new_block(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path, chain="embedded", dev=True)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as c:
        c.get("/1.0/identifiers/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
        ids = c.app.state.identity  # type: ignore[attr-defined]
        key = Ed25519PrivateKey.generate()
        holder = did_key_from_public_key(key.public_key())
        now = datetime.now(UTC).replace(microsecond=0)
        rec = ids.issue(
            holder=holder,
            claims={
                "verifiedName": "张三",
                "residentIdNumber": "11010519491231002X",
                "residenceDistrict": "禅城区",
            },
            valid_from=now,
            valid_until=now + timedelta(days=30),
            now=now,
        )

        def verify() -> dict[str, object]:
            ch = ids.issue_challenge(DOMAIN, datetime.now(UTC)).challenge
            vp = sign_presentation(
                build_presentation(holder, [rec.credential]),
                private_key=key,
                verification_method=verification_method_id(holder),
                challenge=ch,
                domain=DOMAIN,
                created=format_datetime(datetime.now(UTC)),
            )
            r = c.post("/presentations/verify", json={"verifiablePresentation": vp})
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

        assert verify()["verified"] is True
        assert verify()["verified"] is True  # every cache warm now
        block = ids.head.get()
        ids.issuer().revoke(rec.credential)  # straight to the chain: no cache is told
        assert ids.chain.head() > block
        time.sleep(ids.head.ttl + 0.05)  # the service notices the new block
        res = verify()
        assert res["verified"] is False
        assert res["failed"] == ["status"]
        status = next(ch for ch in res["checks"] if ch["name"] == "status")
        assert status["code"] == "revoked"
