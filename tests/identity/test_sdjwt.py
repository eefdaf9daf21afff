"""SD-JWT VC selective disclosure (identity/sdjwt.py), pure: issue, present only chosen
claims with a key binding, verify; and each defect as its named failed check."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from identity.sdjwt import (
    CHECKS,
    SdJwtError,
    disclosure_digest,
    encode_disclosure,
    issue_sd_jwt,
    present_sd_jwt,
    verify_sd_jwt,
)
from ledger.errors import NotFound

RIC = "11010519491231002X"  # born 1949-12-31
ISSUER = "did:ethr:0x7a69:0x" + "11" * 20
ISSUER_ACCOUNT = "0x" + "11" * 20
VM = ISSUER + "#delegate-1"
HOLDER = "did:key:z6Mkholder"
HOLDER_VM = HOLDER + "#z6Mkholder"
AUD = "bank.example"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REV = "http://x/credentials/status-lists/1"
SUS = "http://x/credentials/status-lists/2"


class Challenges:
    """ChallengeStore.consume semantics in memory."""

    def __init__(self) -> None:
        self.issued: dict[str, str] = {}
        self.used: set[str] = set()

    def issue(self, domain: str = AUD) -> str:
        nonce = f"n{len(self.issued)}"
        self.issued[nonce] = domain
        return nonce

    def consume(self, challenge: str, domain: str, now: datetime) -> str:
        if challenge not in self.issued:
            return "unknown-challenge"
        if self.issued[challenge] != domain:
            return "domain-mismatch"
        if challenge in self.used:
            return "challenge-used"
        self.used.add(challenge)
        return "ok"


class World:
    def __init__(self) -> None:
        self.issuer_key = Ed25519PrivateKey.generate()
        self.holder_key = Ed25519PrivateKey.generate()
        self.challenges = Challenges()
        self.bits: dict[tuple[str, int], bool] = {}
        self.roles = {ISSUER_ACCOUNT}

    def issue(self, **over: Any) -> str:
        args: dict[str, Any] = {
            "issuer": ISSUER,
            "verification_method": VM,
            "private_key": self.issuer_key,
            "holder": HOLDER,
            "holder_key": self.holder_key.public_key(),
            "holder_key_id": HOLDER_VM,
            "verified_name": "张三",
            "resident_id_number": RIC,
            "residence_district": "禅城区",
            "district_code": "440604",
            "verification_level": "in-person",
            "valid_from": NOW - timedelta(days=1),
            "valid_until": NOW + timedelta(days=365),
            "now": NOW - timedelta(days=1),
            "status": {
                "bitstring_status_list": {
                    "revocation": {"uri": REV, "idx": 7},
                    "suspension": {"uri": SUS, "idx": 7},
                }
            },
        }
        args.update(over)
        return issue_sd_jwt(**args)

    def present(
        self, sd: str, disclose: tuple[str, ...] = ("age_over_18", "resident_of"), **kw: Any
    ) -> str:
        return present_sd_jwt(
            sd,
            disclose=disclose,
            holder_key=kw.get("key", self.holder_key),
            nonce=kw.get("nonce") or self.challenges.issue(),
            aud=kw.get("aud", AUD),
            now=kw.get("at", NOW),
        )

    def status_bit(self, iss: str, purpose: str, uri: str, idx: int) -> bool:
        if iss != ISSUER or uri != {"revocation": REV, "suspension": SUS}[purpose]:
            raise LookupError(uri)
        return self.bits.get((uri, idx), False)

    def resolve_issuer(self, vm: str) -> Ed25519PublicKey:
        if vm != VM:
            raise NotFound("no such key")
        return self.issuer_key.public_key()

    def verify(self, p: object, **kw: Any) -> Any:
        return verify_sd_jwt(
            p,
            resolve_issuer_key=self.resolve_issuer,
            has_issuer_role=lambda a: a in self.roles,
            consume_challenge=self.challenges.consume,
            now=kw.get("now", NOW),
            expected_aud=kw.get("expected_aud", AUD),
            status_bit=self.status_bit,
            resolve_holder_key=kw.get("resolve_holder_key"),
        )


def _code(res: Any, name: str) -> str:
    return str(res.check(name).code)


def _b64(obj: Any) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _undisclose(d: str) -> list[Any]:
    return json.loads(base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)))  # type: ignore[no-any-return]


@pytest.fixture
def w() -> World:
    return World()


def test_present_only_age_and_residence(w: World) -> None:
    sd = w.issue()
    p = w.present(sd)
    res = w.verify(p)
    assert res.verified, res.to_json()
    assert [c.name for c in res.checks] == list(CHECKS)
    assert dict(res.disclosed) == {"age_over_18": True, "resident_of": "440604"}
    out = res.to_json()
    assert out["disclosed"] == {"age_over_18": True, "resident_of": "440604"}
    assert out["holder"] == HOLDER and out["verificationLevel"] == "in-person"
    # nothing else reaches the verifier: not the number, the name, the birth date
    jwt, *disclosures, kb = p.split("~")
    payload = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    revealed = [_undisclose(d) for d in disclosures]
    text = json.dumps([payload, revealed], ensure_ascii=False)
    for secret in (RIC, "张三", "1949-12-31", "禅城区", "19491231"):
        assert secret not in text
    assert {r[1] for r in revealed} == {"age_over_18", "resident_of"}
    assert len(payload["_sd"]) == 6 + 2  # six claims and two decoys
    assert kb.count(".") == 2


def test_issuer_disclosures_and_digests(w: World) -> None:
    sd = w.issue()
    jwt, *disclosures, last = sd.split("~")
    assert last == ""
    payload = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    assert payload["_sd_alg"] == "sha-256"
    claims = {}
    for d in disclosures:
        assert disclosure_digest(d) in payload["_sd"]
        expected = base64.urlsafe_b64encode(hashlib.sha256(d.encode()).digest()).rstrip(b"=")
        assert disclosure_digest(d) == expected.decode()
        salt, name, value = _undisclose(d)
        assert isinstance(salt, str) and len(salt) >= 16
        claims[name] = value
    assert claims == {
        "verified_name": "张三",
        "resident_id_number": RIC,
        "birthdate": "1949-12-31",
        "residence_district": "禅城区",
        "age_over_18": True,
        "resident_of": "440604",
    }


def test_minor_is_not_over_18(w: World) -> None:
    minor = "11010520100101001" + "X"
    from stdnum.cn import ric

    minor = minor[:17] + ric.calc_check_digit(minor)
    sd = w.issue(resident_id_number=minor)
    res = w.verify(w.present(sd, ("age_over_18",)))
    assert res.verified and res.disclosed == {"age_over_18": False}


def test_bad_id_number_refused(w: World) -> None:
    with pytest.raises(SdJwtError):
        w.issue(resident_id_number="110105194912310021")


def test_tampered_disclosure(w: World) -> None:
    sd = w.issue()
    jwt, *ds, _ = sd.split("~")
    i = next(k for k, d in enumerate(ds) if _undisclose(d)[1] == "resident_of")
    salt, name, _v = _undisclose(ds[i])
    forged = _b64([salt, name, "440605"])  # same salt and name, another district
    p = present_sd_jwt(
        "~".join([jwt, forged, ""]),
        disclose=("resident_of",),
        holder_key=w.holder_key,
        nonce=w.challenges.issue(),
        aud=AUD,
        now=NOW,
    )
    res = w.verify(p)
    assert res.failed == ("disclosures",)
    assert _code(res, "disclosures") == "unknown-disclosure"
    assert res.to_json()["disclosed"] == {}


def test_dropped_kb_jwt(w: World) -> None:
    p = w.present(w.issue())
    res = w.verify(p[: p.rindex("~") + 1])
    assert res.failed == ("key-binding", "challenge")
    assert _code(res, "key-binding") == "kb-missing"


def test_wrong_nonce(w: World) -> None:
    res = w.verify(w.present(w.issue(), nonce="never-issued"))
    assert res.failed == ("challenge",) and _code(res, "challenge") == "unknown-challenge"


def test_wrong_aud(w: World) -> None:
    res = w.verify(w.present(w.issue(), aud="evil.example"))
    assert res.failed == ("challenge",) and _code(res, "challenge") == "aud-mismatch"
    # without an expected domain the store refuses a challenge issued for another domain
    res = w.verify(w.present(w.issue(), aud="evil.example"), expected_aud=None)
    assert _code(res, "challenge") == "domain-mismatch"


def test_reused_nonce(w: World) -> None:
    sd = w.issue()
    nonce = w.challenges.issue()
    assert w.verify(w.present(sd, nonce=nonce)).verified
    res = w.verify(w.present(sd, nonce=nonce))
    assert res.failed == ("challenge",) and _code(res, "challenge") == "challenge-used"


def test_expired_and_not_yet_valid(w: World) -> None:
    sd = w.issue(valid_until=NOW - timedelta(seconds=1))
    res = w.verify(w.present(sd))
    assert res.failed == ("validity",) and _code(res, "validity") == "expired"
    sd = w.issue(valid_from=NOW + timedelta(days=1), valid_until=NOW + timedelta(days=2))
    assert _code(w.verify(w.present(sd)), "validity") == "not-yet-valid"


def test_stale_kb_jwt(w: World) -> None:
    res = w.verify(w.present(w.issue(), at=NOW - timedelta(minutes=10)))
    assert _code(res, "key-binding") == "kb-stale"


def test_other_holder_key(w: World) -> None:
    res = w.verify(w.present(w.issue(), key=Ed25519PrivateKey.generate()))
    assert res.failed == ("key-binding",) and _code(res, "key-binding") == "kb-signature"


def test_holder_key_no_longer_authorized(w: World) -> None:
    def gone(vm: str) -> Ed25519PublicKey:
        raise NotFound("rotated")

    res = w.verify(w.present(w.issue()), resolve_holder_key=gone)
    assert _code(res, "key-binding") == "holder-key-revoked"
    ok = w.verify(w.present(w.issue()), resolve_holder_key=lambda vm: w.holder_key.public_key())
    assert ok.verified


def test_extra_disclosure_not_in_sd(w: World) -> None:
    sd = w.issue()
    jwt, *ds, _ = sd.split("~")
    extra = encode_disclosure("c2FsdHNhbHRzYWx0", "age_over_65", True)
    p = present_sd_jwt(
        "~".join([jwt, *ds, extra, ""]),
        disclose=("age_over_18", "age_over_65"),
        holder_key=w.holder_key,
        nonce=w.challenges.issue(),
        aud=AUD,
        now=NOW,
    )
    res = w.verify(p)
    assert res.failed == ("disclosures",) and _code(res, "disclosures") == "unknown-disclosure"
    assert res.to_json()["disclosed"] == {}


def test_duplicate_disclosure(w: World) -> None:
    sd = w.issue()
    jwt, *ds, _ = sd.split("~")
    age = next(d for d in ds if _undisclose(d)[1] == "age_over_18")
    prefix = "~".join([jwt, age, age, ""])
    p = present_sd_jwt(
        prefix, disclose=("age_over_18",), holder_key=w.holder_key, nonce="x", aud=AUD, now=NOW
    )
    # present_sd_jwt keeps the first only; build the duplicate by hand with a fresh KB-JWT
    kb = p.rsplit("~", 1)[1]
    res = w.verify(prefix + kb)
    assert _code(res, "disclosures") == "duplicate-disclosure"


def test_tampered_issuer_payload(w: World) -> None:
    p = w.present(w.issue())
    jwt, rest = p.split("~", 1)
    h, body, sig = jwt.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["exp"] += 10**6
    forged = ".".join([h, _b64(payload), sig])
    res = w.verify(forged + "~" + rest)
    assert _code(res, "issuer-signature") == "bad-signature"
    assert _code(res, "key-binding") == "sd-hash-mismatch"


def test_issuer_without_role_and_unknown_key(w: World) -> None:
    w.roles.clear()
    res = w.verify(w.present(w.issue()))
    assert res.failed == ("issuer-role",) and _code(res, "issuer-role") == "not-issuer"
    res = w.verify(w.present(w.issue(verification_method=ISSUER + "#other")))
    assert _code(res, "issuer-signature") == "unresolved-key"


def test_revoked_and_suspended(w: World) -> None:
    sd = w.issue()
    w.bits[(SUS, 7)] = True
    assert _code(w.verify(w.present(sd)), "status") == "suspended"
    w.bits[(REV, 7)] = True
    assert _code(w.verify(w.present(sd)), "status") == "revoked"
    res = w.verify(w.present(w.issue(status=None)))
    assert res.failed == ("status",) and _code(res, "status") == "no-status"
    other = {
        "bitstring_status_list": {
            "revocation": {"uri": SUS, "idx": 1},
            "suspension": {"uri": SUS, "idx": 1},
        }
    }
    assert _code(w.verify(w.present(w.issue(status=other))), "status") == "unknown-status-list"


@pytest.mark.parametrize(
    "bad", [None, 42, "", "~", "a.b.c~", "not-a-jwt~x~", "é~", "x" * 70_000, "a.b~"]
)
def test_malformed_never_raises(w: World, bad: object) -> None:
    res = w.verify(bad)
    assert not res.verified and res.failed[0] == "structure"
    assert len(res.checks) == len(CHECKS)
    assert not w.challenges.used


def test_garbage_disclosure_and_kb(w: World) -> None:
    p = w.present(w.issue())
    jwt, *ds, kb = p.split("~")
    res = w.verify("~".join([jwt, "!!", kb]))
    assert _code(res, "disclosures") == "malformed-disclosure"
    res = w.verify("~".join([jwt, *ds, "e30.e30.AA"]))
    assert _code(res, "key-binding") == "kb-malformed"
    assert _code(res, "challenge") == "challenge-missing"


def test_deeply_nested_input_never_raises(w: World) -> None:
    p = w.present(w.issue())
    jwt, *ds, kb = p.split("~")
    deep = base64.urlsafe_b64encode(b"[" * 5_000).rstrip(b"=").decode()
    res = w.verify("~".join([jwt, deep, kb]))
    assert _code(res, "disclosures") == "malformed-disclosure"
    res = w.verify("~".join([jwt, *ds, deep + "." + deep + "." + "A" * 86]))
    assert _code(res, "key-binding") == "kb-malformed"
    res = w.verify(deep + "." + deep + "." + "A" * 86 + "~")
    assert _code(res, "structure") == "malformed"


def test_holder_kid_required_when_rechecked(w: World) -> None:
    sd = w.issue(holder_key_id=None)
    res = w.verify(w.present(sd), resolve_holder_key=lambda vm: w.holder_key.public_key())
    assert _code(res, "key-binding") == "no-holder-kid"
    assert w.verify(w.present(sd)).verified  # without the re-check the cnf key suffices


def test_present_refuses_what_was_not_issued(w: World) -> None:
    with pytest.raises(SdJwtError):
        w.present(w.issue(), ("age_over_65",))
    with pytest.raises(SdJwtError):
        w.present(w.present(w.issue()), ("age_over_18",))
