"""CredentialRegistry on real chains (embedded PyEVM and anvil): anchors, status bits, errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from identity.credentials import AnchorRequest, CredentialRegistryClient
from identity.status import MIN_ENTRIES, StatusPurpose, bit_at
from ledger.chain import Chain, Sender, encode_call, new_account
from ledger.deploy import Deployment, decoder
from ledger.errors import ContractReverted
from ledger.roles import Role, RolesClient

ISSUER_ID = Role.ISSUER.id
T0 = 1_750_000_000
YEAR = 365 * 86_400


@dataclass
class Env:
    chain: Chain
    governor: Sender
    issuer: Sender
    roles: RolesClient
    reg: CredentialRegistryClient
    revocation: int
    suspension: int
    n: int = 0

    def req(self, *, list_id: int | None = None, index: int | None = None) -> AnchorRequest:
        self.n += 1
        return AnchorRequest(
            credential_hash=hashlib.sha256(b"credential %d" % self.n).digest(),
            subject_did_hash=hashlib.sha256(b"did:key:holder%d" % self.n).digest(),
            valid_from=T0,
            valid_until=T0 + YEAR,
            status_list_id=self.revocation if list_id is None else list_id,
            status_index=self.n if index is None else index,
        )


def new_sender(chain: Chain) -> Sender:
    return Sender(chain, new_account(), decoder())


@pytest.fixture
def env(chain: Chain, governor: Sender, deployment: Deployment) -> Env:
    roles = RolesClient(chain, deployment.address("Roles"))
    reg = CredentialRegistryClient(chain, deployment.address("CredentialRegistry"))
    issuer = new_sender(chain)
    roles.grant(governor, Role.ISSUER, issuer.address)
    rev = reg.create_status_list(issuer, StatusPurpose.REVOCATION)
    sus = reg.create_status_list(issuer, StatusPurpose.SUSPENSION)
    return Env(chain, governor, issuer, roles, reg, rev, sus)


def error_of(exc: pytest.ExceptionInfo[ContractReverted]) -> tuple[str | None, tuple]:
    return exc.value.error_name, exc.value.error_args


def test_status_lists(env: Env) -> None:
    assert (env.revocation, env.suspension) == (1, 2)
    assert env.reg.list_count() == 2
    info = env.reg.status_list(env.revocation)
    assert (info.owner, info.purpose, info.length) == (
        env.issuer.address,
        StatusPurpose.REVOCATION,
        MIN_ENTRIES,
    )
    assert env.reg.status_list(env.suspension).purpose is StatusPurpose.SUSPENSION
    assert env.reg.bitstring(env.revocation) == bytes(MIN_ENTRIES // 8)
    reg = env.reg
    for length in (MIN_ENTRIES - 256, MIN_ENTRIES + 8, 2**24 + 256):
        with pytest.raises(ContractReverted) as e:
            reg.create_status_list(env.issuer, StatusPurpose.SUSPENSION, length)
        assert error_of(e) == ("CredentialRegistryInvalidLength", (length, MIN_ENTRIES, 2**24))
    data = encode_call(reg.contract, "createStatusList", [3, MIN_ENTRIES])
    with pytest.raises(ContractReverted) as e:
        env.issuer.simulate(reg.address, data)
    assert error_of(e) == ("CredentialRegistryInvalidPurpose", (3,))
    big = reg.create_status_list(env.issuer, StatusPurpose.REVOCATION, 2 * MIN_ENTRIES)
    assert reg.status_list(big).length == 2 * MIN_ENTRIES


def test_anchor_single_and_read_back(env: Env) -> None:
    req = env.req()
    tx = env.reg.anchor(env.issuer, req)
    a = env.reg.anchor_of(req.credential_hash)
    assert a is not None
    assert (a.issuer, a.subject_did_hash, a.valid_from, a.valid_until) == (
        env.issuer.address,
        req.subject_did_hash,
        T0,
        T0 + YEAR,
    )
    assert (a.status_list_id, a.status_index, a.anchored_at) == (
        env.revocation,
        req.status_index,
        tx.block_number,
    )
    logs = env.reg.contract.events.CredentialAnchored().process_receipt(tx.receipt)
    assert [(e.args.credentialHash, e.args.issuer, e.args.statusIndex) for e in logs] == [
        (req.credential_hash, env.issuer.address, req.status_index)
    ]
    assert env.reg.anchor_of(b"\x01" * 32) is None
    # write-once
    with pytest.raises(ContractReverted) as e:
        env.reg.anchor(env.issuer, req)
    assert error_of(e) == (
        "CredentialRegistryAlreadyAnchored",
        (req.credential_hash, env.issuer.address),
    )
    # no status: list 0 index 0
    no_status = env.req(list_id=0, index=0)
    env.reg.anchor(env.issuer, no_status)
    a0 = env.reg.anchor_of(no_status.credential_hash)
    assert a0 is not None and a0.status_list_id == 0


def test_batches_and_gas(env: Env) -> None:
    reqs = [env.req() for _ in range(50)]
    tx = env.reg.anchor_batch(env.issuer, reqs)
    for r in reqs:
        assert env.reg.anchor_of(r.credential_hash) is not None
    single = env.reg.anchor(env.issuer, env.req())
    per_item = tx.gas_used / len(reqs)
    print(f"\nanchor single {single.gas_used} gas; batch of 50: {per_item:.0f} gas per credential")
    assert per_item < single.gas_used
    assert per_item < 90_000
    single = env.reg._send(env.issuer, "setStatus", [env.suspension, 1000, True], "set")
    batch = env.reg.set_status_batch(env.issuer, env.suspension, list(range(2000, 2100)), True)
    print(
        f"\nsetStatus single {single.gas_used} gas; "
        f"batch of 100 (one run of words): {batch.gas_used / 100:.0f} gas per bit"
    )
    assert batch.gas_used / 100 < 10_000
    # one bad item reverts the whole batch with that item's error
    good, bad = env.req(), env.req(index=MIN_ENTRIES)
    with pytest.raises(ContractReverted) as e:
        env.reg.anchor_batch(env.issuer, [good, bad])
    assert error_of(e) == (
        "CredentialRegistryIndexOutOfRange",
        (env.revocation, MIN_ENTRIES, MIN_ENTRIES),
    )
    assert env.reg.anchor_of(good.credential_hash) is None


def test_anchor_invalid_inputs(env: Env) -> None:
    base = env.req()
    cases: list[tuple[AnchorRequest, str, tuple]] = [
        (
            AnchorRequest(bytes(32), base.subject_did_hash, T0, 0, 0, 0),
            "CredentialRegistryInvalidCredentialHash",
            (bytes(32),),
        ),
        (
            AnchorRequest(base.credential_hash, bytes(32), T0, 0, 0, 0),
            "CredentialRegistryInvalidSubject",
            (base.credential_hash, bytes(32)),
        ),
        (
            AnchorRequest(base.credential_hash, base.subject_did_hash, T0, T0, 0, 0),
            "CredentialRegistryInvalidValidity",
            (T0, T0),
        ),
        (
            AnchorRequest(base.credential_hash, base.subject_did_hash, 0, 0, 0, 0),
            "CredentialRegistryInvalidValidity",
            (0, 0),
        ),
        (
            AnchorRequest(base.credential_hash, base.subject_did_hash, T0, 0, 0, 5),
            "CredentialRegistryUnknownStatusList",
            (0,),
        ),
        (
            AnchorRequest(base.credential_hash, base.subject_did_hash, T0, 0, 99, 5),
            "CredentialRegistryUnknownStatusList",
            (99,),
        ),
        (
            AnchorRequest(base.credential_hash, base.subject_did_hash, T0, 0, env.suspension, 5),
            "CredentialRegistryWrongPurpose",
            (env.suspension, 2, 1),
        ),
    ]
    for req, name, args in cases:
        with pytest.raises(ContractReverted) as e:
            env.reg.anchor(env.issuer, req)
        assert error_of(e) == (name, args)
    data = encode_call(env.reg.contract, "anchorBatch", [[]])
    with pytest.raises(ContractReverted) as e:
        env.issuer.simulate(env.reg.address, data)
    assert error_of(e) == ("CredentialRegistryEmptyBatch", ())
    data = encode_call(env.reg.contract, "anchorBatch", [[base.as_tuple()] * 501])
    with pytest.raises(ContractReverted) as e:
        env.issuer.simulate(env.reg.address, data)
    assert error_of(e) == ("CredentialRegistryBatchTooLarge", (501, 500))


def test_status_bits_set_unset_rules(env: Env) -> None:
    reg, issuer = env.reg, env.issuer
    # suspension: set, unset, idempotent
    assert reg.set_status(issuer, env.suspension, 7, True) is True
    assert reg.status_bit(env.suspension, 7)
    assert reg.set_status(issuer, env.suspension, 7, True) is False  # no change, no event
    assert reg.set_status(issuer, env.suspension, 7, False) is True
    assert not reg.status_bit(env.suspension, 7)
    # revocation: set is final
    tx = reg.set_status_batch(issuer, env.revocation, [0, 5, 255, 256, MIN_ENTRIES - 1], True)
    events = reg.contract.events.StatusChanged().process_receipt(tx.receipt)
    assert [(e.args.listId, e.args.index, e.args.value, e.args.issuer) for e in events] == [
        (env.revocation, i, True, issuer.address) for i in (0, 5, 255, 256, MIN_ENTRIES - 1)
    ]
    with pytest.raises(ContractReverted) as e:
        reg.set_status(issuer, env.revocation, 5, False)
    assert error_of(e) == ("CredentialRegistryRevocationFinal", (env.revocation, 5))
    with pytest.raises(ContractReverted) as e:
        reg.set_status_batch(issuer, env.revocation, [6, 5], False)
    assert error_of(e) == ("CredentialRegistryRevocationFinal", (env.revocation, 5))
    assert reg.set_status(issuer, env.revocation, 6, False) is False  # clear stays clear
    # the words are the W3C bitstring, left-most bit first
    bits = reg.bitstring(env.revocation)
    assert len(bits) * 8 == MIN_ENTRIES
    assert [i for i in range(300) if bit_at(bits, i)] == [0, 5, 255, 256]
    assert bit_at(bits, MIN_ENTRIES - 1)
    assert bits[0] == 0b1000_0100
    words = reg._call(reg.contract.functions.statusWords(env.revocation, 0, 2))
    assert words[0] == (1 << 255) | (1 << 250) | 1 and words[1] == 1 << 255
    # ranges
    with pytest.raises(ContractReverted) as e:
        reg.set_status(issuer, env.suspension, MIN_ENTRIES, True)
    assert error_of(e) == (
        "CredentialRegistryIndexOutOfRange",
        (env.suspension, MIN_ENTRIES, MIN_ENTRIES),
    )
    with pytest.raises(ContractReverted) as e:
        reg.set_status(issuer, 77, 1, True)
    assert error_of(e) == ("CredentialRegistryUnknownStatusList", (77,))
    fn = reg.contract.functions.statusWords(env.revocation, 511, 2)
    with pytest.raises(Exception) as ex:
        issuer.simulate(reg.address, bytes.fromhex(fn._encode_transaction_data()[2:]))
    assert isinstance(ex.value, ContractReverted)
    assert error_of(ex) == (  # type: ignore[arg-type]
        "CredentialRegistryWordsOutOfRange",
        (env.revocation, 511, 2, 512),
    )


def test_unauthorized_paths(env: Env) -> None:
    reg = env.reg
    outsider = new_sender(env.chain)
    with pytest.raises(ContractReverted) as e:
        reg.anchor(outsider, env.req())
    assert error_of(e) == ("CredentialRegistryUnauthorized", (outsider.address, ISSUER_ID))
    with pytest.raises(ContractReverted) as e:
        reg.create_status_list(outsider, StatusPurpose.REVOCATION)
    assert error_of(e) == ("CredentialRegistryUnauthorized", (outsider.address, ISSUER_ID))
    with pytest.raises(ContractReverted) as e:
        reg.set_status(outsider, env.suspension, 1, True)
    assert error_of(e) == ("CredentialRegistryUnauthorized", (outsider.address, ISSUER_ID))
    # another issuer may neither set bits in nor anchor into a list it does not own
    other = new_sender(env.chain)
    env.roles.grant(env.governor, Role.ISSUER, other.address)
    with pytest.raises(ContractReverted) as e:
        reg.set_status(other, env.suspension, 1, True)
    assert error_of(e) == (
        "CredentialRegistryNotListOwner",
        (env.suspension, other.address, env.issuer.address),
    )
    with pytest.raises(ContractReverted) as e:
        reg.anchor(other, env.req())
    assert error_of(e)[0] == "CredentialRegistryNotListOwner"


def test_revoked_issuer_can_no_longer_write(env: Env) -> None:
    reg, issuer = env.reg, env.issuer
    req = env.req()
    reg.anchor(issuer, req)
    reg.set_status(issuer, env.suspension, 3, True)
    env.roles.revoke(env.governor, Role.ISSUER, issuer.address)
    for call in (
        lambda: reg.set_status(issuer, env.suspension, 3, False),
        lambda: reg.set_status_batch(issuer, env.revocation, [1], True),
        lambda: reg.anchor(issuer, env.req()),
        lambda: reg.create_status_list(issuer, StatusPurpose.SUSPENSION),
    ):
        with pytest.raises(ContractReverted) as e:
            call()
        assert error_of(e) == ("CredentialRegistryUnauthorized", (issuer.address, ISSUER_ID))
    # what was written stays readable
    assert reg.status_bit(env.suspension, 3)
    assert reg.anchor_of(req.credential_hash) is not None
