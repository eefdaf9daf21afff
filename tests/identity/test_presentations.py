"""Presentations, pure: signing, every named check with fake chain callbacks, the holder-key
rule for did:ethr (owner rotation retires old keys), and the single-use ChallengeStore."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.credentials import CHECKS as VC_CHECKS
from identity.credentials import CheckResult, VerificationResult
from identity.did import (
    AttributeChanged,
    ChangeLog,
    OwnerChanged,
    OwnerRecovered,
    bytes32_text,
)
from identity.multikey import did_key_from_public_key, public_key_from_did_key
from identity.multikey import verification_method_id as vm_of
from identity.presentations import (
    CHECKS,
    ChallengeStore,
    InvalidDomain,
    build_presentation,
    holder_key_from_log,
    sign_presentation,
    verify_presentation,
)
from ledger.db import make_engine, migrate
from ledger.errors import InvalidInput, NotFound

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
HOLDER = did_key_from_public_key(KEY.public_key())
VC = {"id": "urn:x", "credentialSubject": {"id": HOLDER}}


def ok_credential(vc: Any) -> VerificationResult:
    return VerificationResult(None, tuple(CheckResult(n, True, "ok", "") for n in VC_CHECKS))


def revoked_credential(vc: Any) -> VerificationResult:
    checks = tuple(
        CheckResult(n, n != "status", "revoked" if n == "status" else "ok", "") for n in VC_CHECKS
    )
    return VerificationResult(None, checks)


class Consumer:
    def __init__(self, answer: str = "ok") -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, challenge: str, domain: str, now: datetime) -> str:
        self.calls.append((challenge, domain))
        return self.answer


def vp(**kw: Any) -> dict[str, Any]:
    return sign_presentation(
        build_presentation(kw.get("holder", HOLDER), kw.get("vcs", [VC])),
        private_key=kw.get("key", KEY),
        verification_method=kw.get("vm", vm_of(HOLDER)),
        challenge="c1",
        domain="d.example",
        created="2026-06-01T00:00:00Z",
    )


def run(doc: object, consumer: Consumer | None = None, **kw: Any) -> Any:
    return verify_presentation(
        doc,
        resolve_holder_key=public_key_from_did_key,
        credential_verifier=kw.pop("cv", ok_credential),
        consume_challenge=consumer or Consumer(),
        now=NOW,
        **kw,
    )


def test_valid_presentation_names_every_check() -> None:
    consumer = Consumer()
    res = run(vp(), consumer)
    assert res.verified and [c.name for c in res.checks] == list(CHECKS)
    assert consumer.calls == [("c1", "d.example")]
    assert res.to_json()["failed"] == [] and res.holder == HOLDER


def test_each_failure_is_named() -> None:
    assert run(vp(), Consumer("challenge-used")).failed == ("challenge",)
    assert run(vp(), cv=revoked_credential).failed == ("status",)
    assert run(vp(), expected_domain="other").check("challenge").code == "domain-mismatch"
    assert run(vp(), expected_challenge="c2").check("challenge").code == "challenge-mismatch"
    other = Ed25519PrivateKey.generate()
    assert run(vp(key=other)).check("holder-proof").code == "invalid-signature"
    stranger = did_key_from_public_key(other.public_key())
    res = run(vp(vcs=[{"credentialSubject": {"id": stranger}}]))
    assert res.failed == ("holder-binding",)
    tampered = vp()
    tampered["verifiableCredential"][0]["id"] = "urn:y"
    assert run(tampered).failed == ("holder-proof",)


def test_malformed_is_not_checked_and_burns_no_challenge() -> None:
    for doc in (None, [], {"@context": []}, {**vp(), "type": ["X"]}, {**vp(), "holder": 1}):
        consumer = Consumer()
        res = run(doc, consumer)
        assert not res.verified and res.failed == CHECKS
        assert consumer.calls == []
    assert run({k: v for k, v in vp().items() if k != "proof"}).check("structure").code == (
        "proof-missing"
    )
    consumer = Consumer()
    res = run({**vp(), "proof": None}, consumer)
    assert res.failed == ("holder-proof", "challenge") and consumer.calls == []


def test_sign_refuses_foreign_key() -> None:
    with pytest.raises(InvalidInput):
        sign_presentation(
            build_presentation(HOLDER, [VC]),
            private_key=KEY,
            verification_method="did:key:zOther#zOther",
            challenge="c",
            domain="d",
            created="2026-06-01T00:00:00Z",
        )
    with pytest.raises(InvalidInput):
        build_presentation(HOLDER, [])


# ---- did:ethr holder keys from a change log ----

IDENT = "0x" + "ab" * 20
DID = f"did:ethr:0x1:{IDENT}"
ATTR = bytes32_text("did/pub/Ed25519/sigAuth/base58")


def _attr(block: int, key: Ed25519PrivateKey) -> AttributeChanged:
    raw = key.public_key().public_bytes_raw()
    return AttributeChanged(block, 0, IDENT, 0, name=ATTR, value=raw, valid_to=2**40)


def test_holder_key_rules() -> None:
    k1, k2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ts = {b: 1_700_000_000 + b for b in range(10)}
    log = ChangeLog(IDENT, 1, (_attr(1, k1),), ts)
    assert holder_key_from_log(f"{DID}#delegate-1", log, NOW) is not None
    rotated = ChangeLog(
        IDENT, 1, (_attr(1, k1), OwnerChanged(2, 0, IDENT, 1, owner="0x" + "cd" * 20)), ts
    )
    with pytest.raises(NotFound, match="current owner"):
        holder_key_from_log(f"{DID}#delegate-1", rotated, NOW)
    republished = ChangeLog(IDENT, 1, (*rotated.events, _attr(3, k2)), ts)
    assert holder_key_from_log(f"{DID}#delegate-2", republished, NOW) is not None
    recovered = ChangeLog(
        IDENT,
        1,
        (
            *republished.events,
            OwnerChanged(4, 0, IDENT, 3, owner="0x" + "ef" * 20),
            OwnerRecovered(4, 1, IDENT, 3, owner="0x" + "ef" * 20, issuer=IDENT, evidence_hash=b""),
        ),
        ts,
    )
    with pytest.raises(NotFound):
        holder_key_from_log(f"{DID}#delegate-2", recovered, NOW)


# ---- challenge store ----


@pytest.fixture
def store(tmp_path: Path) -> ChallengeStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    return ChallengeStore(engine, ttl=timedelta(minutes=5))


def test_challenge_lifecycle(store: ChallengeStore) -> None:
    ch = store.issue("bank.example", NOW)
    assert store.consume(ch.challenge, "shop.example", NOW) == "domain-mismatch"
    assert store.consume(ch.challenge, "bank.example", NOW) == "ok"
    assert store.consume(ch.challenge, "bank.example", NOW) == "challenge-used"
    assert store.consume("nope", "bank.example", NOW) == "unknown-challenge"
    late = store.issue("bank.example", NOW)
    assert store.consume(late.challenge, "bank.example", NOW + timedelta(minutes=6)) == (
        "challenge-expired"
    )
    assert store.purge(NOW + timedelta(hours=2)) == 2
    for bad in ("", "a b", "x" * 300):
        with pytest.raises(InvalidDomain):
            store.issue(bad, NOW)


def test_challenge_single_use_under_concurrency(store: ChallengeStore) -> None:
    chs = store.issue_many("bank.example", NOW, 20)
    wins: list[str] = []
    lock = threading.Lock()

    def race(c: str) -> None:
        if store.consume(c, "bank.example", NOW) == "ok":
            with lock:
                wins.append(c)

    threads = [threading.Thread(target=race, args=(c.challenge,)) for c in chs for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == sorted(c.challenge for c in chs)
