"""DIDs: the DIDRegistry client, did:ethr resolution from registry events, did:key dispatch.

``did:ethr:<chainId>:<address>`` (chain id in hex as the did:ethr method spec writes it, or in
decimal; ``did:ethr:<address>`` means this chain) names an identity in ``DIDRegistry``
(contracts/src/IDIDRegistry.sol, the ERC-1056 interface with EIP-712 signed variants and ISSUER
recovery). Resolution follows the did:ethr method spec and the reference resolver: read
``changed(identity)``, fetch that block's registry logs for the identity (``eth_getLogs``), follow
``previousChange`` back to zero, then replay the events oldest first into a DID document.

Invariants:

* Resolution is split in two: :func:`fetch_change_log` does all I/O (standard ``eth_call``,
  ``eth_getLogs`` and ``eth_getBlockByNumber`` only) and :func:`build_resolution` is pure, with
  ``now`` a parameter: a delegate or attribute counts only while ``validTo > now`` and
  ``validTo`` is after its own block's time (the contract's ``validDelegate`` compares strictly
  with ``block.timestamp``; a revocation sets ``validTo`` to that time), so a revocation holds
  even when a test chain's clock runs ahead of ``now``.
* The controller is the owner after the last DIDOwnerChanged (the identity itself if none). An
  owner of zero deactivates the DID: the document keeps only its id and the metadata says
  ``deactivated``; later events are ignored (the contract refuses them anyway).
* An ISSUER recovery (DIDOwnerRecovered) drops every delegate, key and service published before
  it, as the contract drops the delegates; a plain ERC-1056 resolver ignores that event and
  would still list them until the new owner revokes them.
* Verification method ids follow the reference resolver (``#controller``, ``#delegate-N`` with N
  counting every delegate and ``did/pub/`` attribute event in order, ``#service-N``), so a DID
  resolves to the same document here and with ethr-did-resolver (up to the Ed25519 key type:
  ``Multikey`` here, as :mod:`identity.proofs` expects).
* A malformed DID is :class:`InvalidDidEthr`, one for another chain :class:`DidChainMismatch`,
  an unknown method :class:`UnsupportedDidMethod` (all :class:`~ledger.errors.InvalidInput`);
  a malformed attribute value on chain never fails resolution, it is left out.
* Every write is simulated first (:class:`~ledger.chain.Sender`), so a refused change fails with
  the contract's named error (:class:`~ledger.errors.ContractReverted`) and sends nothing.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, Literal, cast

from coincurve import PublicKey as Secp256k1PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from identity.multikey import (
    DID_KEY_PREFIX,
    InvalidMultikey,
    decode_public_multikey,
    encode_public_multikey,
    public_key_from_did_key,
    resolve_did_key,
)
from ledger.chain import Chain, Sender, TxResult, encode_call, parse_address
from ledger.contracts import load_artifact
from ledger.errors import ChainError, ConfigurationError, InvalidInput, NotFound

__all__ = [
    "DID_ETHR_PREFIX",
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "ED25519_SIGAUTH_ATTRIBUTE",
    "ED25519_VERIKEY_ATTRIBUTE",
    "SIGAUTH",
    "SIGNED_OPS",
    "VERIKEY",
    "ZERO_ADDRESS",
    "AttributeChanged",
    "ChangeLog",
    "DIDEvent",
    "DIDRegistryClient",
    "DIDResolution",
    "DelegateChanged",
    "DidChainMismatch",
    "InvalidDidEthr",
    "OwnerChanged",
    "OwnerRecovered",
    "SignedChange",
    "SignedOp",
    "UnsupportedDidMethod",
    "build_resolution",
    "bytes32_text",
    "change_fields_from_json",
    "decode_log",
    "did_ethr",
    "fetch_change_log",
    "key_resolver",
    "parse_did_ethr",
    "resolve",
    "resolve_did_ethr",
    "sign_typed_data",
    "signed_change",
    "signed_change_typed_data",
    "split_signature",
    "text_from_bytes32",
    "typed_data_json",
]

DID_ETHR_PREFIX: Final = "did:ethr:"
DOMAIN_NAME: Final = "zhixin DIDRegistry"
DOMAIN_VERSION: Final = "1"
ZERO_ADDRESS: Final = "0x0000000000000000000000000000000000000000"
VERIKEY: Final = "veriKey"
"""Delegate type of a key that may make assertions (assertionMethod)."""
SIGAUTH: Final = "sigAuth"
"""Delegate type of a key that may also authenticate (authentication + assertionMethod)."""
ED25519_VERIKEY_ATTRIBUTE: Final = "did/pub/Ed25519/veriKey/base58"
"""Attribute name publishing a raw 32-byte Ed25519 key as an assertion key."""
ED25519_SIGAUTH_ATTRIBUTE: Final = "did/pub/Ed25519/sigAuth/base58"
"""Attribute name publishing a raw 32-byte Ed25519 key that may also authenticate: the key a
did:ethr holder signs presentations with."""

_SECP_RECOVERY: Final = "EcdsaSecp256k1RecoveryMethod2020"
_CTX_DID: Final = "https://www.w3.org/ns/did/v1"
_CTX_SECP_RECOVERY: Final = "https://w3id.org/security/suites/secp256k1recovery-2020/v2"
_CTX_MULTIKEY: Final = "https://w3id.org/security/multikey/v1"
_CTX_JWS: Final = "https://w3id.org/security/suites/jws-2020/v1"
_NETWORK_NAMES: Final = {"mainnet": 1, "sepolia": 11155111, "holesky": 17000, "goerli": 5}
_ADDRESS_RE: Final = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PUBKEY_RE: Final = re.compile(r"^0x[0-9a-fA-F]{66}$")
_NETWORK_RE: Final = re.compile(r"^(0x[0-9a-fA-F]+|[0-9]+|[a-z][a-z0-9-]*)$")
_ATTR_RE: Final = re.compile(r"^did/(pub|svc)/(\w+)(?:/(\w+))?(?:/(\w+))?$")


class InvalidDidEthr(InvalidInput):
    """A string is not a well-formed ``did:ethr`` DID with an address identifier."""

    code = "invalid-did"


class DidChainMismatch(InvalidInput):
    """A ``did:ethr`` DID names a network other than the chain we are connected to."""

    code = "did-wrong-chain"


class UnsupportedDidMethod(InvalidInput):
    """The DID uses a method we do not resolve (only did:ethr and did:key)."""

    code = "unsupported-did-method"


# ---------------------------------------------------------------------------------------------
# DIDs


def _chain_id_of(network: str) -> int:
    if network.startswith("0x"):
        return int(network, 16)
    if network.isdigit():
        return int(network)
    if network in _NETWORK_NAMES:
        return _NETWORK_NAMES[network]
    return -1


def parse_did_ethr(did: str, chain_id: int) -> str:
    """The checksummed identity address of ``did`` on chain ``chain_id``.

    Accepts ``did:ethr:<address>`` (this chain implied) and ``did:ethr:<network>:<address>``
    with the network as a hex (``0x4e2b0f``) or decimal chain id or a public network name.
    """
    if not isinstance(did, str):
        raise InvalidDidEthr(f"DID must be a string, not {type(did).__name__}")
    if not did.startswith(DID_ETHR_PREFIX):
        raise InvalidDidEthr(f"not a did:ethr DID (expected prefix {DID_ETHR_PREFIX!r})")
    msid = did[len(DID_ETHR_PREFIX) :]
    if any(c in msid for c in "#?/;"):
        raise InvalidDidEthr("resolve a DID, not a DID URL: drop the path, query or fragment")
    parts = msid.split(":")
    if len(parts) > 2 or not all(parts):
        raise InvalidDidEthr("did:ethr must be did:ethr:[<network>:]0x<40 hex digits>")
    ident = parts[-1]
    if len(parts) == 2:
        network = parts[0]
        if not _NETWORK_RE.match(network):
            raise InvalidDidEthr(f"did:ethr network {network!r} is not a chain id or a name")
        named = _chain_id_of(network)
        if named != chain_id:
            what = f"chain id {named}" if named >= 0 else "an unknown network"
            raise DidChainMismatch(
                f"{did} names network {network!r} ({what}); this registry is on chain id "
                f"{chain_id} (did:ethr:{hex(chain_id)}:...)"
            )
    if _PUBKEY_RE.match(ident):
        raise InvalidDidEthr(
            "did:ethr with a public-key identifier is not supported; use an address"
        )
    if not _ADDRESS_RE.match(ident):
        raise InvalidDidEthr(f"did:ethr identifier must be 0x and 40 hex digits, got {ident!r}")
    # the method spec makes the address case-insensitive: no EIP-55 check
    return to_checksum_address(ident.lower())


def did_ethr(address: str, chain_id: int) -> str:
    """The canonical DID of ``address`` on ``chain_id``: hex chain id, lowercase address."""
    return f"{DID_ETHR_PREFIX}{hex(chain_id)}:{parse_address(address).lower()}"


def bytes32_text(text: str | bytes) -> bytes:
    """A short name (``sigAuth``, ``did/pub/...``) as ERC-1056's bytes32: UTF-8, 0-padded."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if len(raw) > 32:
        raise InvalidInput(f"{text!r} is longer than 32 bytes")
    return raw.ljust(32, b"\0")


def text_from_bytes32(raw: bytes) -> str | None:
    """The name a bytes32 carries, or None if it is not 0-padded UTF-8."""
    body = bytes(raw).rstrip(b"\0")
    if b"\0" in body:
        return None
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class DIDEvent:
    """One registry event about ``identity``; ``previous_change`` is the block before."""

    block_number: int
    log_index: int
    identity: str
    previous_change: int


@dataclass(frozen=True)
class OwnerChanged(DIDEvent):
    owner: str


@dataclass(frozen=True)
class OwnerRecovered(DIDEvent):
    """An ISSUER re-bound the DID; always right after the OwnerChanged it explains."""

    owner: str
    issuer: str
    evidence_hash: bytes


@dataclass(frozen=True)
class DelegateChanged(DIDEvent):
    delegate_type: bytes
    delegate: str
    valid_to: int


@dataclass(frozen=True)
class AttributeChanged(DIDEvent):
    name: bytes
    value: bytes
    valid_to: int


_EVENT_SIGS: Final = {
    "DIDOwnerChanged(address,address,uint256)": ["address", "uint256"],
    "DIDDelegateChanged(address,bytes32,address,uint256,uint256)": [
        "bytes32",
        "address",
        "uint256",
        "uint256",
    ],
    "DIDAttributeChanged(address,bytes32,bytes,uint256,uint256)": [
        "bytes32",
        "bytes",
        "uint256",
        "uint256",
    ],
    "DIDOwnerRecovered(address,address,address,bytes32,uint256)": [
        "address",
        "bytes32",
        "uint256",
    ],
}
_TOPICS: Final = {keccak(text=sig): sig.split("(")[0] for sig in _EVENT_SIGS}
_DATA_TYPES: Final = {sig.split("(")[0]: types for sig, types in _EVENT_SIGS.items()}


def _topic_address(topic: bytes) -> str:
    return to_checksum_address(bytes(topic)[-20:])


def decode_log(log: Mapping[str, Any]) -> DIDEvent | None:
    """The registry event in an ``eth_getLogs`` entry, or None for any other log."""
    topics = [bytes(t) for t in log["topics"]]
    if len(topics) < 2:
        return None
    name = _TOPICS.get(topics[0])
    if name is None:
        return None
    try:
        values = abi_decode(_DATA_TYPES[name], bytes(log["data"]))
    except Exception:
        return None
    bn, li, ident = int(log["blockNumber"]), int(log["logIndex"]), _topic_address(topics[1])
    if name == "DIDOwnerChanged":
        return OwnerChanged(bn, li, ident, int(values[1]), owner=to_checksum_address(values[0]))
    if name == "DIDDelegateChanged":
        return DelegateChanged(
            bn,
            li,
            ident,
            int(values[3]),
            delegate_type=bytes(values[0]),
            delegate=to_checksum_address(values[1]),
            valid_to=int(values[2]),
        )
    if name == "DIDAttributeChanged":
        return AttributeChanged(
            bn,
            li,
            ident,
            int(values[3]),
            name=bytes(values[0]),
            value=bytes(values[1]),
            valid_to=int(values[2]),
        )
    if len(topics) < 3:
        return None
    return OwnerRecovered(
        bn,
        li,
        ident,
        int(values[2]),
        owner=to_checksum_address(values[0]),
        issuer=_topic_address(topics[2]),
        evidence_hash=bytes(values[1]),
    )


@dataclass(frozen=True)
class ChangeLog:
    """An identity's registry events, oldest first, and the timestamps of their blocks."""

    identity: str
    chain_id: int
    events: tuple[DIDEvent, ...]
    block_timestamps: Mapping[int, int] = field(default_factory=dict)

    @property
    def recoveries(self) -> tuple[OwnerRecovered, ...]:
        return tuple(e for e in self.events if isinstance(e, OwnerRecovered))


# ---------------------------------------------------------------------------------------------
# Pure resolution


@dataclass(frozen=True)
class DIDResolution:
    """A W3C DID resolution result: the document and its metadata."""

    did_document: dict[str, Any]
    did_document_metadata: dict[str, Any]
    did_resolution_metadata: dict[str, Any] = field(
        default_factory=lambda: {"contentType": "application/did+ld+json"}
    )

    @property
    def deactivated(self) -> bool:
        return bool(self.did_document_metadata.get("deactivated", False))

    def to_json(self) -> dict[str, Any]:
        return {
            "didDocument": self.did_document,
            "didDocumentMetadata": self.did_document_metadata,
            "didResolutionMetadata": self.did_resolution_metadata,
        }

    def verification_method(self, vm_id: str, relationship: str) -> dict[str, Any]:
        """The method ``vm_id`` if the document lists it under ``relationship``, else NotFound."""
        refs = self.did_document.get(relationship, [])
        if vm_id not in refs:
            raise NotFound(f"{vm_id} is not a current {relationship} method of its DID")
        for vm in self.did_document.get("verificationMethod", []):
            if vm.get("id") == vm_id:
                return cast(dict[str, Any], vm)
        raise NotFound(f"{vm_id} is referenced but not defined")

    def ed25519_key(self, vm_id: str, relationship: str = "assertionMethod") -> Ed25519PublicKey:
        """The Ed25519 key of ``vm_id``, only if it is currently authorized for ``relationship``."""
        vm = self.verification_method(vm_id, relationship)
        mb = vm.get("publicKeyMultibase")
        if vm.get("type") not in ("Multikey", "Ed25519VerificationKey2020") or not mb:
            raise NotFound(f"{vm_id} is not an Ed25519 key")
        return decode_public_multikey(mb)


def _unix(now: datetime | int) -> int:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise TypeError("now must be timezone-aware")
        return int(now.timestamp())
    return int(now)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ed25519_multikey(value: bytes, encoding: str | None) -> str | None:
    """Accepts the raw 32-byte key (the method spec), multicodec bytes, or a multibase string."""
    try:
        if len(value) == 32:
            return encode_public_multikey(Ed25519PublicKey.from_public_bytes(value))
        if len(value) == 34 and value[:2] == b"\xed\x01":
            return encode_public_multikey(Ed25519PublicKey.from_public_bytes(value[2:]))
        text = value.decode("ascii")
        return encode_public_multikey(decode_public_multikey(text))
    except (ValueError, UnicodeDecodeError, InvalidMultikey):
        return None


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _secp256k1_jwk(value: bytes) -> dict[str, str] | None:
    try:
        point = Secp256k1PublicKey(value).format(compressed=False)
    except (ValueError, TypeError):
        return None
    return {"kty": "EC", "crv": "secp256k1", "x": _b64url(point[1:33]), "y": _b64url(point[33:])}


def _attribute_method(
    vm_id: str, did: str, algorithm: str, encoding: str | None, value: bytes
) -> dict[str, Any] | None:
    if algorithm == "Ed25519":
        mb = _ed25519_multikey(value, encoding)
        if mb is None:
            return None
        return {"id": vm_id, "type": "Multikey", "controller": did, "publicKeyMultibase": mb}
    if algorithm == "Secp256k1":
        jwk = _secp256k1_jwk(value)
        if jwk is None:
            return None
        return {
            "id": vm_id,
            "type": "EcdsaSecp256k1VerificationKey2019",
            "controller": did,
            "publicKeyJwk": jwk,
        }
    return None  # other key types are not used in zhixin


def _service_endpoint(value: bytes) -> Any:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_resolution(did: str, log: ChangeLog, now: datetime | int) -> DIDResolution:
    """The DID document of ``did`` from its change log, as of ``now`` (pure).

    Replays the events oldest first; entries are keyed (kind, type/name, delegate/value) so a
    revocation or expiry removes exactly what it names, and a re-added entry gets a new id.
    """
    t = _unix(now)
    chain_id, identity = log.chain_id, log.identity
    controller = identity
    deactivated = False
    version = 0
    delegate_n = service_n = 0
    methods: dict[tuple[Any, ...], dict[str, Any]] = {}
    auth: dict[tuple[Any, ...], str] = {}
    assertion: dict[tuple[Any, ...], str] = {}
    services: dict[tuple[Any, ...], dict[str, Any]] = {}

    def drop(key: tuple[Any, ...]) -> None:
        methods.pop(key, None)
        auth.pop(key, None)
        assertion.pop(key, None)
        services.pop(key, None)

    def live(ev: DelegateChanged | AttributeChanged) -> bool:
        # validTo at or before the event's own block time is a revocation (or a zero validity),
        # whatever ``now`` says: the contract's validDelegate compares with block.timestamp too
        at = log.block_timestamps.get(ev.block_number)
        return ev.valid_to > t and (at is None or ev.valid_to > at)

    for ev in log.events:
        version = max(version, ev.block_number)
        if isinstance(ev, OwnerChanged):
            controller = ev.owner
            if int(ev.owner, 16) == 0:
                deactivated = True
                break
        elif isinstance(ev, DelegateChanged):
            delegate_n += 1
            key: tuple[Any, ...] = ("delegate", ev.delegate_type, ev.delegate)
            kind = text_from_bytes32(ev.delegate_type)
            if not live(ev):
                drop(key)
            elif kind in (VERIKEY, SIGAUTH):
                vm_id = f"{did}#delegate-{delegate_n}"
                methods[key] = {
                    "id": vm_id,
                    "type": _SECP_RECOVERY,
                    "controller": did,
                    "blockchainAccountId": f"eip155:{chain_id}:{ev.delegate}",
                }
                assertion[key] = vm_id
                if kind == SIGAUTH:
                    auth[key] = vm_id
        elif isinstance(ev, AttributeChanged):
            name = text_from_bytes32(ev.name)
            m = _ATTR_RE.match(name) if name else None
            if m is None:
                continue
            section, algorithm, purpose, encoding = m.groups()
            key = ("attribute", ev.name, ev.value)
            if section == "pub":
                delegate_n += 1
                if not live(ev):
                    drop(key)
                    continue
                vm_id = f"{did}#delegate-{delegate_n}"
                vm = _attribute_method(vm_id, did, algorithm, encoding, ev.value)
                if vm is None:
                    continue
                methods[key] = vm
                if purpose == SIGAUTH:
                    auth[key] = vm_id
                    assertion[key] = vm_id
                elif purpose == VERIKEY or purpose is None:
                    assertion[key] = vm_id
            else:
                service_n += 1
                if not live(ev):
                    drop(key)
                    continue
                endpoint = _service_endpoint(ev.value)
                if endpoint is not None:
                    services[key] = {
                        "id": f"{did}#service-{service_n}",
                        "type": algorithm,
                        "serviceEndpoint": endpoint,
                    }
        elif isinstance(ev, OwnerRecovered):
            # the lost key may have been stolen: nothing it set up survives (the contract's
            # validDelegate agrees); ids keep counting so later entries match other resolvers
            methods.clear()
            auth.clear()
            assertion.clear()
            services.clear()

    meta: dict[str, Any] = {}
    if version:
        meta["versionId"] = str(version)
        ts = log.block_timestamps.get(version)
        if ts is not None:
            meta["updated"] = _iso(ts)
    if deactivated:
        meta["deactivated"] = True
        doc: dict[str, Any] = {
            "@context": [_CTX_DID, _CTX_SECP_RECOVERY],
            "id": did,
            "verificationMethod": [],
            "authentication": [],
            "assertionMethod": [],
        }
        return DIDResolution(doc, meta)

    controller_id = f"{did}#controller"
    vms = [
        {
            "id": controller_id,
            "type": _SECP_RECOVERY,
            "controller": did,
            "blockchainAccountId": f"eip155:{chain_id}:{controller}",
        },
        *methods.values(),
    ]
    contexts: list[str] = [_CTX_DID, _CTX_SECP_RECOVERY]
    if any(vm["type"] == "Multikey" for vm in vms):
        contexts.append(_CTX_MULTIKEY)
    if any("publicKeyJwk" in vm for vm in vms):
        contexts.append(_CTX_JWS)
    doc = {
        "@context": contexts,
        "id": did,
        "verificationMethod": vms,
        "authentication": [controller_id, *auth.values()],
        "assertionMethod": [controller_id, *assertion.values()],
    }
    if services:
        doc["service"] = list(services.values())
    return DIDResolution(doc, meta)


# ---------------------------------------------------------------------------------------------
# EIP-712 signed changes

SignedOp = Literal[
    "changeOwner", "addDelegate", "revokeDelegate", "setAttribute", "revokeAttribute"
]

# The operation's own fields, in the contract's argument order; nonce and deadline follow.
_OP_FIELDS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "changeOwner": (("newOwner", "address"),),
    "addDelegate": (("delegateType", "bytes32"), ("delegate", "address"), ("validity", "uint256")),
    "revokeDelegate": (("delegateType", "bytes32"), ("delegate", "address")),
    "setAttribute": (("name", "bytes32"), ("value", "bytes"), ("validity", "uint256")),
    "revokeAttribute": (("name", "bytes32"), ("value", "bytes")),
}
SIGNED_OPS: Final = tuple(_OP_FIELDS)


@dataclass(frozen=True)
class SignedChange:
    """A change signed by the identity's owner; anyone may relay it with :meth:`submit`."""

    op: SignedOp
    identity: str
    args: tuple[Any, ...]
    nonce: int
    deadline: int
    v: int
    r: bytes
    s: bytes


def _field_value(name: str, typ: str, value: Any) -> Any:
    if typ == "address":
        return parse_address(str(value), name)
    if typ == "bytes32":
        return bytes32_text(value)
    if typ == "bytes":
        if isinstance(value, str):
            return value.encode()
        return bytes(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise InvalidInput(f"{name} must be an unsigned 256-bit integer, got {value!r}")
    return value


def sign_typed_data(account: LocalAccount, typed: Mapping[str, Any]) -> tuple[int, bytes, bytes]:
    """(v, r, s) of ``account``'s EIP-712 signature; eth-account always gives a low s."""
    sig = Account.sign_typed_data(account.key, full_message=dict(typed))
    return int(sig.v), sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big")


def signed_change_typed_data(
    op: SignedOp,
    identity: str,
    fields: Mapping[str, Any],
    *,
    nonce: int,
    deadline: int,
    chain_id: int,
    registry: str,
) -> dict[str, Any]:
    """The full EIP-712 message (as for ``eth_signTypedData_v4``) of a signed change (pure).

    A wallet builds it from what it means to change; only ``nonce``, ``chain_id`` and
    ``registry`` come from the chain (a wrong one makes a signature the registry refuses).
    """
    if op not in _OP_FIELDS:
        raise InvalidInput(f"unknown signed operation {op!r}; one of {', '.join(SIGNED_OPS)}")
    spec = _OP_FIELDS[op]
    unknown = set(fields) - {n for n, _ in spec}
    missing = {n for n, _ in spec} - set(fields)
    if unknown or missing:
        raise InvalidInput(
            f"{op} takes fields {[n for n, _ in spec]}; "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    message: dict[str, Any] = {"identity": parse_address(identity, "identity")}
    for name, typ in spec:
        message[name] = _field_value(name, typ, fields[name])
    message["nonce"] = _field_value("nonce", "uint256", nonce)
    message["deadline"] = _field_value("deadline", "uint256", deadline)
    primary = op[0].upper() + op[1:]
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: [
                {"name": "identity", "type": "address"},
                *({"name": n, "type": t} for n, t in spec),
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": primary,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": parse_address(registry, "DIDRegistry address"),
        },
        "message": message,
    }


def signed_change(
    op: SignedOp, typed: Mapping[str, Any], v: int, r: bytes, s: bytes
) -> SignedChange:
    """The relayable change of a typed message from :func:`signed_change_typed_data`."""
    msg = typed["message"]
    return SignedChange(
        op=op,
        identity=msg["identity"],
        args=tuple(msg[n] for n, _ in _OP_FIELDS[op]),
        nonce=msg["nonce"],
        deadline=msg["deadline"],
        v=v,
        r=r,
        s=s,
    )


def split_signature(signature: bytes | str) -> tuple[int, bytes, bytes]:
    """(v, r, s) of a 65-byte ``r || s || v`` signature (``eth_signTypedData_v4`` output);
    ``v`` 0/1 is read as 27/28. Malleability is the contract's to refuse."""
    if isinstance(signature, str):
        text = signature.removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise InvalidInput("signature must be 0x and 130 hex digits") from None
    else:
        raw = bytes(signature)
    if len(raw) != 65:
        raise InvalidInput(f"signature must be 65 bytes (r, s, v), got {len(raw)}")
    v = raw[64] + 27 if raw[64] < 2 else raw[64]
    return v, raw[:32], raw[32:64]


def change_fields_from_json(op: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A signed change's fields as JSON carries them: ``bytes`` values are 0x-hex strings."""
    if op not in _OP_FIELDS:
        raise InvalidInput(f"unknown signed operation {op!r}; one of {', '.join(SIGNED_OPS)}")
    out = dict(fields)
    for name, typ in _OP_FIELDS[op]:
        value = out.get(name)
        if typ == "bytes" and value is not None:
            if not isinstance(value, str) or not re.fullmatch(r"0x(?:[0-9a-fA-F]{2})*", value):
                raise InvalidInput(f"{name} must be 0x-hex bytes")
            out[name] = bytes.fromhex(value[2:])
    return out


def typed_data_json(typed: Mapping[str, Any]) -> dict[str, Any]:
    """``typed`` with its bytes as 0x-hex: what a JSON client signs with eth_signTypedData_v4."""

    def enc(v: Any) -> Any:
        if isinstance(v, bytes | bytearray):
            return "0x" + bytes(v).hex()
        if isinstance(v, Mapping):
            return {k: enc(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [enc(x) for x in v]
        return v

    return cast(dict[str, Any], enc(typed))


# ---------------------------------------------------------------------------------------------
# Client


class DIDRegistryClient:
    """Reads, writes and signed relays against one DIDRegistry deployment."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = parse_address(address, "DIDRegistry address")
        self.contract = chain.contract(self.address, load_artifact("DIDRegistry").abi)

    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    def _call(self, fn: str, *args: Any) -> Any:
        return self.chain._rpc(lambda: getattr(self.contract.functions, fn)(*args).call())

    # reads

    def identity_owner(self, identity: str) -> str:
        return str(self._call("identityOwner", parse_address(identity, "identity")))

    def changed(self, identity: str) -> int:
        return int(self._call("changed", parse_address(identity, "identity")))

    def nonce(self, identity: str) -> int:
        return int(self._call("nonce", parse_address(identity, "identity")))

    def deactivated(self, identity: str) -> bool:
        return bool(self._call("deactivated", parse_address(identity, "identity")))

    def valid_delegate(self, identity: str, delegate_type: str | bytes, delegate: str) -> bool:
        return bool(
            self._call(
                "validDelegate",
                parse_address(identity, "identity"),
                bytes32_text(delegate_type),
                parse_address(delegate, "delegate"),
            )
        )

    def delegate_valid_to(self, identity: str, delegate_type: str | bytes, delegate: str) -> int:
        """Unix seconds until which ``delegate`` is (or was) a delegate; 0 if never added."""
        return int(
            self._call(
                "delegates",
                parse_address(identity, "identity"),
                keccak(bytes32_text(delegate_type)),
                parse_address(delegate, "delegate"),
            )
        )

    def domain_separator(self) -> bytes:
        return bytes(self._call("DOMAIN_SEPARATOR"))

    # writes by the owner (or, for recovery, an ISSUER)

    def _send(self, sender: Sender, fn: str, args: Sequence[Any], what: str) -> TxResult:
        res = sender.send(self.address, encode_call(self.contract, fn, args), what=what)
        assert isinstance(res, TxResult)
        return res

    def change_owner(self, sender: Sender, identity: str, new_owner: str) -> TxResult:
        """Rotates the key that controls ``identity``; the zero address deactivates it."""
        args = [parse_address(identity, "identity"), parse_address(new_owner, "new owner")]
        return self._send(sender, "changeOwner", args, "change DID owner")

    def add_delegate(
        self,
        sender: Sender,
        identity: str,
        delegate_type: str | bytes,
        delegate: str,
        validity: int,
    ) -> TxResult:
        args = [
            parse_address(identity, "identity"),
            bytes32_text(delegate_type),
            parse_address(delegate, "delegate"),
            _field_value("validity", "uint256", validity),
        ]
        return self._send(sender, "addDelegate", args, "add DID delegate")

    def revoke_delegate(
        self, sender: Sender, identity: str, delegate_type: str | bytes, delegate: str
    ) -> TxResult:
        args = [
            parse_address(identity, "identity"),
            bytes32_text(delegate_type),
            parse_address(delegate, "delegate"),
        ]
        return self._send(sender, "revokeDelegate", args, "revoke DID delegate")

    def set_attribute(
        self, sender: Sender, identity: str, name: str | bytes, value: bytes, validity: int
    ) -> TxResult:
        args = [
            parse_address(identity, "identity"),
            bytes32_text(name),
            bytes(value),
            _field_value("validity", "uint256", validity),
        ]
        return self._send(sender, "setAttribute", args, "set DID attribute")

    def revoke_attribute(
        self, sender: Sender, identity: str, name: str | bytes, value: bytes
    ) -> TxResult:
        args = [parse_address(identity, "identity"), bytes32_text(name), bytes(value)]
        return self._send(sender, "revokeAttribute", args, "revoke DID attribute")

    def recover_owner(
        self, sender: Sender, identity: str, new_owner: str, evidence_hash: bytes
    ) -> TxResult:
        """ISSUER only: re-binds a DID whose key was lost, after in-person re-verification."""
        if len(evidence_hash) != 32:
            raise InvalidInput("evidence hash must be 32 bytes (SHA-256 of the record)")
        args = [
            parse_address(identity, "identity"),
            parse_address(new_owner, "new owner"),
            bytes(evidence_hash),
        ]
        return self._send(sender, "recoverOwner", args, "recover DID owner")

    # EIP-712 signed changes

    def typed_data(
        self,
        op: SignedOp,
        identity: str,
        fields: Mapping[str, Any],
        *,
        nonce: int,
        deadline: int,
        chain_id: int | None = None,
    ) -> dict[str, Any]:
        """The full EIP-712 message (as for ``eth_signTypedData_v4``) of a signed change.

        ``chain_id`` exists so tests can show a payload for another chain is refused.
        """
        return signed_change_typed_data(
            op,
            identity,
            fields,
            nonce=nonce,
            deadline=deadline,
            chain_id=self.chain_id if chain_id is None else chain_id,
            registry=self.address,
        )

    def sign(
        self,
        account: LocalAccount,
        op: SignedOp,
        identity: str,
        fields: Mapping[str, Any],
        *,
        deadline: int,
        nonce: int | None = None,
        chain_id: int | None = None,
    ) -> SignedChange:
        """Signs a change with the owner's key; the nonce defaults to the identity's next one."""
        if nonce is None:
            nonce = self.nonce(identity)
        typed = self.typed_data(
            op, identity, fields, nonce=nonce, deadline=deadline, chain_id=chain_id
        )
        return signed_change(op, typed, *sign_typed_data(account, typed))

    def submit(self, sender: Sender, signed: SignedChange) -> TxResult:
        """Relays a signed change; ``sender`` pays and needs no relation to the identity."""
        args = [
            signed.identity,
            signed.v,
            signed.r,
            signed.s,
            *signed.args,
            signed.nonce,
            signed.deadline,
        ]
        return self._send(sender, f"{signed.op}Signed", args, f"{signed.op} (signed)")

    # history

    def change_log(self, identity: str, *, max_blocks: int = 100_000) -> ChangeLog:
        return fetch_change_log(self, identity, max_blocks=max_blocks)


# ---------------------------------------------------------------------------------------------
# I/O: fetch, then resolve


def fetch_change_log(
    client: DIDRegistryClient, identity: str, *, max_blocks: int = 100_000
) -> ChangeLog:
    """Walk ``changed(identity)`` and each event's ``previousChange`` back to the first change.

    One ``eth_getLogs`` per block that changed the identity, filtered on the registry and the
    identity topic, and one ``eth_getBlockByNumber`` for its timestamp. A pointer to a block
    without logs means the node lacks that history: an error, never a silently short document.
    """
    identity = parse_address(identity, "identity")
    w3 = client.chain.w3
    topic = "0x" + bytes(12).hex() + identity[2:].lower()
    events: list[DIDEvent] = []
    block = client.changed(identity)
    seen = 0
    while block:
        seen += 1
        if seen > max_blocks:
            raise ChainError(f"{identity}: more than {max_blocks} changed blocks, refusing to walk")
        params: Any = {
            "address": client.address,
            "fromBlock": block,
            "toBlock": block,
            "topics": [None, topic],
        }
        logs: list[Any] = client.chain._rpc(partial(w3.eth.get_logs, params))
        found = [e for e in (decode_log(lg) for lg in logs) if e]
        if not found:
            raise ChainError(
                f"registry says {identity} changed in block {block} but the node has no logs "
                "there (pruned history? use a node that keeps logs)"
            )
        found.sort(key=lambda e: e.log_index)
        events[:0] = found
        earlier = [e.previous_change for e in found if e.previous_change < block]
        block = min(earlier) if earlier else 0
    timestamps: dict[int, int] = {}
    for number in sorted({e.block_number for e in events}):
        blk: Any = client.chain._rpc(partial(w3.eth.get_block, number))
        timestamps[number] = int(blk["timestamp"])
    return ChangeLog(identity, client.chain_id, tuple(events), timestamps)


def resolve_did_ethr(
    did: str, client: DIDRegistryClient, *, now: datetime | int | None = None
) -> DIDResolution:
    """Resolve a ``did:ethr`` of this chain; ``now`` (default: wall clock) bounds validity."""
    identity = parse_did_ethr(did, client.chain_id)
    log = fetch_change_log(client, identity)
    return build_resolution(did, log, int(time.time()) if now is None else now)


def resolve(
    did: str, client: DIDRegistryClient | None = None, *, now: datetime | int | None = None
) -> DIDResolution:
    """Resolve ``did:ethr`` (needs ``client``) or Ed25519 ``did:key``."""
    if not isinstance(did, str):
        raise InvalidInput(f"DID must be a string, not {type(did).__name__}")
    if did.startswith(DID_ETHR_PREFIX):
        if client is None:
            raise ConfigurationError("resolving did:ethr needs a DIDRegistryClient")
        return resolve_did_ethr(did, client, now=now)
    if did.startswith(DID_KEY_PREFIX):
        return DIDResolution(resolve_did_key(did), {})
    method = did.split(":")[1] if did.startswith("did:") and did.count(":") >= 2 else None
    if method is None:
        raise InvalidInput(f"not a DID: {did[:64]!r}")
    raise UnsupportedDidMethod(f"DID method {method!r} is not supported (did:ethr, did:key)")


def key_resolver(
    client: DIDRegistryClient | None,
    *,
    relationship: str = "assertionMethod",
    now: datetime | int | None = None,
) -> Callable[[str], Ed25519PublicKey]:
    """A ``resolve_key`` for :func:`identity.proofs.verify_proof`.

    Given a verification method id, it returns the Ed25519 key only if the DID's current
    document lists the method under ``relationship`` (so a revoked or expired key fails).
    """

    def resolve_key(vm_id: str) -> Ed25519PublicKey:
        did, sep, _fragment = vm_id.partition("#")
        if not sep:
            raise InvalidInput(f"verification method {vm_id!r} has no fragment")
        if did.startswith(DID_KEY_PREFIX):
            return public_key_from_did_key(vm_id)
        return resolve(did, client, now=now).ed25519_key(vm_id, relationship)

    return resolve_key
