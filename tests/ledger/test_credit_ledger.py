"""CreditLedger on real chains (embedded PyEVM and anvil): records, rejections, replay, gas."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.chain import Chain, Sender, encode_call, new_account
from ledger.credit import CreditLedgerClient
from ledger.deploy import Deployment, decoder, deploy_contracts
from ledger.errors import ContractReverted, InvalidInput
from ledger.records import (
    CreditRecord,
    Eip712Domain,
    RecordKind,
    RejectReason,
    SignedRecord,
    record_digest,
    recover_signer,
    replay_head,
    sign_record,
)
from ledger.roles import Role, RolesClient

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CAT_A, CAT_B, CAT_OTHER = 101, 102, 999


@dataclass
class Env:
    chain: Chain
    governor: Sender
    relayer: Sender
    roles: RolesClient
    ledger: CreditLedgerClient
    agency: LocalAccount
    deploy_block: int
    now: int
    _nonce: int = 0

    @property
    def domain(self) -> Eip712Domain:
        return self.ledger.domain()

    def record(self, **kw: Any) -> CreditRecord:
        self._nonce += 1
        base: dict[str, Any] = dict(
            kind=RecordKind.RECORD,
            subject_kind=1,
            subject=keccak(b"subject %d" % self._nonce),
            category=CAT_A,
            occurred_at=self.now - 86_400,
            effective_from=self.now,
            effective_until=self.now + 365 * 86_400,
            deadline=self.now + 30 * 86_400,
            amount=self._nonce * 100,
            evidence_hash=hashlib.sha256(b"evidence %d" % self._nonce).digest(),
            reason_hash=hashlib.sha256(b"reason %d" % self._nonce).digest(),
            nonce=self._nonce,
        )
        base.update(kw)
        return CreditRecord(**base)

    def sign(self, rec: CreditRecord, domain: Eip712Domain | None = None) -> SignedRecord:
        return sign_record(rec, bytes(self.agency.key), domain or self.domain)


def setup_env(chain: Chain, governor: Sender, deployment: Deployment) -> Env:
    roles = RolesClient(chain, deployment.address("Roles"))
    agency = new_account()
    roles.grant(governor, Role.AGENCY, agency.address)
    roles.grant_categories(governor, agency.address, [CAT_A, CAT_B])
    return Env(
        chain=chain,
        governor=governor,
        relayer=Sender(chain, new_account(), decoder()),
        roles=roles,
        ledger=CreditLedgerClient(chain, deployment.address("CreditLedger")),
        agency=agency,
        deploy_block=deployment.deploy_block,
        now=int(chain.w3.eth.get_block("latest")["timestamp"]),
    )


@pytest.fixture
def env(chain: Chain, governor: Sender, deployment: Deployment) -> Env:
    return setup_env(chain, governor, deployment)


def high_s(signed: SignedRecord) -> SignedRecord:
    vs = ((signed.v - 27) << 255 | (N // 2 + 1)).to_bytes(32, "big")
    return SignedRecord(signed.record, signed.r + vs)


def test_domain_and_ids_match_the_contract(env: Env) -> None:
    c = env.ledger.contract.functions
    assert bytes(c.DOMAIN_SEPARATOR().call()) == env.domain.separator
    fields, name, version, chain_id, contract, _salt, _ext = c.eip712Domain().call()
    assert (name, version, chain_id, contract) == (
        "zhixin CreditLedger",
        "1",
        env.chain.chain_id,
        env.ledger.address,
    )
    assert fields == b"\x0f" and c.roles().call() == env.roles.address
    rec = env.record(kind=RecordKind.AMEND, ref=keccak(b"x"), nonce=2**256 - 1)
    assert env.ledger.hash_record(rec) == record_digest(rec, env.domain)
    # a word with dirty high bits is malformed ABI, not another record
    data = bytearray(encode_call(env.ledger.contract, "hashRecord", [rec.as_tuple()]))
    data[4] = 1  # high byte of `kind`
    with pytest.raises(ContractReverted):
        env.relayer.simulate(env.ledger.address, bytes(data))


def test_batch_is_recorded_and_reverifiable_from_logs(env: Env) -> None:
    r0 = env.sign(env.record())
    id0 = record_digest(r0.record, env.domain)
    batch = [
        r0,
        env.sign(env.record(kind=RecordKind.AMEND, ref=id0, subject_kind=2, category=CAT_B)),
        env.sign(env.record(kind=RecordKind.OBJECTION, ref=id0, amount=0, effective_until=0)),
        env.sign(env.record(kind=RecordKind.RESOLUTION_REJECTED, ref=id0, nonce=2**255 + 3)),
    ]
    res = env.ledger.submit_batch(env.relayer, batch)
    assert res.rejected == []
    assert res.accepted_ids == [record_digest(s.record, env.domain) for s in batch]
    assert [o.seq for o in res.outcomes] == [0, 1, 2, 3]

    entries = env.ledger.fetch_records(env.deploy_block, page=3)
    assert [e.log.signed for e in entries] == batch
    for e in entries:
        assert e.log.signer == env.agency.address
        assert recover_signer(e.log.signed, env.domain) == env.agency.address
        assert e.id == record_digest(e.log.signed.record, env.domain)
    heads = [replay_head([e.id for e in entries[: i + 1]]) for i in range(len(entries))]
    assert [e.log.head_after for e in entries] == heads
    state = env.ledger.state()
    assert (state.head, state.count) == (heads[-1], 4)
    assert env.ledger.nonce_used(env.agency.address, 2**255 + 3)
    assert not env.ledger.nonce_used(env.agency.address, 2**255 + 4)

    # resubmitting the same batch (an outbox retry after a crash) changes nothing
    again = env.ledger.submit_batch(env.relayer, batch)
    assert [o.reason for o in again.outcomes] == [RejectReason.NONCE_USED] * 4
    assert env.ledger.state() == state
    assert len(env.ledger.fetch_records(env.deploy_block)) == 4


def bad_items(env: Env) -> list[tuple[SignedRecord, RejectReason, str, tuple[Any, ...] | None]]:
    """(signed record, batch reason, single-record error name, expected error args or None)."""
    ag = env.agency.address
    used = env.record()
    foreign = Eip712Domain(env.chain.chain_id + 1, env.ledger.address)
    expired = env.record(deadline=env.now - 1)
    out_of_scope = env.record(category=CAT_OTHER)
    return [
        (env.sign(env.record(kind=9)), RejectReason.INVALID_KIND, "CreditLedgerInvalidKind", (9,)),
        (
            env.sign(env.record(ref=keccak(b"r"))),
            RejectReason.INVALID_REF,
            "CreditLedgerInvalidRef",
            (1, keccak(b"r")),
        ),
        (
            env.sign(env.record(kind=RecordKind.WITHDRAW)),
            RejectReason.INVALID_REF,
            "CreditLedgerInvalidRef",
            (3, bytes(32)),
        ),
        (
            env.sign(env.record(category=0)),
            RejectReason.INVALID_CATEGORY,
            "CreditLedgerInvalidCategory",
            (0,),
        ),
        (
            env.sign(env.record(subject_kind=3)),
            RejectReason.INVALID_SUBJECT,
            "CreditLedgerInvalidSubject",
            None,
        ),
        (
            env.sign(env.record(subject=bytes(32))),
            RejectReason.INVALID_SUBJECT,
            "CreditLedgerInvalidSubject",
            (1, bytes(32)),
        ),
        (
            env.sign(env.record(effective_from=env.now, effective_until=env.now - 1)),
            RejectReason.INVALID_DATES,
            "CreditLedgerInvalidDates",
            (env.now, env.now - 1),
        ),
        (
            high_s(env.sign(env.record())),
            RejectReason.INVALID_SIGNATURE,
            "CreditLedgerInvalidSignature",
            (),
        ),
        (
            env.sign(env.record(), foreign),  # signed for another chain: recovers a stranger
            RejectReason.UNAUTHORIZED,
            "CreditLedgerUnauthorized",
            None,
        ),
        (
            env.sign(expired),
            RejectReason.EXPIRED,
            "CreditLedgerExpired",
            (env.now - 1,),
        ),
        (
            env.sign(out_of_scope),
            RejectReason.UNAUTHORIZED,
            "CreditLedgerUnauthorized",
            (ag, CAT_OTHER),
        ),
        (
            env.sign(env.record(nonce=used.nonce)),  # the first good item spends this nonce
            RejectReason.NONCE_USED,
            "CreditLedgerNonceUsed",
            (ag, used.nonce),
        ),
    ]


def test_batch_skips_bad_items_and_records_the_rest(env: Env) -> None:
    bad = bad_items(env)
    first = env.sign(env.record(nonce=bad[-1][0].record.nonce))
    last = env.sign(env.record())
    batch = [first, *(b[0] for b in bad), last]
    res = env.ledger.submit_batch(env.relayer, batch)
    assert [o.reason for o in res.outcomes] == [None, *(b[1] for b in bad), None]
    assert [o.id for o in res.outcomes] == [record_digest(s.record, env.domain) for s in batch]
    good = [record_digest(s.record, env.domain) for s in (first, last)]
    assert res.accepted_ids == good
    assert env.ledger.state().head == replay_head(good)
    assert [e.id for e in env.ledger.fetch_records(env.deploy_block)] == good


def test_single_record_reverts_with_named_errors(env: Env) -> None:
    bad = bad_items(env)
    used = bad[-1][0].record.nonce
    ok = env.sign(env.record(nonce=used))
    assert env.ledger.submit(env.relayer, ok) == record_digest(ok.record, env.domain)
    assert env.ledger.state().count == 1
    for signed, _reason, name, args in bad:
        with pytest.raises(ContractReverted) as info:
            env.ledger.submit(env.relayer, signed)
        assert info.value.error_name == name, name
        if args is not None:
            assert info.value.error_args == args
    assert env.ledger.state().count == 1
    with pytest.raises(ContractReverted) as info:
        env.ledger.submit(env.relayer, ok)
    assert info.value.error_name == "CreditLedgerNonceUsed"


def test_batch_size_limits(env: Env) -> None:
    one = env.sign(env.record())
    with pytest.raises(InvalidInput):
        env.ledger.submit_batch(env.relayer, [])
    for items, name in (([], "CreditLedgerEmptyBatch"), ([one] * 501, "CreditLedgerBatchTooLarge")):
        data = encode_call(env.ledger.contract, "recordBatch", [[s.as_tuple() for s in items]])
        with pytest.raises(ContractReverted) as info:
            env.relayer.simulate(env.ledger.address, data)
        assert info.value.error_name == name
    assert info.value.error_args == (501, 500)


def test_revoked_agency_and_category_are_refused(env: Env) -> None:
    assert env.ledger.submit_batch(env.relayer, [env.sign(env.record())]).rejected == []
    env.roles.revoke_categories(env.governor, env.agency.address, [CAT_B])
    res = env.ledger.submit_batch(
        env.relayer, [env.sign(env.record(category=CAT_B)), env.sign(env.record())]
    )
    assert [o.reason for o in res.outcomes] == [RejectReason.UNAUTHORIZED, None]
    env.roles.revoke(env.governor, Role.AGENCY, env.agency.address)
    late = env.sign(env.record())
    res = env.ledger.submit_batch(env.relayer, [late])
    assert [o.reason for o in res.outcomes] == [RejectReason.UNAUTHORIZED]
    with pytest.raises(ContractReverted) as info:
        env.ledger.submit(env.relayer, late)
    assert info.value.error_args == (env.agency.address, CAT_A)
    assert env.ledger.state().count == 2


# Measured on anvil 1.7.1 (docs/adr/0002-credit-ledger-gas.md): 11.95k gas/record at 100 =
# 3.5k intrinsic (packed calldata + 21k/100), 3.4k log (2 topics, 288 bytes), 3.1k ecrecover,
# ~1.9k execution. Was 14.4k with the typed calldata and a 4-topic, 9-word event.
GAS_PER_RECORD_B100_BOUND = 12_000


def test_packed_words_are_the_abi_encoding(env: Env) -> None:
    items = [env.sign(env.record()), env.sign(env.record(kind=RecordKind.AMEND, ref=keccak(b"r")))]
    data = encode_call(env.ledger.contract, "recordBatch", [[s.as_tuple() for s in items]])
    words = (32).to_bytes(32, "big") + len(items).to_bytes(32, "big")
    assert data[4:] == words + b"".join(s.packed_words() for s in items)


def test_malformed_packed_record_reverts(env: Env) -> None:
    """meta bits above 159 are not a record the agency could have signed: malformed calldata."""
    good = env.sign(env.record())
    packed = list(good.as_tuple())
    packed[0] |= 1 << 160
    for fn, arg in (("record", tuple(packed)), ("recordBatch", [good.as_tuple(), tuple(packed)])):
        data = encode_call(env.ledger.contract, fn, [arg])
        with pytest.raises(ContractReverted) as info:
            env.relayer.simulate(env.ledger.address, data)
        assert info.value.error_name == "CreditLedgerMalformedRecord"
    assert env.ledger.state().count == 0


@pytest.mark.anvil
def test_gas_per_record_in_a_batch_of_100(anvil_chain: Chain) -> None:
    governor = Sender(anvil_chain, new_account(), decoder())
    e = setup_env(anvil_chain, governor, deploy_contracts(anvil_chain, governor))
    e.ledger.submit_batch(e.relayer, [e.sign(e.record())])  # open the agency's nonce word
    res = e.ledger.submit_batch(e.relayer, [e.sign(e.record()) for _ in range(100)])
    assert res.rejected == []
    assert res.gas_per_record <= GAS_PER_RECORD_B100_BOUND, res.gas_per_record
