"""A populated service for the public and citizen page tests (TestClient, embedded chain).

Two legal entities (one on the serious-dishonesty black list, one on the red list, one with no
record), two citizens with identity credentials (did:key holders signed in by DID) and one DID
holder without a credential; the starter rule set is published and one epoch anchored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from identity.multikey import did_key_from_public_key
from identity.multikey import verification_method_id as did_key_vm
from identity.presentations import build_presentation, sign_presentation
from identity.status import format_datetime
from ledger.records import record_from_json, sign_record, signed_record_to_json
from tests.api.auth_helpers import as_, did_sign_in, headers

ENTITY_BLACK = "91440604MA4UH8K3XF"  # serious administrative penalty: black (serious_dishonesty)
ENTITY_RED = "91440604MA4W2L7Q0C"  # A-grade taxpayer: red list
ENTITY_CLEAN = "91440604MA51CN2T0E"  # no record
RIC_1 = "440604200503151238"  # citizen: a minor penalty and a general (repairable) one
RIC_2 = "440604200807010020"  # citizen-2: a minor penalty
DAY = 86_400
STARTER = (
    __import__("importlib.resources", fromlist=["files"])
    .files("ledger")
    .joinpath("data", "rules", "district-joint-credit.yaml")
    .read_text()
)
BASE_URL = "http://127.0.0.1:8000"


@dataclass
class Holder:
    did: str
    vm: str
    key: Ed25519PrivateKey
    vc: dict[str, Any] | None = None
    token: str = ""

    @classmethod
    def new(cls) -> Holder:
        key = Ed25519PrivateKey.generate()
        did = did_key_from_public_key(key.public_key())
        return cls(did, did_key_vm(did), key)

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def present(self, challenge: str, domain: str) -> dict[str, Any]:
        return sign_presentation(
            build_presentation(self.did, [self.vc] if self.vc else []),
            private_key=self.key,
            verification_method=self.vm,
            challenge=challenge,
            domain=domain,
            created=format_datetime(datetime.now(UTC)),
        )


@dataclass
class Env:
    c: TestClient
    keys: dict[str, Any]
    citizen: Holder
    citizen2: Holder
    bare: Holder  # a DID session without an identity credential (no subject)
    records: dict[str, str] = field(default_factory=dict)

    def as_(self, name: str) -> dict[str, str]:
        return as_(self.c, self.keys, name)

    @property
    def rt(self) -> Any:
        return self.c.app.state.runtime  # type: ignore[attr-defined]

    def pseudonym(self, kind: str, ident: str) -> str:
        return "0x" + self.rt.credit.subject_pseudonym(kind, ident)[1].hex()


def wait(cond: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def write(env: Env, agency: str, **fields: Any) -> str:
    """An agency prepares, signs and submits a record; returns its id once indexed."""
    c, key = env.c, env.keys[agency]["private_key"]
    h = headers(c, key)
    r = c.post("/v1/credit-records/prepare", json=fields, headers=h)
    assert r.status_code == 200, r.text
    prep = r.json()
    rec = record_from_json(prep["record"])
    item = signed_record_to_json(sign_record(rec, bytes.fromhex(key[2:]), env.rt.credit.domain))
    if prep.get("reason"):
        item["reason"] = prep["reason"]
    r = c.post("/v1/credit-records", json=item)
    assert r.status_code == 202, r.text
    rid = str(r.json()["items"][0]["id"])
    wait(lambda: c.get(f"/v1/credit-records/{rid}", headers=h).json().get("indexed"))
    return rid


def issue(env: Env, holder: Holder, ric: str) -> None:
    subject = {
        "id": holder.did,
        "verifiedName": "测试市民",
        "residentIdNumber": ric,
        "residenceDistrict": "禅城区",
    }
    r = env.c.post(
        "/credentials/issue",
        json={"credential": {"credentialSubject": subject}},
        headers=env.as_("issuer"),
    )
    assert r.status_code == 201, r.text
    holder.vc = r.json()["verifiableCredential"]


def sign_in(env: Env, holder: Holder) -> None:
    r = did_sign_in(env.c, holder.did, holder.vm, holder.key, [holder.vc] if holder.vc else None)
    assert r.status_code == 200, r.text
    holder.token = r.json()["token"]


@contextmanager
def people_env(data_dir: Path) -> Iterator[Env]:
    settings = Settings(
        data_dir=data_dir, chain="embedded", dev=True, index_poll_s=0.05, verify_workers=0
    )
    with TestClient(create_app(settings), base_url=BASE_URL) as c:
        keys = json.loads((data_dir / "dev-keys.json").read_text())
        env = Env(c, keys, Holder.new(), Holder.new(), Holder.new())
        r = c.post(
            "/v1/rules/rule-sets",
            content=STARTER,
            headers={"content-type": "application/yaml", **env.as_("rule-publisher")},
        )
        assert r.status_code == 200, r.text
        now = int(time.time())
        past, recent = now - 400 * DAY, now - 100 * DAY
        env.records["black"] = write(
            env,
            "agency-market",
            subject={"kind": "entity", "id": ENTITY_BLACK},
            category="admin_penalty.serious",
            occurredAt=past,
            effectiveFrom=past,
            reason="严重违法 serious violation",
        )
        env.records["red"] = write(
            env,
            "agency-tax",
            subject={"kind": "entity", "id": ENTITY_RED},
            category="tax.grade_a",
            occurredAt=now - 30 * DAY,
            effectiveFrom=now - 30 * DAY,
        )
        env.records["minor"] = write(
            env,
            "agency-market",
            subject={"kind": "person", "id": RIC_1},
            category="admin_penalty.minor",
            occurredAt=now - 20 * DAY,
            effectiveFrom=now - 20 * DAY,
        )
        env.records["general"] = write(
            env,
            "agency-market",
            subject={"kind": "person", "id": RIC_1},
            category="admin_penalty.general",
            occurredAt=recent,
            effectiveFrom=recent,
        )
        env.records["minor2"] = write(
            env,
            "agency-market",
            subject={"kind": "person", "id": RIC_2},
            category="admin_penalty.minor",
            occurredAt=now - 10 * DAY,
            effectiveFrom=now - 10 * DAY,
        )
        r = c.post("/v1/rules/evaluations", json={}, headers=env.as_("rule-publisher"))
        assert r.status_code == 200, r.text
        issue(env, env.citizen, RIC_1)
        issue(env, env.citizen2, RIC_2)
        for h in (env.citizen, env.citizen2, env.bare):
            sign_in(env, h)
        c.cookies.clear()
        yield env
