"""Pure record model: EIP-712 hashing against eth-account, signatures, checks, JSON."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from ledger.errors import InvalidInput
from ledger.records import (
    RECORD_TYPE,
    RECORDED_TOPIC,
    ZERO_HASH,
    CreditRecord,
    Eip712Domain,
    InvalidRecord,
    InvalidSignature,
    RecordKind,
    RejectReason,
    SignedRecord,
    SubjectKind,
    check_record,
    compact_signature,
    decode_recorded_log,
    next_head,
    record_digest,
    record_from_json,
    record_to_json,
    recorded_fields,
    recover_address,
    recover_signer,
    replay_head,
    sign_record,
    signed_record_from_json,
    signed_record_to_json,
    typed_data,
    verify_recorded,
)

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
NOW = 1_790_000_000
DOMAIN = Eip712Domain(20170623, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = keccak(b"agency key")
AGENCY = Account.from_key(KEY).address


def make_record(**kw: object) -> CreditRecord:
    base: dict[str, object] = dict(
        kind=RecordKind.RECORD,
        subject_kind=SubjectKind.ENTITY,
        subject=keccak(b"pseudonym"),
        category=101,
        occurred_at=NOW - 86_400,
        effective_from=NOW,
        effective_until=NOW + 365 * 86_400,
        deadline=NOW + 3_600,
        amount=12_345,
        evidence_hash=hashlib.sha256(b"evidence").digest(),
        reason_hash=hashlib.sha256("逾期未履行".encode()).digest(),
        nonce=7,
    )
    base.update(kw)
    return CreditRecord(**base)  # type: ignore[arg-type]


def twin65(signed: SignedRecord) -> bytes:
    """The malleable twin (r, n - s, flipped v): valid ECDSA, but high s."""
    return signed.r + (N - signed.s).to_bytes(32, "big") + bytes([55 - signed.v])


def high_s(signed: SignedRecord) -> SignedRecord:
    """A compact signature whose s is just above n/2. (The twin's s = n - s almost never fits
    EIP-2098's 255 bits, so compact form excludes malleability by construction; both the
    contract and recover_signer still check.)"""
    vs = ((signed.v - 27) << 255 | (N // 2 + 1)).to_bytes(32, "big")
    return SignedRecord(signed.record, signed.r + vs)


def test_type_string_is_documented_one() -> None:
    assert RECORD_TYPE == (
        "CreditRecord(uint8 kind,uint8 subjectKind,uint16 category,uint64 occurredAt,"
        "uint64 effectiveFrom,uint64 effectiveUntil,uint64 deadline,uint128 amount,"
        "bytes32 subject,bytes32 evidenceHash,bytes32 reasonHash,bytes32 ref,uint256 nonce)"
    )
    src = (Path(__file__).parents[2] / "contracts" / "src" / "CreditLedger.sol").read_text()
    assert keccak(text=RECORD_TYPE).hex() in src


@pytest.mark.parametrize(
    "rec",
    [
        make_record(),
        make_record(kind=RecordKind.AMEND, ref=keccak(b"orig"), amount=0, effective_until=0),
        make_record(nonce=2**256 - 1, amount=2**128 - 1, deadline=2**64 - 1),
    ],
)
def test_digest_equals_eth_account(rec: CreditRecord) -> None:
    msg = encode_typed_data(full_message=typed_data(rec, DOMAIN))
    assert keccak(b"\x19" + msg.version + msg.header + msg.body) == record_digest(rec, DOMAIN)
    assert msg.header == DOMAIN.separator


def test_sign_and_recover_agree_with_eth_account() -> None:
    rec = make_record()
    signed = sign_record(rec, KEY, DOMAIN)
    assert recover_signer(signed, DOMAIN) == AGENCY
    msg = encode_typed_data(full_message=typed_data(rec, DOMAIN))
    assert Account.recover_message(msg, signature=signed.signature65()) == AGENCY
    assert Account.recover_message(msg, signature=twin65(signed)) == AGENCY  # why we check s
    # eth-account's 65-byte signature converts to the same compact one
    theirs = Account.sign_message(msg, KEY).signature
    assert compact_signature(bytes(theirs)) == signed.signature


def test_other_domain_recovers_another_address() -> None:
    signed = sign_record(make_record(), KEY, DOMAIN)
    foreign = Eip712Domain(DOMAIN.chain_id + 1, DOMAIN.verifying_contract)
    assert recover_signer(signed, foreign) != AGENCY


def test_high_s_and_malformed_signatures_are_refused() -> None:
    signed = sign_record(make_record(), KEY, DOMAIN)
    with pytest.raises(InvalidSignature, match="upper half"):
        recover_signer(high_s(signed), DOMAIN)
    with pytest.raises(InvalidSignature, match="upper half"):
        compact_signature(twin65(signed))
    with pytest.raises(InvalidSignature, match="v must be 27 or 28"):
        compact_signature(signed.signature65()[:64] + b"\x1d")
    with pytest.raises(InvalidSignature, match="64 or 65"):
        compact_signature(b"\x01" * 63)
    with pytest.raises(InvalidSignature, match="out of range"):
        recover_signer(SignedRecord(signed.record, bytes(32) + signed.vs), DOMAIN)
    with pytest.raises(InvalidSignature, match="out of range"):
        recover_signer(SignedRecord(signed.record, N.to_bytes(32, "big") + signed.vs), DOMAIN)
    with pytest.raises(InvalidSignature):
        SignedRecord(signed.record, signed.signature[:63])
    assert issubclass(InvalidSignature, InvalidInput)


def test_check_record_reports_every_problem_precisely() -> None:
    assert check_record(sign_record(make_record(), KEY, DOMAIN), DOMAIN, NOW) == []
    bad = make_record(
        kind=9,
        category=0,
        subject_kind=3,
        subject=ZERO_HASH,
        effective_from=NOW,
        effective_until=NOW - 1,
        deadline=NOW - 1,
    )
    problems = check_record(high_s(sign_record(bad, KEY, DOMAIN)), DOMAIN, NOW)
    assert [(p.reason, p.field) for p in problems] == [
        (RejectReason.INVALID_KIND, "kind"),
        (RejectReason.INVALID_CATEGORY, "category"),
        (RejectReason.INVALID_SUBJECT, "subjectKind"),
        (RejectReason.INVALID_SUBJECT, "subject"),
        (RejectReason.INVALID_DATES, "effectiveUntil"),
        (RejectReason.INVALID_SIGNATURE, "signature"),
        (RejectReason.EXPIRED, "deadline"),
    ]
    with_ref = sign_record(make_record(ref=keccak(b"x")), KEY, DOMAIN)
    assert [p.reason for p in check_record(with_ref, DOMAIN, NOW)] == [RejectReason.INVALID_REF]
    no_ref = sign_record(make_record(kind=RecordKind.REPAIR), KEY, DOMAIN)
    (p,) = check_record(no_ref, DOMAIN, NOW)
    assert p.reason == RejectReason.INVALID_REF and "REPAIR" in p.detail
    # the deadline is inclusive, as on chain (block.timestamp > deadline)
    at_deadline = sign_record(make_record(deadline=NOW), KEY, DOMAIN)
    assert check_record(at_deadline, DOMAIN, NOW) == []


@pytest.mark.parametrize(
    "kw",
    [
        {"category": 70_000},
        {"kind": -1},
        {"amount": 2**128},
        {"subject": b"short"},
        {"nonce": True},
        {"deadline": "1"},
    ],
)
def test_unencodable_records_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(InvalidRecord):
        make_record(**kw)


def test_json_roundtrip_and_strict_parsing() -> None:
    signed = sign_record(make_record(nonce=2**200), KEY, DOMAIN)
    doc = signed_record_to_json(signed)
    assert doc["record"]["nonce"] == str(2**200)
    assert doc["record"]["subject"].startswith("0x") and len(doc["signature"]) == 130
    assert signed_record_from_json(doc) == signed
    # names for kinds, a 65-byte signature, optional fields omitted
    rec = dict(record_to_json(make_record(amount=0, effective_until=0)))
    for k in ("amount", "effectiveUntil", "ref"):
        del rec[k]
    rec["kind"], rec["subjectKind"] = "record", "entity"
    sig = sign_record(make_record(amount=0, effective_until=0), KEY, DOMAIN)
    got = signed_record_from_json({"record": rec, "signature": "0x" + sig.signature65().hex()})
    assert got == sig
    with pytest.raises(InvalidRecord, match="unknown record fields: colour"):
        record_from_json({**rec, "colour": 1})
    with pytest.raises(InvalidRecord, match="missing record fields: nonce"):
        record_from_json({k: v for k, v in rec.items() if k != "nonce"})
    with pytest.raises(InvalidRecord, match="subject must be 0x"):
        record_from_json({**rec, "subject": "0x12"})
    with pytest.raises(InvalidRecord, match="kind must be an integer"):
        record_from_json({**rec, "kind": "promotion"})
    with pytest.raises(InvalidSignature):
        signed_record_from_json({"record": rec, "signature": "0x" + "00" * 10})


def test_running_hash() -> None:
    ids = [keccak(bytes([i])) for i in range(3)]
    h = ZERO_HASH
    for i in ids:
        h = next_head(h, i)
    assert h == replay_head(ids) == keccak(keccak(keccak(ZERO_HASH + ids[0]) + ids[1]) + ids[2])
    assert replay_head([]) == ZERO_HASH


def test_dataclass_replace_revalidates() -> None:
    with pytest.raises(InvalidRecord):
        replace(make_record(), category=-5)


def _log(signed: SignedRecord, seq: int, head: bytes, *, with_ref: bool) -> dict[str, object]:
    """A CreditRecorded log as the contract lays it out (see ICreditLedger)."""
    rec = signed.record
    data = (
        (rec.meta | seq << 160).to_bytes(32, "big")
        + rec.times.to_bytes(32, "big")
        + rec.subject
        + rec.evidence_hash
        + rec.reason_hash
        + rec.nonce.to_bytes(32, "big")
        + signed.signature
        + head
        + (rec.ref if with_ref else b"")
    )
    return {"topics": [RECORDED_TOPIC, record_digest(rec, DOMAIN)], "data": "0x" + data.hex()}


def test_packed_calldata_and_log_decoding() -> None:
    rec = make_record(nonce=2**256 - 1, amount=2**128 - 1, deadline=2**64 - 1)
    signed = sign_record(rec, KEY, DOMAIN)
    meta, times, subject, *_rest, ref = signed.as_tuple()
    assert meta < 1 << 160 and meta >> 32 == rec.amount and meta & 0xFF == rec.kind
    assert times >> 192 == rec.deadline and subject == rec.subject and ref == ZERO_HASH
    # a RECORD's log has no ref word; the signer is recovered from the id topic
    dec = decode_recorded_log(_log(signed, 41, keccak(b"h"), with_ref=False))
    assert (dec.signed, dec.signer, dec.seq, dec.head_after) == (signed, AGENCY, 41, keccak(b"h"))
    amend = sign_record(make_record(kind=RecordKind.AMEND, ref=keccak(b"orig")), KEY, DOMAIN)
    dec = decode_recorded_log(_log(amend, 0, ZERO_HASH, with_ref=True))
    assert dec.signed == amend and dec.signer == AGENCY
    # the data length must match the kind
    with pytest.raises(InvalidRecord, match="does not match the record kind"):
        decode_recorded_log(_log(amend, 0, ZERO_HASH, with_ref=False))
    with pytest.raises(InvalidRecord, match="not a CreditRecorded log"):
        decode_recorded_log({"topics": [RECORDED_TOPIC], "data": "0x"})


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"nonce": 2**256 - 1, "amount": 2**128 - 1, "deadline": 2**64 - 1, "category": 65535},
        {"occurred_at": 2**64 - 1, "effective_from": 1, "effective_until": 0, "subject_kind": 1},
        {"kind": RecordKind.AMEND, "ref": keccak(b"orig")},
        {"kind": RecordKind.RESOLUTION_REJECTED, "ref": b"\xff" * 32, "evidence_hash": ZERO_HASH},
    ],
)
def test_bulk_decoder_agrees_with_the_dataclass_path(kw: dict[str, object]) -> None:
    """verify_recorded/recorded_fields (the audit's hot path) give exactly what
    decode_recorded_log + record_digest give, from the raw log words."""
    signed = sign_record(make_record(**kw), KEY, DOMAIN)
    rec = signed.record
    log = _log(signed, 2**64 - 1, keccak(b"h"), with_ref=rec.kind != RecordKind.RECORD)
    rid, data = log["topics"][1], bytes.fromhex(str(log["data"])[2:])  # type: ignore[index]
    dec = decode_recorded_log(log)
    digest, signer = verify_recorded(2, RECORDED_TOPIC, rid, data, DOMAIN.separator)
    assert digest == record_digest(rec, DOMAIN) == rid
    assert "0x" + signer.hex() == dec.signer.lower() == AGENCY.lower()
    assert recover_address(rid, signed.signature) == signer
    f = recorded_fields(data)
    assert recorded_fields(rid + data, 32) == f  # the audit reads id ‖ data without a copy
    assert (f.kind, f.subject_kind, f.category, f.subject, f.ref, f.nonce) == (
        rec.kind, rec.subject_kind, rec.category, rec.subject, rec.ref, rec.nonce
    )  # fmt: skip
    assert (f.seq, f.head_after, f.deadline) == (dec.seq, dec.head_after, rec.deadline)
    assert (f.effective_from, f.effective_until) == (rec.effective_from, rec.effective_until)
    # a changed signed field changes the digest (so the audit's id check catches it); seq (meta
    # bytes 4-11), r, vs and headAfter are not signed
    for at in [27, 29, 30, *range(63, len(data), 32)]:
        if at in (223, 255, 287):
            continue
        bent = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
        assert verify_recorded(2, RECORDED_TOPIC, rid, bent, DOMAIN.separator)[0] != rid, at
    moved = data[:11] + bytes([data[11] ^ 1]) + data[12:]
    assert verify_recorded(2, RECORDED_TOPIC, rid, moved, DOMAIN.separator)[0] == rid


def test_bulk_decoder_refuses_what_decode_refuses() -> None:
    signed = sign_record(make_record(), KEY, DOMAIN)
    rid = record_digest(signed.record, DOMAIN)
    data = bytes.fromhex(str(_log(signed, 0, ZERO_HASH, with_ref=False)["data"])[2:])
    sep = DOMAIN.separator
    with pytest.raises(InvalidRecord, match="does not match the record kind"):
        verify_recorded(2, RECORDED_TOPIC, rid, data + ZERO_HASH, sep)
    with pytest.raises(InvalidRecord, match="not a CreditRecorded log"):
        verify_recorded(1, RECORDED_TOPIC, rid, data, sep)
    with pytest.raises(InvalidRecord, match="not a CreditRecorded log"):
        verify_recorded(2, keccak(b"other"), rid, data, sep)
    with pytest.raises(InvalidRecord, match="not a CreditRecorded log"):
        verify_recorded(2, RECORDED_TOPIC, rid, data[:-1], sep)
    bad = high_s(signed).signature
    with pytest.raises(InvalidSignature, match="upper half"):
        verify_recorded(2, RECORDED_TOPIC, rid, data[:192] + bad + data[256:], sep)
    with pytest.raises(InvalidSignature, match="out of range"):
        recover_address(rid, bytes(64))
    with pytest.raises(InvalidSignature, match="out of range"):
        recover_address(rid, N.to_bytes(32, "big") + signed.signature[32:])
    with pytest.raises(InvalidSignature, match="32 bytes"):
        recover_address(rid[:31], signed.signature)
    # recovered from the id topic, as the ledger did: another id gives another (wrong) signer
    other = verify_recorded(2, RECORDED_TOPIC, keccak(b"x"), data, sep)
    assert other[0] == rid and other[1] != bytes.fromhex(AGENCY[2:])
