"""Credit records: model, EIP-712 hashing and signing, pure verification, log decoding.

Mirrors ``contracts/src/CreditLedger.sol`` (struct and constants in ``Common.sol``).

Invariants:
- Pure: data in, result out. No I/O and no clock (``now`` is always a parameter).
- A :class:`CreditRecord` always fits its EIP-712 types (ranges and 32-byte fields are checked on
  construction); whether it *makes sense* (kind, ref, category, dates, deadline, signature) is
  :func:`check_record`'s job, which reports every problem with the contract's reason code.
- The record id is the EIP-712 digest (:func:`record_digest`), byte-for-byte what the contract
  computes and what eth-account's ``encode_typed_data`` gives.
- Signatures are EIP-2098 compact (64 bytes: r ‖ vs, vs = (v-27) << 255 | s) with low s, as the
  contract requires; 65-byte (r, s, v) input is converted, never stored.
- The running hash is ``head' = keccak256(abi.encode(head, id))`` from zero, in ledger order.
- On the wire a signed record is the contract's 9-word ``PackedRecord`` (narrow fields packed
  into ``meta`` and ``times``); the CreditRecorded log carries the same words plus ``seq`` and
  ``headAfter``, and ``ref`` only for lifecycle kinds. The agency is not in the log: it is
  recovered from the id topic and the signature (docs/adr/0002-credit-ledger-gas.md).
"""

from __future__ import annotations

import functools
import re
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address

from .errors import InvalidInput

try:  # safe-pysha3 directly: the bulk paths below hash twice per record, and eth_utils.keccak
    # adds type dispatch (and may pick the 7x slower pycryptodome backend)
    from sha3 import keccak_256 as _keccak_256
except ImportError:  # pragma: no cover - pinned dependency
    from Crypto.Hash import keccak as _ck

    def _keccak_256(data: bytes) -> Any:
        return _ck.new(data=data, digest_bits=256)


__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "MAX_BATCH",
    "RECORDED_TOPIC",
    "RECORD_TYPE",
    "RECORD_TYPEHASH",
    "REJECTED_TOPIC",
    "ZERO_HASH",
    "CreditRecord",
    "Eip712Domain",
    "InvalidRecord",
    "InvalidSignature",
    "Problem",
    "RecordKind",
    "RecordedFields",
    "RecordedLog",
    "RejectReason",
    "SignedRecord",
    "SubjectKind",
    "check_record",
    "compact_signature",
    "decode_recorded_log",
    "decode_rejected_log",
    "next_head",
    "record_digest",
    "record_from_json",
    "record_to_json",
    "recorded_fields",
    "recover_address",
    "recover_from_digest",
    "recover_signer",
    "replay_head",
    "sign_record",
    "signed_record_from_json",
    "signed_record_to_json",
    "struct_hash",
    "typed_data",
    "verify_recorded",
]


class InvalidRecord(InvalidInput):
    """A record that cannot be encoded, parsed or decoded."""

    code = "invalid-record"


class InvalidSignature(InvalidRecord):
    """A signature that is malformed, malleable (high s) or recovers no key."""

    code = "invalid-signature"


class RecordKind(IntEnum):
    """CREDIT_KIND_* in Common.sol. Every kind but RECORD refers to an earlier record (ref)."""

    RECORD = 1
    AMEND = 2
    WITHDRAW = 3
    OBJECTION = 4
    RESOLUTION_UPHELD = 5
    REPAIR = 6
    RESOLUTION_REJECTED = 7


class SubjectKind(IntEnum):
    PERSON = 1
    ENTITY = 2


class RejectReason(IntEnum):
    """CREDIT_REJECT_* in Common.sol, in the order the contract checks them."""

    INVALID_KIND = 1
    INVALID_REF = 2
    INVALID_CATEGORY = 3
    INVALID_SUBJECT = 4
    INVALID_DATES = 5
    INVALID_SIGNATURE = 6
    NONCE_USED = 7
    EXPIRED = 8
    UNAUTHORIZED = 9


DOMAIN_NAME = "zhixin CreditLedger"
DOMAIN_VERSION = "1"
MAX_BATCH = 500
ZERO_HASH = bytes(32)

# (EIP-712 name, Python attribute, ABI type) in struct order; all static, so the ABI encoding of
# the struct is these words back to back.
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("kind", "kind", "uint8"),
    ("subjectKind", "subject_kind", "uint8"),
    ("category", "category", "uint16"),
    ("occurredAt", "occurred_at", "uint64"),
    ("effectiveFrom", "effective_from", "uint64"),
    ("effectiveUntil", "effective_until", "uint64"),
    ("deadline", "deadline", "uint64"),
    ("amount", "amount", "uint128"),
    ("subject", "subject", "bytes32"),
    ("evidenceHash", "evidence_hash", "bytes32"),
    ("reasonHash", "reason_hash", "bytes32"),
    ("ref", "ref", "bytes32"),
    ("nonce", "nonce", "uint256"),
)
RECORD_TYPE = "CreditRecord(" + ",".join(f"{t} {n}" for n, _, t in _FIELDS) + ")"
RECORD_TYPEHASH = keccak(text=RECORD_TYPE)
_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
RECORDED_TOPIC = keccak(
    text="CreditRecorded(bytes32,uint256,uint256,bytes32,bytes32,bytes32,uint256,bytes32,bytes32,"
    "bytes32)"
)
REJECTED_TOPIC = keccak(text="CreditRecordRejected(bytes32,uint8)")

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2
_S_MASK = (1 << 255) - 1
_U64 = (1 << 64) - 1


@dataclass(frozen=True, kw_only=True)
class CreditRecord:
    """One record exactly as the agency signs it. Hashes are raw 32-byte SHA-256 digests."""

    kind: int
    subject_kind: int
    subject: bytes
    category: int
    occurred_at: int
    effective_from: int
    deadline: int
    nonce: int
    evidence_hash: bytes = ZERO_HASH
    reason_hash: bytes = ZERO_HASH
    effective_until: int = 0
    amount: int = 0
    ref: bytes = ZERO_HASH

    def __post_init__(self) -> None:
        for _name, attr, typ in _FIELDS:
            value = getattr(self, attr)
            if typ == "bytes32":
                if not isinstance(value, bytes) or len(value) != 32:
                    raise InvalidRecord(f"{attr} must be 32 bytes, got {value!r}")
            else:
                bits = int(typ[4:])
                if not isinstance(value, int) or isinstance(value, bool):
                    raise InvalidRecord(f"{attr} must be an integer, got {value!r}")
                if not 0 <= value < 1 << bits:
                    raise InvalidRecord(f"{attr} must fit {typ}, got {value}")

    def words(self) -> bytes:
        """The 13 ABI words of the struct (also its EIP-712 encodeData: every field is static)."""
        out = bytearray()
        for _name, attr, typ in _FIELDS:
            value = getattr(self, attr)
            out += value if typ == "bytes32" else value.to_bytes(32, "big")
        return bytes(out)

    def as_tuple(self) -> tuple[Any, ...]:
        """The typed struct as web3 encodes a Solidity tuple argument (hashRecord)."""
        return tuple(getattr(self, attr) for _name, attr, _typ in _FIELDS)

    @property
    def meta(self) -> int:
        """kind | subjectKind << 8 | category << 16 | amount << 32: the packed narrow fields."""
        return self.kind | self.subject_kind << 8 | self.category << 16 | self.amount << 32

    @property
    def times(self) -> int:
        """occurredAt | effectiveFrom << 64 | effectiveUntil << 128 | deadline << 192."""
        return (
            self.occurred_at
            | self.effective_from << 64
            | self.effective_until << 128
            | self.deadline << 192
        )


@dataclass(frozen=True)
class SignedRecord:
    """A record and its agency's EIP-2098 compact signature (r ‖ vs, 64 bytes)."""

    record: CreditRecord
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise InvalidSignature("signature must be 64 bytes (EIP-2098 compact)")

    @property
    def r(self) -> bytes:
        return self.signature[:32]

    @property
    def vs(self) -> bytes:
        return self.signature[32:]

    @property
    def s(self) -> int:
        return int.from_bytes(self.vs, "big") & _S_MASK

    @property
    def v(self) -> int:
        """27 or 28."""
        return 27 + (self.vs[0] >> 7)

    def signature65(self) -> bytes:
        """The same signature as r ‖ s ‖ v (v 27/28), for tools that want 65 bytes."""
        return self.r + self.s.to_bytes(32, "big") + bytes([self.v])

    def as_tuple(self) -> tuple[Any, ...]:
        """The contract's ``PackedRecord`` (the calldata form of record/recordBatch) as web3
        encodes it: the agency signed the typed record; the ledger unpacks this to hash it."""
        rec = self.record
        return (
            rec.meta,
            rec.times,
            rec.subject,
            rec.evidence_hash,
            rec.reason_hash,
            rec.nonce,
            self.r,
            self.vs,
            rec.ref,
        )

    def packed_words(self) -> bytes:
        """The ABI encoding of :meth:`as_tuple` (288 bytes; every word is static), so a batch's
        calldata is the selector, offset, length and these back to back."""
        rec = self.record
        return (
            rec.meta.to_bytes(32, "big")
            + rec.times.to_bytes(32, "big")
            + rec.subject
            + rec.evidence_hash
            + rec.reason_hash
            + rec.nonce.to_bytes(32, "big")
            + self.signature
            + rec.ref
        )


@dataclass(frozen=True)
class Eip712Domain:
    """The ledger's EIP-712 domain: fixed name and version, this chain, this contract."""

    chain_id: int
    verifying_contract: str
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            contract = to_checksum_address(self.verifying_contract)
        except (ValueError, TypeError):
            raise InvalidInput(f"invalid contract address {self.verifying_contract!r}") from None
        object.__setattr__(self, "verifying_contract", contract)
        sep = keccak(
            _DOMAIN_TYPEHASH
            + keccak(text=DOMAIN_NAME)
            + keccak(text=DOMAIN_VERSION)
            + self.chain_id.to_bytes(32, "big")
            + bytes(12)
            + bytes.fromhex(contract[2:])
        )
        object.__setattr__(self, "separator", sep)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True)
class Problem:
    """One reason a record would be refused, with the contract's reason code."""

    reason: RejectReason
    field: str
    detail: str


class RecordedLog(NamedTuple):
    """A decoded CreditRecorded event."""

    signed: SignedRecord
    signer: str
    seq: int
    head_after: bytes


# ---- hashing, signing, recovery ----


def struct_hash(record: CreditRecord) -> bytes:
    return keccak(RECORD_TYPEHASH + record.words())


def record_digest(record: CreditRecord, domain: Eip712Domain) -> bytes:
    """The EIP-712 digest, which is also the record's id on the ledger."""
    return keccak(b"\x19\x01" + domain.separator + struct_hash(record))


def typed_data(record: CreditRecord, domain: Eip712Domain) -> dict[str, Any]:
    """The EIP-712 JSON form (eth_signTypedData_v4 / eth-account ``full_message``)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "CreditRecord": [{"name": n, "type": t} for n, _, t in _FIELDS],
        },
        "primaryType": "CreditRecord",
        "domain": domain.as_json(),
        "message": {
            n: ("0x" + getattr(record, a).hex() if t == "bytes32" else getattr(record, a))
            for n, a, t in _FIELDS
        },
    }


def compact_signature(signature: bytes) -> bytes:
    """EIP-2098 form of a 64- or 65-byte signature; refuses bad v, high s, zero r or s."""
    if len(signature) == 65:
        r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
        if v in (0, 1):
            v += 27
        if v not in (27, 28):
            raise InvalidSignature(f"signature v must be 27 or 28, got {signature[64]}")
        if s > _HALF_N:
            raise InvalidSignature("signature s is in the upper half of the curve order")
        compact = r + ((v - 27) << 255 | s).to_bytes(32, "big")
    elif len(signature) == 64:
        compact = bytes(signature)
    else:
        raise InvalidSignature(f"signature must be 64 or 65 bytes, got {len(signature)}")
    _check_rs(compact)
    return compact


def _check_rs(compact: bytes) -> None:
    r = int.from_bytes(compact[:32], "big")
    s = int.from_bytes(compact[32:], "big") & _S_MASK
    if s > _HALF_N:
        raise InvalidSignature("signature s is in the upper half of the curve order")
    if not (0 < r < _SECP256K1_N) or s == 0:
        raise InvalidSignature("signature r or s is out of range")


def sign_record(record: CreditRecord, private_key: bytes, domain: Eip712Domain) -> SignedRecord:
    """Signs the record's digest (libsecp256k1 always yields low s)."""
    sig = PrivateKey(private_key).sign_recoverable(record_digest(record, domain), hasher=None)
    r, s, recid = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    return SignedRecord(record, r + (recid << 255 | s).to_bytes(32, "big"))


def recover_signer(signed: SignedRecord, domain: Eip712Domain) -> str:
    """The checksum address that signed, exactly as the contract's ecrecover would find it."""
    return _recover_digest(signed, record_digest(signed.record, domain))


def recover_from_digest(signed: SignedRecord, digest: bytes) -> str:
    """:func:`recover_signer` for a caller that already holds the record's digest (its id)."""
    return _recover_digest(signed, digest)


def _recover_digest(signed: SignedRecord, digest: bytes) -> str:
    # libsecp256k1 directly with reused buffers (recover_address), same checks as coincurve's
    return _checksum(recover_address(digest, signed.signature))


@functools.lru_cache(maxsize=65_536)
def _checksum(raw: bytes) -> str:
    return to_checksum_address(raw)


# ---- verification ----


def check_record(
    signed: SignedRecord, domain: Eip712Domain, now: int, *, signature_checked: bool = False
) -> list[Problem]:
    """Every problem the contract would refuse the record for without reading chain state.

    Not checked here (they need the chain): nonce already used, agency role and category scope.
    ``signature_checked``: the caller already recovered the signer under ``domain`` (the one
    ecrecover is the costliest step of accepting a record; do it once).
    """
    rec = signed.record
    out: list[Problem] = []
    if rec.kind not in RecordKind._value2member_map_:
        out.append(Problem(RejectReason.INVALID_KIND, "kind", f"unknown record kind {rec.kind}"))
    elif rec.kind == RecordKind.RECORD and rec.ref != ZERO_HASH:
        out.append(Problem(RejectReason.INVALID_REF, "ref", "an original RECORD has no ref"))
    elif rec.kind != RecordKind.RECORD and rec.ref == ZERO_HASH:
        name = RecordKind(rec.kind).name
        out.append(
            Problem(RejectReason.INVALID_REF, "ref", f"{name} must name the record it refers to")
        )
    if rec.category == 0:
        out.append(Problem(RejectReason.INVALID_CATEGORY, "category", "category 0 is reserved"))
    if rec.subject_kind not in SubjectKind._value2member_map_:
        out.append(
            Problem(
                RejectReason.INVALID_SUBJECT,
                "subjectKind",
                f"subject kind must be 1 (person) or 2 (entity), got {rec.subject_kind}",
            )
        )
    if rec.subject == ZERO_HASH:
        out.append(Problem(RejectReason.INVALID_SUBJECT, "subject", "subject pseudonym is zero"))
    if rec.effective_until != 0 and rec.effective_until < rec.effective_from:
        out.append(
            Problem(
                RejectReason.INVALID_DATES,
                "effectiveUntil",
                f"effectiveUntil {rec.effective_until} is before effectiveFrom "
                f"{rec.effective_from}",
            )
        )
    if not signature_checked:
        try:
            recover_signer(signed, domain)
        except InvalidSignature as exc:
            out.append(Problem(RejectReason.INVALID_SIGNATURE, "signature", exc.detail))
    if now > rec.deadline:
        out.append(
            Problem(RejectReason.EXPIRED, "deadline", f"deadline {rec.deadline} passed (now {now})")
        )
    return out


def next_head(head: bytes, record_id: bytes) -> bytes:
    """One step of the running hash: keccak256(abi.encode(head, id))."""
    return keccak(head + record_id)


def replay_head(ids: Iterable[bytes], start: bytes = ZERO_HASH) -> bytes:
    h = start
    for record_id in ids:
        h = keccak(h + record_id)
    return h


# ---- JSON (hex strings) for the HTTP layer ----

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")


def record_to_json(record: CreditRecord) -> dict[str, Any]:
    """EIP-712 field names; hashes as 0x hex; amount and nonce as decimal strings (> 2^53)."""
    out: dict[str, Any] = {}
    for name, attr, typ in _FIELDS:
        value = getattr(record, attr)
        if typ == "bytes32":
            out[name] = "0x" + value.hex()
        elif typ in ("uint128", "uint256"):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def _parse_int(name: str, value: Any, names: Mapping[str, int] | None = None) -> int:
    if isinstance(value, bool):
        raise InvalidRecord(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        v = value.strip()
        if names is not None and v.upper().replace("-", "_") in names:
            return names[v.upper().replace("-", "_")]
        try:
            if v.lower().startswith("0x"):
                return int(v, 16)
            if v.isdigit():
                return int(v)
        except ValueError:
            pass
    raise InvalidRecord(f"{name} must be an integer, got {value!r}")


def _parse_bytes(name: str, value: Any) -> bytes:
    if not isinstance(value, str) or not _HEX32.fullmatch(value.strip()):
        raise InvalidRecord(f"{name} must be 0x followed by 64 hex digits, got {value!r}")
    return bytes.fromhex(value.strip()[2:])


def record_from_json(doc: Mapping[str, Any]) -> CreditRecord:
    """Strict: unknown keys are refused; kind and subjectKind also accept their names."""
    if not isinstance(doc, Mapping):
        raise InvalidRecord("record must be a JSON object")
    known = {n for n, _, _ in _FIELDS}
    extra = set(doc) - known
    if extra:
        raise InvalidRecord(f"unknown record fields: {', '.join(sorted(extra))}")
    optional = {"evidenceHash", "reasonHash", "effectiveUntil", "amount", "ref"}
    missing = known - set(doc) - optional
    if missing:
        raise InvalidRecord(f"missing record fields: {', '.join(sorted(missing))}")
    kwargs: dict[str, Any] = {}
    for name, attr, typ in _FIELDS:
        if name not in doc:
            continue
        value = doc[name]
        if typ == "bytes32":
            kwargs[attr] = _parse_bytes(name, value)
        elif name == "kind":
            kwargs[attr] = _parse_int(name, value, RecordKind.__members__)
        elif name == "subjectKind":
            kwargs[attr] = _parse_int(name, value, SubjectKind.__members__)
        else:
            kwargs[attr] = _parse_int(name, value)
    return CreditRecord(**kwargs)


def signed_record_to_json(signed: SignedRecord) -> dict[str, Any]:
    return {"record": record_to_json(signed.record), "signature": "0x" + signed.signature.hex()}


def signed_record_from_json(doc: Mapping[str, Any]) -> SignedRecord:
    """Accepts a 64-byte (EIP-2098) or 65-byte (r, s, v) hex signature."""
    if not isinstance(doc, Mapping) or set(doc) != {"record", "signature"}:
        raise InvalidRecord("signed record must be an object with 'record' and 'signature'")
    sig = doc["signature"]
    if not isinstance(sig, str) or not re.fullmatch(r"0x[0-9a-fA-F]{128}([0-9a-fA-F]{2})?", sig):
        raise InvalidSignature("signature must be 0x followed by 128 or 130 hex digits")
    return SignedRecord(record_from_json(doc["record"]), compact_signature(bytes.fromhex(sig[2:])))


# ---- logs ----


def _raw(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def decode_recorded_log(log: Mapping[str, Any], *, signer: str | None = None) -> RecordedLog:
    """A CreditRecorded log (web3 or raw JSON-RPC form) → record, signature, signer, seq, head.

    Layout (topics: event, id): meta, times, subject, evidenceHash, reasonHash, nonce, r, vs,
    headAfter, then ref for every kind but RECORD (a RECORD's ref is zero by rule, not logged).
    The signer is not in the log: it is recovered from the id topic and the signature (~75 µs),
    exactly as the ledger did before appending. Does not check that the id is the record's
    digest: an auditor compares ``record_digest(signed.record, domain)`` with the id topic.

    ``signer``: the address the caller already recovered from this very id topic and signature
    (recovery is a function of those two alone), e.g. the index follower for records this
    service accepted; it is returned as the signer without a second ecrecover.
    """
    topics = [_raw(t) for t in log["topics"]]
    data = _raw(log["data"])
    if len(topics) != 2 or topics[0] != RECORDED_TOPIC or len(data) not in (288, 320):
        raise InvalidRecord("not a CreditRecorded log")
    meta = int.from_bytes(data[0:32], "big")
    times = int.from_bytes(data[32:64], "big")
    if (len(data) == 320) != ((meta & 0xFF) != RecordKind.RECORD):
        raise InvalidRecord("CreditRecorded data length does not match the record kind")
    record = CreditRecord(
        kind=meta & 0xFF,
        subject_kind=(meta >> 8) & 0xFF,
        category=(meta >> 16) & 0xFFFF,
        amount=(meta >> 32) & ((1 << 128) - 1),
        occurred_at=times & _U64,
        effective_from=(times >> 64) & _U64,
        effective_until=(times >> 128) & _U64,
        deadline=(times >> 192) & _U64,
        subject=data[64:96],
        evidence_hash=data[96:128],
        reason_hash=data[128:160],
        nonce=int.from_bytes(data[160:192], "big"),
        ref=data[288:320] if len(data) == 320 else ZERO_HASH,
    )
    signed = SignedRecord(record, data[192:256])
    if signer is None:
        signer = _recover_digest(signed, topics[1])
    return RecordedLog(signed, signer, (meta >> 160) & _U64, data[256:288])


def decode_rejected_log(log: Mapping[str, Any]) -> tuple[bytes, RejectReason | int]:
    """A CreditRecordRejected log → (record id, reason)."""
    topics = [_raw(t) for t in log["topics"]]
    data = _raw(log["data"])
    if len(topics) != 2 or topics[0] != REJECTED_TOPIC or len(data) != 32:
        raise InvalidRecord("not a CreditRecordRejected log")
    code = int.from_bytes(data, "big")
    try:
        return topics[1], RejectReason(code)
    except ValueError:
        return topics[1], code


# ---- bulk verification (the audit replays a million logs: no dataclasses, no int round trips) ----

_Z = (bytes(31), bytes(30), bytes(24), bytes(16))
_N_BYTES = _SECP256K1_N.to_bytes(32, "big")
_HALF_N_BYTES = _HALF_N.to_bytes(32, "big")
_addresses: dict[bytes, bytes] = {}  # uncompressed public key -> address
_tls = threading.local()  # libsecp256k1 buffers per thread: cffi releases the GIL in C calls


def _secp_buffers() -> tuple[Any, ...]:
    from coincurve._libsecp256k1 import ffi, lib
    from coincurve.context import GLOBAL_CONTEXT
    from coincurve.flags import EC_UNCOMPRESSED

    out = ffi.new("unsigned char[65]")
    bufs = (
        GLOBAL_CONTEXT.ctx,
        lib.secp256k1_ecdsa_recoverable_signature_parse_compact,
        lib.secp256k1_ecdsa_recover,
        lib.secp256k1_ec_pubkey_serialize,
        ffi.new("secp256k1_ecdsa_recoverable_signature *"),
        ffi.new("secp256k1_pubkey *"),
        out,
        ffi.new("size_t *", 65),
        ffi.buffer(out, 65),
        EC_UNCOMPRESSED,
    )
    _tls.bufs = bufs
    return bufs


def _lean_struct_hash(data: bytes, ref: bytes) -> bytes:
    """struct_hash of a CreditRecorded log's record, built by slicing the packed words.

    meta (bytes 0-31, big-endian) holds seq in bytes 4-11, amount in 12-27, category in 28-29,
    subjectKind in 30 and kind in 31; times holds deadline, effectiveUntil, effectiveFrom and
    occurredAt in bytes 32-39, 40-47, 48-55, 56-63. Equal to :func:`struct_hash` of the decoded
    record (tested), without building it.
    """
    z31, z30, z24, z16 = _Z
    return _keccak_256(
        b"".join(
            (
                RECORD_TYPEHASH,
                z31, data[31:32], z31, data[30:31], z30, data[28:30],
                z24, data[56:64], z24, data[48:56], z24, data[40:48], z24, data[32:40],
                z16, data[12:28],
                data[64:160],  # subject, evidenceHash, reasonHash
                ref,
                data[160:192],  # nonce
            )
        )
    ).digest()  # fmt: skip


def _check_recorded(topic_count: int, topic0: bytes, data: bytes) -> None:
    if topic_count != 2 or topic0 != RECORDED_TOPIC or len(data) not in (288, 320):
        raise InvalidRecord("not a CreditRecorded log")
    if (len(data) == 320) != (data[31] != RecordKind.RECORD):
        raise InvalidRecord("CreditRecorded data length does not match the record kind")


def recover_address(digest: bytes, signature: bytes) -> bytes:
    """The raw 20-byte address that made an EIP-2098 ``signature`` over ``digest``.

    Same checks and result as :func:`recover_signer` (low s, r and s in range), through
    libsecp256k1 directly with reused buffers: this is the audit's one ecrecover per record.
    """
    if len(signature) != 64:
        raise InvalidSignature("signature must be 64 bytes (EIP-2098 compact)")
    if len(digest) != 32:  # libsecp256k1 would read 32 bytes regardless
        raise InvalidSignature("signature recovers no key: Message hash must be 32 bytes long.")
    v = signature[32] >> 7
    r, s = signature[:32], bytes((signature[32] & 0x7F,)) + signature[33:]
    # same-length big-endian bytes compare like the integers; _check_rs words the refusal
    if not (ZERO_HASH < r < _N_BYTES and ZERO_HASH < s <= _HALF_N_BYTES):
        _check_rs(signature)
    bufs = getattr(_tls, "bufs", None) or _secp_buffers()
    ctx, parse, recover, serialize, rsig, pub, out, out_len, buf, flag = bufs
    if not parse(ctx, rsig, r + s, v) or not recover(ctx, pub, rsig, digest):
        raise InvalidSignature("signature recovers no key: failed to recover ECDSA public key")
    out_len[0] = 65
    serialize(ctx, out, out_len, pub, flag)
    key = buf[1:65]
    addr = _addresses.get(key)
    if addr is None:  # a ledger has few agencies: hash each key once
        if len(_addresses) >= 4096:
            _addresses.clear()
        addr = _addresses[key] = _keccak_256(key).digest()[12:]
    return addr


def verify_recorded(
    topic_count: int, topic0: bytes, record_id: bytes, data: bytes, separator: bytes
) -> tuple[bytes, bytes]:
    """(recomputed EIP-712 digest, raw 20-byte signer) of a CreditRecorded log.

    The bulk form of :func:`decode_recorded_log` + :func:`record_digest`: the same layout and
    signature checks (raising the same errors) and the same signer (recovered from the id
    topic), with one ecrecover and no dataclasses. Whether the id equals the digest is the
    caller's check.
    """
    _check_recorded(topic_count, topic0, data)
    ref = data[288:320] if len(data) == 320 else ZERO_HASH
    digest = _keccak_256(b"\x19\x01" + separator + _lean_struct_hash(data, ref)).digest()
    return digest, recover_address(record_id, data[192:256])


class RecordedFields(NamedTuple):
    """The fields of a CreditRecorded log the audit's ordered checks read."""

    kind: int
    subject_kind: int
    category: int
    subject: bytes
    ref: bytes
    nonce: int
    seq: int
    head_after: bytes
    deadline: int
    effective_from: int
    effective_until: int


def recorded_fields(data: bytes, offset: int = 0) -> RecordedFields:
    """The fields of a CreditRecorded log's data starting at ``offset`` (layout as
    :func:`decode_recorded_log`; the caller has checked it with :func:`verify_recorded`).
    One ``struct`` call, no copy of the data."""
    seq, category, subject_kind, kind, deadline, until, eff, subject, nonce, head = (
        _FIELDS_STRUCT.unpack_from(data, offset)
    )
    ref = data[offset + 288 : offset + 320] if len(data) - offset == 320 else ZERO_HASH
    return _new_tuple(  # RecordedFields(...) without its Python-level __new__ frame
        RecordedFields,
        (kind, subject_kind, category, subject, ref, int.from_bytes(nonce, "big"), seq, head,
         deadline, eff, until),
    )  # fmt: skip


# meta: 4 pad, seq, amount (16), category, subjectKind, kind; times: deadline, effectiveUntil,
# effectiveFrom, occurredAt (skipped); subject; evidenceHash, reasonHash (skipped); nonce;
# r, vs (skipped); headAfter
_FIELDS_STRUCT = struct.Struct(">4xQ16xHBBQQQ8x32s64x32s64x32s")
_new_tuple = tuple.__new__
