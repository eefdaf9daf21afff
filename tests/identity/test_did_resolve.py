"""did:ethr resolution: DID parsing, the pure document builder, and resolution from a real chain.

The pure tests feed :func:`build_resolution` hand-made change logs; the chain tests (both
backends) check that what the registry records resolves as the did:ethr method spec says:
after key rotation and after ISSUER recovery the new key is the controller and the old one is
gone, and an Ed25519 key published as an attribute is a Multikey assertion method until it is
revoked or expires.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_utils import keccak, to_checksum_address

from identity.did import (
    ED25519_VERIKEY_ATTRIBUTE,
    SIGAUTH,
    VERIKEY,
    ZERO_ADDRESS,
    AttributeChanged,
    ChangeLog,
    DelegateChanged,
    DidChainMismatch,
    DIDEvent,
    DIDRegistryClient,
    InvalidDidEthr,
    OwnerChanged,
    OwnerRecovered,
    UnsupportedDidMethod,
    build_resolution,
    bytes32_text,
    did_ethr,
    key_resolver,
    parse_did_ethr,
    resolve,
    resolve_did_ethr,
)
from identity.multikey import did_key_from_public_key, encode_public_multikey
from identity.proofs import add_proof, verify_proof
from ledger.chain import Chain, Sender, new_account
from ledger.deploy import Deployment, decoder
from ledger.errors import InvalidInput, NotFound
from ledger.roles import Role, RolesClient

CHAIN_ID = 20170623
IDENT = to_checksum_address("0x8d4ab8f1df2a7c3c4f5b8c0e2b5b3f1ad1c2e3f4")
OWNER2 = "0x1111111111111111111111111111111111111111"
DELEGATE = "0x2222222222222222222222222222222222222222"
DID = did_ethr(IDENT, CHAIN_ID)
NOW = 1_800_000_000


def _ed25519() -> tuple[Ed25519PrivateKey, bytes]:
    sk = Ed25519PrivateKey.generate()
    return sk, sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# ---- DID syntax ---------------------------------------------------------------------------


def test_parse_did_ethr_forms() -> None:
    addr = IDENT.lower()
    assert f"did:ethr:{hex(CHAIN_ID)}:{addr}" == DID
    assert parse_did_ethr(f"did:ethr:{addr}", CHAIN_ID) == IDENT  # this chain implied
    for network in (hex(CHAIN_ID), str(CHAIN_ID), "0x0" + hex(CHAIN_ID)[2:]):
        assert parse_did_ethr(f"did:ethr:{network}:{addr}", CHAIN_ID) == IDENT
    # the method spec makes the address case-insensitive
    assert parse_did_ethr("did:ethr:0x" + addr[2:].upper(), CHAIN_ID) == IDENT


@pytest.mark.parametrize(
    ("did", "error", "needle"),
    [
        (f"did:ethr:0x1:{IDENT}", DidChainMismatch, "chain id 1"),
        (f"did:ethr:mainnet:{IDENT}", DidChainMismatch, "chain id 1"),
        (f"did:ethr:31337:{IDENT}", DidChainMismatch, "chain id 31337"),
        (f"did:ethr:somenet:{IDENT}", DidChainMismatch, "unknown network"),
        (f"did:ethr:{IDENT}#controller", InvalidDidEthr, "DID URL"),
        (f"did:ethr:{IDENT[:-1]}", InvalidDidEthr, "40 hex digits"),
        ("did:ethr:0x" + "02" * 33, InvalidDidEthr, "public-key"),
        (f"did:ethr:a:b:{IDENT}", InvalidDidEthr, "did:ethr:[<network>:]"),
        (f"did:key:{IDENT}", InvalidDidEthr, "not a did:ethr"),
    ],
)
def test_parse_did_ethr_rejects(did: str, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]")):
        parse_did_ethr(did, CHAIN_ID)
    assert issubclass(error, InvalidInput)


def test_resolve_dispatch() -> None:
    sk = Ed25519PrivateKey.from_private_bytes(bytes(32))
    did_key = did_key_from_public_key(sk.public_key())
    res = resolve(did_key)
    assert res.did_document["id"] == did_key
    assert res.ed25519_key(res.did_document["assertionMethod"][0]).public_bytes(
        Encoding.Raw, PublicFormat.Raw
    ) == sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with pytest.raises(UnsupportedDidMethod, match="'web'"):
        resolve("did:web:example.org")
    with pytest.raises(InvalidInput):
        resolve("not-a-did")


# ---- pure document building ---------------------------------------------------------------


def _log(*events: DIDEvent, ts: dict[int, int] | None = None) -> ChangeLog:
    stamps = ts or {e.block_number: NOW - 1000 + e.block_number for e in events}
    return ChangeLog(IDENT, CHAIN_ID, events, stamps)


def _delegate(block: int, kind: str, delegate: str, valid_to: int) -> DelegateChanged:
    return DelegateChanged(block, 0, IDENT, block - 1, bytes32_text(kind), delegate, valid_to)


def _attr(block: int, name: str, value: bytes, valid_to: int) -> AttributeChanged:
    return AttributeChanged(block, 0, IDENT, block - 1, bytes32_text(name), value, valid_to)


def test_untouched_identity_is_its_own_controller() -> None:
    res = build_resolution(DID, _log(), NOW)
    doc = res.did_document
    assert doc["verificationMethod"] == [
        {
            "id": f"{DID}#controller",
            "type": "EcdsaSecp256k1RecoveryMethod2020",
            "controller": DID,
            "blockchainAccountId": f"eip155:{CHAIN_ID}:{IDENT}",
        }
    ]
    assert doc["authentication"] == doc["assertionMethod"] == [f"{DID}#controller"]
    assert res.did_document_metadata == {}


def test_document_from_events() -> None:
    _, raw = _ed25519()
    svc = b'{"uri": "https://hub.example"}'
    log = _log(
        OwnerChanged(2, 0, IDENT, 1, OWNER2),
        _delegate(3, VERIKEY, DELEGATE, NOW + 10),
        _delegate(4, SIGAUTH, DELEGATE, NOW + 10),
        _delegate(5, "other", DELEGATE, NOW + 10),  # unknown type: counted, not shown
        _attr(6, ED25519_VERIKEY_ATTRIBUTE, raw, NOW + 10),
        _attr(7, "did/pub/Ed25519/sigAuth/base58", b"\xed\x01" + raw, NOW + 10),
        _attr(8, "did/pub/Ed25519/veriKey/base58", b"junk", NOW + 10),  # malformed: left out
        _attr(9, "did/svc/HubService", svc, NOW + 10),
        _attr(10, "not/a/did/attribute", b"x", NOW + 10),
    )
    res = build_resolution(DID, log, NOW)
    doc = res.did_document
    vms = {vm["id"].split("#")[1]: vm for vm in doc["verificationMethod"]}
    assert list(vms) == ["controller", "delegate-1", "delegate-2", "delegate-4", "delegate-5"]
    assert vms["controller"]["blockchainAccountId"] == f"eip155:{CHAIN_ID}:{OWNER2}"
    assert vms["delegate-1"]["blockchainAccountId"] == f"eip155:{CHAIN_ID}:{DELEGATE}"
    expected = encode_public_multikey(Ed25519PublicKey.from_public_bytes(raw))
    assert vms["delegate-4"]["type"] == "Multikey"
    assert vms["delegate-4"]["publicKeyMultibase"] == expected
    assert vms["delegate-5"]["publicKeyMultibase"] == vms["delegate-4"]["publicKeyMultibase"]
    ref = f"{DID}#delegate-"
    assert doc["authentication"] == [f"{DID}#controller", ref + "2", ref + "5"]
    assert doc["assertionMethod"] == [
        f"{DID}#controller",
        ref + "1",
        ref + "2",
        ref + "4",
        ref + "5",
    ]
    assert doc["service"] == [
        {
            "id": f"{DID}#service-1",
            "type": "HubService",
            "serviceEndpoint": {"uri": "https://hub.example"},
        }
    ]
    assert "https://w3id.org/security/multikey/v1" in doc["@context"]
    assert res.did_document_metadata["versionId"] == "10"
    assert res.did_document_metadata["updated"] == datetime.fromtimestamp(NOW - 990, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    # the Ed25519 key is usable for assertions and (sigAuth only) authentication
    res.ed25519_key(ref + "4")
    res.ed25519_key(ref + "5", "authentication")
    with pytest.raises(NotFound):
        res.ed25519_key(ref + "4", "authentication")
    with pytest.raises(NotFound):
        res.ed25519_key(f"{DID}#controller")


def test_validity_expiry_and_revocation() -> None:
    _, raw = _ed25519()
    add = _attr(2, ED25519_VERIKEY_ATTRIBUTE, raw, NOW + 100)
    deleg = _delegate(3, SIGAUTH, DELEGATE, NOW + 100)
    live = build_resolution(DID, _log(add, deleg), NOW)
    assert len(live.did_document["verificationMethod"]) == 3
    # expiry: validTo must be strictly after now, as in the contract's validDelegate
    for at in (NOW + 100, datetime.fromtimestamp(NOW + 500, UTC)):
        gone = build_resolution(DID, _log(add, deleg), at)
        assert [vm["id"] for vm in gone.did_document["verificationMethod"]] == [f"{DID}#controller"]
    # revocation: attribute validTo 0; delegate validTo = its block time, even if now is earlier
    revoked = _log(
        add,
        deleg,
        _attr(4, ED25519_VERIKEY_ATTRIBUTE, raw, 0),
        _delegate(5, SIGAUTH, DELEGATE, NOW + 5),
        ts={2: NOW - 10, 3: NOW - 9, 4: NOW - 8, 5: NOW + 5},
    )
    doc = build_resolution(DID, revoked, NOW).did_document
    assert doc["authentication"] == doc["assertionMethod"] == [f"{DID}#controller"]
    # re-adding after a revocation yields a fresh id
    readd = _log(*revoked.events, _attr(6, ED25519_VERIKEY_ATTRIBUTE, raw, NOW + 100))
    doc = build_resolution(DID, readd, NOW).did_document
    assert doc["assertionMethod"][-1] == f"{DID}#delegate-5"
    with pytest.raises(TypeError):
        build_resolution(DID, readd, datetime(2027, 1, 1))


def test_recovery_drops_earlier_entries() -> None:
    _, raw = _ed25519()
    log = _log(
        _delegate(2, SIGAUTH, DELEGATE, NOW + 100),
        _attr(3, ED25519_VERIKEY_ATTRIBUTE, raw, NOW + 100),
        OwnerChanged(4, 0, IDENT, 3, OWNER2),
        OwnerRecovered(4, 1, IDENT, 3, OWNER2, DELEGATE, b"\x01" * 32),
        _attr(5, ED25519_VERIKEY_ATTRIBUTE, raw, NOW + 100),
    )
    doc = build_resolution(DID, log, NOW).did_document
    assert [vm["id"] for vm in doc["verificationMethod"]] == [
        f"{DID}#controller",
        f"{DID}#delegate-3",
    ]
    assert doc["verificationMethod"][0]["blockchainAccountId"].endswith(OWNER2)


def test_deactivated() -> None:
    log = _log(
        _delegate(2, VERIKEY, DELEGATE, NOW + 100),
        OwnerChanged(3, 0, IDENT, 2, ZERO_ADDRESS),
        _delegate(4, VERIKEY, DELEGATE, NOW + 100),  # ignored after deactivation
    )
    res = build_resolution(DID, log, NOW)
    assert res.deactivated
    assert res.did_document_metadata["deactivated"] is True
    assert res.did_document["verificationMethod"] == []
    assert res.did_document["authentication"] == res.did_document["assertionMethod"] == []


# ---- resolution from the chain -----------------------------------------------------------


@pytest.fixture
def registry(chain: Chain, deployment: Deployment) -> DIDRegistryClient:
    return DIDRegistryClient(chain, deployment.address("DIDRegistry"))


def _methods(doc: dict[str, Any], rel: str) -> list[dict[str, Any]]:
    by_id = {vm["id"]: vm for vm in doc["verificationMethod"]}
    return [by_id[r] for r in doc[rel]]


def _account(vm: dict[str, Any]) -> str:
    return str(vm["blockchainAccountId"].rsplit(":", 1)[1])


def test_resolve_after_rotation_and_ed25519_lifecycle(
    chain: Chain, registry: DIDRegistryClient
) -> None:
    holder = Sender(chain, new_account(), decoder())
    ident = holder.address
    did = did_ethr(ident, chain.chain_id)
    sk, raw = _ed25519()
    # an unregistered identity resolves, with no version
    res = resolve_did_ethr(did, registry)
    assert _account(res.did_document["verificationMethod"][0]) == ident
    assert "versionId" not in res.did_document_metadata

    set_attr = registry.set_attribute(holder, ident, ED25519_VERIKEY_ATTRIBUTE, raw, 3600)
    res = resolve(did, registry)
    vm = _methods(res.did_document, "assertionMethod")[1]
    assert vm["type"] == "Multikey"
    assert res.ed25519_key(vm["id"]).public_bytes(Encoding.Raw, PublicFormat.Raw) == raw
    assert res.did_document_metadata["versionId"] == str(set_attr.block_number)
    assert res.did_document_metadata["updated"].endswith("Z")

    # a credential signed with that key verifies through the registry, until the key is gone
    credential = {"@context": ["https://www.w3.org/ns/credentials/v2"], "issuer": did}
    signed = add_proof(
        credential, private_key=sk, verification_method=vm["id"], created="2026-01-01T00:00:00Z"
    )
    assert verify_proof(signed, resolve_key=key_resolver(registry)).verified
    valid_to = next(e for e in registry.change_log(ident).events if isinstance(e, AttributeChanged))
    expired = resolve(did, registry, now=valid_to.valid_to)
    assert len(expired.did_document["verificationMethod"]) == 1
    assert not verify_proof(
        signed, resolve_key=key_resolver(registry, now=valid_to.valid_to)
    ).verified

    # key rotation: the new key is the controller, the old one appears nowhere
    new_key = Sender(chain, new_account(), decoder())
    registry.change_owner(holder, ident, new_key.address)
    doc = resolve(did, registry).did_document
    assert [_account(m) for m in _methods(doc, "authentication")] == [new_key.address]
    assert holder.address not in str(doc["verificationMethod"])
    assert doc["assertionMethod"][1] == vm["id"]  # the Ed25519 key survives rotation

    registry.revoke_attribute(new_key, ident, ED25519_VERIKEY_ATTRIBUTE, raw)
    doc = resolve(did, registry).did_document
    assert doc["assertionMethod"] == [f"{did}#controller"]
    assert not verify_proof(signed, resolve_key=key_resolver(registry)).verified

    # deactivation
    registry.change_owner(new_key, ident, ZERO_ADDRESS)
    assert resolve(did, registry).deactivated


def test_resolve_after_recovery(
    chain: Chain, registry: DIDRegistryClient, deployment: Deployment, governor: Sender
) -> None:
    holder, issuer = (Sender(chain, new_account(), decoder()) for _ in range(2))
    RolesClient(chain, deployment.address("Roles")).grant(governor, Role.ISSUER, issuer.address)
    ident = holder.address
    did = f"did:ethr:{chain.chain_id}:{ident}"  # decimal chain id accepted too
    registry.add_delegate(holder, ident, SIGAUTH, holder.address, 3600)
    lost = resolve(did, registry).did_document
    assert [_account(m) for m in _methods(lost, "authentication")] == [ident, ident]

    new_key = new_account()
    rec = registry.recover_owner(issuer, ident, new_key.address, keccak(text="evidence"))
    res = resolve(did, registry)
    # the new key is the controller; the old key is gone, as owner and as delegate
    doc = res.did_document
    assert [_account(m) for m in _methods(doc, "authentication")] == [new_key.address]
    assert [_account(m) for m in _methods(doc, "assertionMethod")] == [new_key.address]
    assert len(doc["verificationMethod"]) == 1
    assert res.did_document_metadata["versionId"] == str(rec.block_number)
    (recovery,) = registry.change_log(ident).recoveries
    assert recovery.issuer == issuer.address and recovery.owner == new_key.address
    with pytest.raises(DidChainMismatch):
        resolve(f"did:ethr:0x1:{ident}", registry)
