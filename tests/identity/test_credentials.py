"""Identity credentials: build, sign, hash, verify with every check named; and the issuer
adapter end to end on a real chain (sign, anchor, revoke, suspend, verify from chain state)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from identity.credentials import (
    CHECKS,
    Anchor,
    ChainRegistryView,
    CredentialError,
    CredentialRegistryClient,
    IssuerService,
    anchor_request,
    build_identity_credential,
    credential_hash,
    issue_credential,
    issuer_account,
    issuer_did,
    subject_did_hash,
    verify_credential,
)
from identity.jsonld import ZHIXIN_IDENTITY_CONTEXT
from identity.multikey import did_key_from_public_key
from identity.status import (
    MIN_ENTRIES,
    bitstring_from_indexes,
    check_status,
    list_id_from_url,
    status_list_credential,
    status_list_url,
)
from ledger.chain import Chain, Sender, new_account
from ledger.deploy import Deployment, decoder
from ledger.errors import ContractReverted
from ledger.roles import Role, RolesClient

RIC = "11010519491231002X"  # GB 11643-1999's own example
BASE = "https://zhixin.example/status"
ACCOUNT = "0x00000000000000000000000000000000000000AA"
ISSUER = issuer_did(ACCOUNT)
VM = ISSUER + "#key-1"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
HOLDER = did_key_from_public_key(
    Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
REV, SUS = 1, 2


def resolve_key(vm: str) -> Ed25519PublicKey:
    if vm != VM:
        raise LookupError("unknown verification method")
    return KEY.public_key()


@dataclass
class FakeRegistry:
    """An in-memory RegistryView: what the chain would answer."""

    issuers: set[str] = field(default_factory=lambda: {ACCOUNT})
    anchors: dict[bytes, Anchor] = field(default_factory=dict)
    bits: dict[int, set[int]] = field(default_factory=lambda: {REV: set(), SUS: set()})

    def has_issuer_role(self, account: str) -> bool:
        return account in self.issuers

    def anchor_of(self, credential_hash: bytes) -> Anchor | None:
        return self.anchors.get(credential_hash)

    def status_bit(self, list_id: int, index: int) -> bool:
        return index in self.bits[list_id]

    def status_list_credential(self, url: str) -> Mapping[str, Any]:
        list_id = list_id_from_url(BASE, url)
        if list_id not in self.bits:
            raise LookupError(url)
        return status_list_credential(
            url=url,
            issuer=ISSUER,
            purpose="revocation" if list_id == REV else "suspension",
            bitstring=bitstring_from_indexes(MIN_ENTRIES, self.bits[list_id]),
            valid_from=T0,
        )

    def anchor(self, vc: Mapping[str, Any], account: str = ACCOUNT) -> None:
        try:
            req = anchor_request(vc, REV)
        except CredentialError:  # no usable revocation entry: anchor without status
            req = anchor_request(vc, 0)
        self.anchors[req.credential_hash] = Anchor(
            account,
            req.subject_did_hash,
            req.valid_from,
            req.valid_until,
            1,  # anchoredAt
            req.status_list_id,
            req.status_index,
        )


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        issuer=ISSUER,
        holder=HOLDER,
        verified_name="张三",
        resident_id_number=RIC,
        verification_level="in-person",
        residence_district="禅城区",
        valid_from=T0,
        valid_until=T0 + timedelta(days=365),
        status_index=42,
        revocation_list_url=status_list_url(BASE, REV),
        suspension_list_url=status_list_url(BASE, SUS),
    )
    base.update(over)
    return base


def signed(unsigned: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return issue_credential(
        unsigned or build_identity_credential(**claims()),
        private_key=kw.get("key", KEY),
        verification_method=kw.get("vm", VM),
        cryptosuite=kw.get("cryptosuite", "eddsa-jcs-2022"),
        created="2025-01-01T00:00:00Z",
    )


def verify(vc: Any, reg: FakeRegistry, now: datetime = NOW) -> Any:
    return verify_credential(vc, resolve_key=resolve_key, registry_view=reg, now=now)


def codes(result: Any) -> dict[str, str]:
    return {c.name: c.code for c in result.checks}


ALL_OK = dict.fromkeys(CHECKS, "ok")


def test_build_shape() -> None:
    vc = build_identity_credential(**claims(resident_id_number="110105 19491231 002x"))
    assert vc["@context"] == ["https://www.w3.org/ns/credentials/v2", ZHIXIN_IDENTITY_CONTEXT]
    assert vc["type"] == ["VerifiableCredential", "ZhixinIdentityCredential"]
    assert (vc["issuer"], vc["validFrom"], vc["validUntil"]) == (
        ISSUER,
        "2025-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
    )
    assert vc["credentialSubject"] == {
        "id": HOLDER,
        "verifiedName": "张三",
        "residentIdNumber": RIC,  # normalized
        "verificationLevel": "in-person",
        "residenceDistrict": "禅城区",
    }
    assert [(e["statusPurpose"], e["statusListIndex"]) for e in vc["credentialStatus"]] == [
        ("revocation", "42"),
        ("suspension", "42"),
    ]


@pytest.mark.parametrize(
    "over",
    [
        {"resident_id_number": "110105194912310021"},  # wrong check digit
        {"verification_level": "video"},
        {"holder": "not a did"},
        {"issuer": ""},
        {"verified_name": "  "},
        {"valid_until": T0},
        {"valid_from": datetime(2025, 1, 1)},  # naive
        {"status_index": -1},
        {"suspension_list_url": status_list_url(BASE, REV)},
    ],
)
def test_build_rejects_bad_claims(over: dict[str, Any]) -> None:
    with pytest.raises(CredentialError) as e:
        build_identity_credential(**claims(**over))
    assert RIC not in str(e.value)


def test_issue_requires_issuer_key_and_hash_is_of_signed_form() -> None:
    with pytest.raises(CredentialError):
        signed(vm="did:ethr:0x00000000000000000000000000000000000000BB#key-1")
    vc = signed()
    assert credential_hash(vc) == credential_hash(copy.deepcopy(vc))
    assert credential_hash(vc) != credential_hash({k: v for k, v in vc.items() if k != "proof"})
    req = anchor_request(vc, REV)
    assert req.subject_did_hash == subject_did_hash(HOLDER)
    assert (req.valid_from, req.status_list_id, req.status_index) == (
        int(T0.timestamp()),
        REV,
        42,
    )
    assert issuer_account(ISSUER) == ACCOUNT
    assert issuer_account("did:ethr:0x5:" + ACCOUNT.lower()) == ACCOUNT
    assert issuer_account(HOLDER) is None


@pytest.mark.parametrize("suite", ["eddsa-jcs-2022", "eddsa-rdfc-2022"])
def test_valid_credential_passes_every_check(suite: str) -> None:
    reg = FakeRegistry()
    vc = signed(cryptosuite=suite)
    reg.anchor(vc)
    result = verify(vc, reg)
    assert result.verified and codes(result) == ALL_OK
    assert result.credential_hash == credential_hash(vc)
    assert result.to_json()["checks"][1]["cryptosuite"] == suite


def test_tampered_claim_fails_proof_and_anchor() -> None:
    reg = FakeRegistry()
    vc = signed()
    reg.anchor(vc)
    vc["credentialSubject"]["residenceDistrict"] = "南海区"
    result = verify(vc, reg)
    assert result.failed == ("proof", "anchor")
    assert codes(result)["proof"] == "invalid-signature"
    assert codes(result)["anchor"] == "not-anchored"
    assert "南海区" not in str(result.to_json())


def test_expired_and_not_yet_valid_fail_validity() -> None:
    reg = FakeRegistry()
    vc = signed()
    reg.anchor(vc)
    late = verify(vc, reg, now=T0 + timedelta(days=366))
    assert late.failed == ("validity",) and codes(late)["validity"] == "expired"
    early = verify(vc, reg, now=T0 - timedelta(seconds=1))
    assert early.failed == ("validity",) and codes(early)["validity"] == "not-yet-valid"


def test_revoked_and_suspended_fail_status() -> None:
    reg = FakeRegistry()
    vc = signed()
    reg.anchor(vc)
    reg.bits[SUS].add(42)
    res = verify(vc, reg)
    assert res.failed == ("status",)
    st = res.check("status")
    assert (st.code, st.details["purpose"], st.details["index"]) == ("suspended", "suspension", 42)
    reg.bits[SUS].clear()
    assert verify(vc, reg).verified
    reg.bits[REV].add(42)
    st = verify(vc, reg).check("status")
    assert (st.code, st.details["index"]) == ("revoked", 42)


def test_issuer_without_role_fails_issuer_role() -> None:
    reg = FakeRegistry(issuers=set())
    vc = signed()
    reg.anchor(vc)
    res = verify(vc, reg)
    assert res.failed == ("issuer-role",) and codes(res)["issuer-role"] == "not-issuer"


def test_anchor_by_another_account_or_other_key_fails() -> None:
    reg = FakeRegistry()
    vc = signed()
    reg.anchor(vc, account="0x00000000000000000000000000000000000000BB")
    assert codes(verify(vc, reg))["anchor"] == "issuer-mismatch"
    # a key that is not the issuer's, claiming the issuer's verification method
    forged = signed(key=Ed25519PrivateKey.from_private_bytes(bytes(32)))
    reg.anchor(forged)
    assert codes(verify(forged, reg))["proof"] == "invalid-signature"
    # an issuer DID that names no chain account
    other = did_key_from_public_key(KEY.public_key())
    vc2 = build_identity_credential(**claims(issuer=other))
    vc2 = issue_credential(
        vc2,
        private_key=KEY,
        verification_method=other + "#" + other.split(":")[-1],
        created="2025-01-01T00:00:00Z",
    )
    res = verify_credential(
        vc2,
        resolve_key=lambda vm: KEY.public_key(),
        registry_view=reg,
        now=NOW,
    )
    assert codes(res)["issuer-role"] == "no-chain-account"


@pytest.mark.parametrize(
    "mutate, check, code",
    [
        (lambda vc: vc.pop("proof"), "proof", "proof-missing"),
        (lambda vc: vc.update(credentialStatus=[{"type": "X"}]), "status", "wrong-type"),
        (
            lambda vc: vc["credentialStatus"][0].update(statusListIndex=str(MIN_ENTRIES)),
            "status",
            "index-out-of-range",
        ),
        (
            lambda vc: vc["credentialStatus"][1].update(statusPurpose="revocation"),
            "status",
            "purpose-mismatch",
        ),
        (
            lambda vc: vc["credentialStatus"][0].update(statusListCredential=BASE + "/9"),
            "status",
            "retrieval-failed",
        ),
        (lambda vc: vc.update(credentialStatus=[]), "status", "no-status"),
        (
            lambda vc: vc.update(credentialStatus=vc["credentialStatus"][:1]),
            "status",
            "missing-entry",
        ),
    ],
)
def test_status_edge_cases_are_precise(mutate: Any, check: str, code: str) -> None:
    reg = FakeRegistry()
    unsigned = build_identity_credential(**claims())
    proofless = check == "proof"
    if not proofless:
        mutate(unsigned)
    vc = signed(unsigned)
    if proofless:
        mutate(vc)
    reg.anchor(vc)
    assert codes(verify(vc, reg))[check] == code


@pytest.mark.parametrize(
    "vc",
    [
        None,
        "a string",
        [],
        {},
        {"@context": "https://www.w3.org/ns/credentials/v2"},
        {"@context": ["https://www.w3.org/ns/credentials/v2", ZHIXIN_IDENTITY_CONTEXT]},
    ],
)
def test_malformed_input_never_raises(vc: Any) -> None:
    res = verify(vc, FakeRegistry())
    assert not res.verified and codes(res)["structure"] != "ok"
    assert {codes(res)[n] for n in CHECKS[1:]} == {"not-checked"}


def test_malformed_claims_fail_structure_without_leaking() -> None:
    reg = FakeRegistry()
    for path, value, code in [
        ("residentIdNumber", "110105194912310021", "resident-id"),
        ("residentIdNumber", 11010519, "resident-id"),
        ("verificationLevel", "video", "subject"),
        ("id", "holder", "subject"),
    ]:
        vc = signed()
        vc["credentialSubject"][path] = value
        res = verify(vc, reg)
        assert codes(res)["structure"] == code
        assert "110105194912310021" not in str(res.to_json())
    vc = signed()
    vc["validUntil"] = "tomorrow"
    assert codes(verify(vc, reg))["structure"] == "dates"


# ---- end to end on a real chain ----


def test_issuer_service_end_to_end(chain: Chain, governor: Sender, deployment: Deployment) -> None:
    roles = RolesClient(chain, deployment.address("Roles"))
    reg = CredentialRegistryClient(chain, deployment.address("CredentialRegistry"))
    account = Sender(chain, new_account(), decoder())
    roles.grant(governor, Role.ISSUER, account.address)
    rev = reg.create_status_list(account, "revocation")
    sus = reg.create_status_list(account, "suspension")
    key = Ed25519PrivateKey.generate()
    svc = IssuerService(
        sender=account,
        registry=reg,
        private_key=key,
        key_id="key-1",
        status_base_url=BASE,
        revocation_list_id=rev,
        suspension_list_id=sus,
        chain_id=chain.chain_id,
    )
    view = ChainRegistryView(reg, roles, BASE, chain_id=chain.chain_id)

    def resolve(vm: str) -> Ed25519PublicKey:
        if vm != svc.verification_method:
            raise LookupError(vm)
        return key.public_key()

    def run(vc: Any) -> Any:
        return verify_credential(vc, resolve_key=resolve, registry_view=view, now=NOW)

    c = claims()
    for k in ("issuer", "revocation_list_url", "suspension_list_url"):
        c.pop(k)
    c["created"] = "2025-01-01T00:00:00Z"
    issued = svc.issue(**c)
    print(f"\nissue (sign + anchor) {issued.tx.gas_used} gas")
    assert run(issued.credential).verified
    assert reg.anchor_of(issued.credential_hash) is not None
    batch = [svc.sign(**dict(c, status_index=100 + i)) for i in range(3)]
    svc.anchor_many(batch)
    assert all(run(vc).verified for vc in batch)

    assert svc.suspend(issued.credential) is True
    assert codes(run(issued.credential))["status"] == "suspended"
    # the published (signed) list agrees with the chain, for any third-party verifier
    published = svc.publish_status_list(sus, valid_from=T0, created="2025-06-01T00:00:00Z")
    rep = check_status(
        issued.credential["credentialStatus"][1], lambda u: published, resolve_key=resolve, now=NOW
    )
    assert rep.suspended and rep.entries[0].index == 42
    assert svc.suspend(issued.credential, False) is True
    assert run(issued.credential).verified
    assert svc.revoke(issued.credential) is True
    assert codes(run(issued.credential))["status"] == "revoked"
    with pytest.raises(ContractReverted) as e:
        reg.set_status(account, rev, 42, False)
    assert e.value.error_name == "CredentialRegistryRevocationFinal"
    # the issuer loses its role: its credentials stop verifying, and it cannot write any more
    roles.revoke(governor, Role.ISSUER, account.address)
    assert codes(run(batch[0]))["issuer-role"] == "not-issuer"
    with pytest.raises(ContractReverted) as e:
        svc.suspend(batch[0])
    assert e.value.error_name == "CredentialRegistryUnauthorized"
