"""DIDRegistry on both backends: ERC-1056 behaviour, EIP-712 signed variants, ISSUER recovery.

Every refused write is checked through the contract's named error as the Sender's ErrorDecoder
decodes it (simulation refuses before anything is sent), with its parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from identity.did import (
    ED25519_SIGAUTH_ATTRIBUTE,
    ED25519_VERIKEY_ATTRIBUTE,
    SIGAUTH,
    VERIKEY,
    ZERO_ADDRESS,
    AttributeChanged,
    DelegateChanged,
    DIDRegistryClient,
    OwnerChanged,
    OwnerRecovered,
    SignedChange,
    bytes32_text,
    change_fields_from_json,
    signed_change,
    signed_change_typed_data,
    split_signature,
    typed_data_json,
)
from ledger.chain import Chain, Sender, new_account
from ledger.deploy import Deployment, decoder
from ledger.errors import ContractReverted, InvalidInput
from ledger.roles import Role, RolesClient

ED_KEY = bytes(range(32))
EVIDENCE = keccak(text="re-verification record 42")


@pytest.fixture
def registry(chain: Chain, deployment: Deployment) -> DIDRegistryClient:
    return DIDRegistryClient(chain, deployment.address("DIDRegistry"))


def _sender(chain: Chain) -> Sender:
    return Sender(chain, new_account(), decoder())


@contextmanager
def _reverts(name: str, *args: Any) -> Iterator[None]:
    """The block reverts with custom error ``name`` (and exactly ``args``, if given)."""
    with pytest.raises(ContractReverted) as info:
        yield
    assert info.value.error_name == name, info.value.detail
    if args:
        assert info.value.error_args == args, info.value.detail


def _deadline(chain: Chain, seconds: int = 3600) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"]) + seconds


def test_erc1056_owner_delegates_attributes(chain: Chain, registry: DIDRegistryClient) -> None:
    alice, mallory = _sender(chain), _sender(chain)
    ident = alice.address
    bob = new_account()
    # an untouched identity owns itself and has no history
    assert registry.identity_owner(ident) == ident
    assert registry.changed(ident) == 0

    with _reverts("DIDRegistryNotOwner", ident, mallory.address):
        registry.add_delegate(mallory, ident, VERIKEY, mallory.address, 3600)

    r1 = registry.add_delegate(alice, ident, SIGAUTH, bob.address, 3600)
    assert registry.valid_delegate(ident, SIGAUTH, bob.address)
    assert not registry.valid_delegate(ident, VERIKEY, bob.address)  # types are separate
    valid_to = registry.delegate_valid_to(ident, SIGAUTH, bob.address)
    block_ts = int(chain.w3.eth.get_block(r1.block_number)["timestamp"])
    assert valid_to == block_ts + 3600
    r2 = registry.set_attribute(alice, ident, ED25519_VERIKEY_ATTRIBUTE, ED_KEY, 600)
    r3 = registry.revoke_delegate(alice, ident, SIGAUTH, bob.address)
    assert not registry.valid_delegate(ident, SIGAUTH, bob.address)
    r4 = registry.revoke_attribute(alice, ident, ED25519_VERIKEY_ATTRIBUTE, ED_KEY)
    assert registry.changed(ident) == r4.block_number

    # the changed/previousChange linked list, oldest first
    ev = registry.change_log(ident).events
    assert [type(e) for e in ev] == [
        DelegateChanged,
        AttributeChanged,
        DelegateChanged,
        AttributeChanged,
    ]
    assert [e.block_number for e in ev] == [r.block_number for r in (r1, r2, r3, r4)]
    assert [e.previous_change for e in ev] == [0, r1.block_number, r2.block_number, r3.block_number]
    add, attr, revoke, unattr = ev
    assert isinstance(add, DelegateChanged) and add.delegate_type == bytes32_text(SIGAUTH)
    assert add.delegate == bob.address and add.valid_to == valid_to
    assert isinstance(attr, AttributeChanged) and attr.name == bytes32_text(
        ED25519_VERIKEY_ATTRIBUTE
    )
    assert attr.value == ED_KEY
    assert isinstance(revoke, DelegateChanged)
    assert revoke.valid_to == int(chain.w3.eth.get_block(r3.block_number)["timestamp"])
    assert isinstance(unattr, AttributeChanged) and unattr.valid_to == 0

    # key rotation: the new key owns the identity, the old one no longer does
    new_key = _sender(chain)
    registry.change_owner(alice, ident, new_key.address)
    assert registry.identity_owner(ident) == new_key.address
    with _reverts("DIDRegistryNotOwner", ident, alice.address):
        registry.change_owner(alice, ident, alice.address)
    registry.add_delegate(new_key, ident, VERIKEY, bob.address, 60)

    # deactivation is final: owner zero, and nothing changes afterwards
    registry.change_owner(new_key, ident, ZERO_ADDRESS)
    assert registry.identity_owner(ident) == ZERO_ADDRESS
    assert registry.deactivated(ident)
    with _reverts("DIDRegistryDeactivated", ident):
        registry.change_owner(new_key, ident, new_key.address)
    with _reverts("DIDRegistryDeactivated", ident):
        registry.set_attribute(alice, ident, "did/svc/Hub", b"https://x", 60)


def test_signed_variants_are_relayed(chain: Chain, registry: DIDRegistryClient) -> None:
    owner = new_account()  # never sends a transaction: a relayer pays
    relayer = _sender(chain)
    ident = owner.address
    bob = new_account()
    dl = _deadline(chain)
    steps: list[tuple[Any, dict[str, Any]]] = [
        ("addDelegate", {"delegateType": VERIKEY, "delegate": bob.address, "validity": 3600}),
        ("setAttribute", {"name": ED25519_VERIKEY_ATTRIBUTE, "value": ED_KEY, "validity": 3600}),
        ("revokeDelegate", {"delegateType": VERIKEY, "delegate": bob.address}),
        ("revokeAttribute", {"name": ED25519_VERIKEY_ATTRIBUTE, "value": ED_KEY}),
    ]
    for i, (op, fields) in enumerate(steps):
        assert registry.nonce(ident) == i
        registry.submit(relayer, registry.sign(owner, op, ident, fields, deadline=dl))
        if op == "addDelegate":
            assert registry.valid_delegate(ident, VERIKEY, bob.address)
    assert not registry.valid_delegate(ident, VERIKEY, bob.address)
    successor = new_account()
    signed = registry.sign(
        owner, "changeOwner", ident, {"newOwner": successor.address}, deadline=dl
    )
    registry.submit(relayer, signed)
    assert registry.identity_owner(ident) == successor.address
    assert registry.nonce(ident) == 5
    kinds = [type(e).__name__ for e in registry.change_log(ident).events]
    assert kinds == [
        "DelegateChanged",
        "AttributeChanged",
        "DelegateChanged",
        "AttributeChanged",
        "OwnerChanged",
    ]


def test_signed_change_from_json_typed_data(chain: Chain, registry: DIDRegistryClient) -> None:
    """What a JSON client (eth_signTypedData_v4) signs over the typed data as JSON relays."""
    owner, relayer = new_account(), _sender(chain)
    ident = owner.address
    fields = {"name": ED25519_SIGAUTH_ATTRIBUTE, "value": "0x" + ED_KEY.hex(), "validity": 60}
    typed = signed_change_typed_data(
        "setAttribute",
        ident,
        change_fields_from_json("setAttribute", fields),
        nonce=registry.nonce(ident),
        deadline=_deadline(chain),
        chain_id=chain.chain_id,
        registry=registry.address,
    )
    as_json = typed_data_json(typed)
    assert as_json["message"]["value"] == fields["value"]
    signature = Account.sign_typed_data(owner.key, full_message=as_json).signature
    registry.submit(relayer, signed_change("setAttribute", typed, *split_signature(signature)))
    (event,) = registry.change_log(ident).events
    assert isinstance(event, AttributeChanged) and event.value == ED_KEY


def test_signed_change_json_input_refused() -> None:
    with pytest.raises(InvalidInput, match="65 bytes"):
        split_signature("0x" + "11" * 64)
    with pytest.raises(InvalidInput, match="hex"):
        split_signature("0xzz")
    assert split_signature(bytes(64) + b"\x01")[0] == 28
    with pytest.raises(InvalidInput, match="0x-hex"):
        change_fields_from_json("setAttribute", {"value": "text"})
    with pytest.raises(InvalidInput, match="unknown signed operation"):
        change_fields_from_json("mint", {})


def test_signed_variants_refused(chain: Chain, registry: DIDRegistryClient) -> None:
    owner, stranger = new_account(), new_account()
    relayer = _sender(chain)
    ident = owner.address
    dl = _deadline(chain)
    fields = {"delegateType": SIGAUTH, "delegate": stranger.address, "validity": 3600}

    # wrong signer
    forged = registry.sign(stranger, "addDelegate", ident, fields, deadline=dl)
    with _reverts("DIDRegistrySignerNotOwner", ident, stranger.address, ident):
        registry.submit(relayer, forged)

    # a payload signed for another chain recovers someone else
    foreign = registry.sign(owner, "addDelegate", ident, fields, deadline=dl, chain_id=1)
    with _reverts("DIDRegistrySignerNotOwner"):
        registry.submit(relayer, foreign)

    # expired deadline
    past = _deadline(chain, -1)
    expired = registry.sign(owner, "addDelegate", ident, fields, deadline=past)
    with _reverts("DIDRegistryExpired"):
        registry.submit(relayer, expired)

    # malleable twin (high s) is refused even though ecrecover would accept it
    good = registry.sign(owner, "addDelegate", ident, fields, deadline=dl)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    twin = SignedChange(
        good.op,
        good.identity,
        good.args,
        good.nonce,
        good.deadline,
        55 - good.v,
        good.r,
        (n - int.from_bytes(good.s, "big")).to_bytes(32, "big"),
    )
    with _reverts("DIDRegistryInvalidSignature"):
        registry.submit(relayer, twin)

    # valid once, then a replay of the same nonce is refused with both nonces named
    registry.submit(relayer, good)
    assert registry.valid_delegate(ident, SIGAUTH, stranger.address)
    with _reverts("DIDRegistryInvalidNonce", ident, 1, 0):
        registry.submit(relayer, good)
    # a nonce from the future is refused too
    ahead = registry.sign(
        owner, "revokeDelegate", ident, dict(list(fields.items())[:2]), deadline=dl, nonce=7
    )
    with _reverts("DIDRegistryInvalidNonce", ident, 1, 7):
        registry.submit(relayer, ahead)


def test_recovery_by_issuer(
    chain: Chain, registry: DIDRegistryClient, deployment: Deployment, governor: Sender
) -> None:
    holder, issuer, impostor = _sender(chain), _sender(chain), _sender(chain)
    ident = holder.address
    RolesClient(chain, deployment.address("Roles")).grant(governor, Role.ISSUER, issuer.address)
    first = registry.add_delegate(holder, ident, VERIKEY, impostor.address, 3600)
    # a change the holder signed before losing the key, not yet relayed
    pending = registry.sign(
        holder.account,
        "changeOwner",
        ident,
        {"newOwner": holder.address},
        deadline=_deadline(chain),
    )
    new_key = new_account()

    with _reverts("DIDRegistryUnauthorized", impostor.address, Role.ISSUER.id):
        registry.recover_owner(impostor, ident, impostor.address, EVIDENCE)
    with _reverts("DIDRegistryMissingEvidence"):
        registry.recover_owner(issuer, ident, new_key.address, bytes(32))
    with _reverts("DIDRegistryInvalidOwner", ZERO_ADDRESS):
        registry.recover_owner(issuer, ident, ZERO_ADDRESS, EVIDENCE)

    assert registry.valid_delegate(ident, VERIKEY, impostor.address)
    rec = registry.recover_owner(issuer, ident, new_key.address, EVIDENCE)
    assert registry.identity_owner(ident) == new_key.address
    # what the lost (maybe stolen) key delegated ends with the recovery
    assert not registry.valid_delegate(ident, VERIKEY, impostor.address)
    assert registry.delegate_valid_to(ident, VERIKEY, impostor.address) == 0
    assert registry.changed(ident) == rec.block_number
    *_, changed, recovered = registry.change_log(ident).events
    assert isinstance(changed, OwnerChanged) and changed.owner == new_key.address
    assert isinstance(recovered, OwnerRecovered)
    assert (recovered.owner, recovered.issuer, recovered.evidence_hash) == (
        new_key.address,
        issuer.address,
        EVIDENCE,
    )
    assert changed.previous_change == recovered.previous_change == first.block_number
    assert changed.log_index < recovered.log_index

    # the lost key can no longer act, directly or through what it signed earlier
    with _reverts("DIDRegistryNotOwner", ident, holder.address):
        registry.add_delegate(holder, ident, VERIKEY, holder.address, 60)
    with _reverts("DIDRegistrySignerNotOwner", ident, holder.address, new_key.address):
        registry.submit(issuer, pending)
    # the new key signs (nonce continues per identity), a relayer submits
    signed = registry.sign(
        new_key,
        "setAttribute",
        ident,
        {"name": ED25519_VERIKEY_ATTRIBUTE, "value": ED_KEY, "validity": 60},
        deadline=_deadline(chain),
    )
    registry.submit(impostor, signed)
