"""The identity services behind the HTTP routes, built lazily from the runtime and cached.

Invariants:

* One :class:`IdentityServices` per app (``app.state.identity``), built on first use from
  ``app.state.runtime``; :mod:`api.runtime` is not changed for it.
* Caches are honest about freshness: the chain head is re-read at most every ``head_ttl``
  seconds, and everything else is as of that head block: DID change logs and issuer roles
  are cached per block; status lists are read whole once, then kept current by replaying
  ``StatusChanged`` events up to the head; anchors are immutable on chain and cached once
  found. A change made elsewhere is seen after at most ``head_ttl`` seconds (plus the
  block), one made by this service at once (it expires the head).
* The issuer is the demo "issuer" identity in dev mode only; without it every issuer route
  answers 503 ``issuer-not-configured``. Its Ed25519 key is derived from its chain key (dev
  only), published once as a ``did/pub/Ed25519/veriKey`` attribute of its ``did:ethr``, and
  its two status lists are created once per CredentialRegistry and remembered in
  ``issuer_status_lists``. Status indexes are random and unique (``issued_credentials``).
* A DID change signed by the DID's owner (EIP-712) is relayed from the service's own relayer
  account, never the outbox's (each Sender owns its nonce); the signature is the only
  authorization, and the registry checks it. A lost-key recovery is sent by the configured
  issuer, so the chain records which ISSUER re-bound the DID.
* Challenges go through a dedicated engine on the same database; for SQLite it commits with
  ``synchronous=NORMAL`` (WAL): an OS crash may forget the last uses of challenges that
  expire within minutes anyway, while the outbox keeps its own fsync'd engine.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from eth_utils import keccak
from fastapi import Request
from sqlalchemy import Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from identity.credentials import (
    Anchor,
    ChainRegistryView,
    CredentialRegistryClient,
    IssuerService,
    StatusListInfo,
    VerificationResult,
    anchor_request,
    build_identity_credential,
    issue_credential,
    issuer_did,
    verify_credential,
)
from identity.did import (
    DID_ETHR_PREFIX,
    ED25519_VERIKEY_ATTRIBUTE,
    SIGNED_OPS,
    ChangeLog,
    DIDRegistryClient,
    DIDResolution,
    InvalidDidEthr,
    UnsupportedDidMethod,
    build_resolution,
    change_fields_from_json,
    did_ethr,
    fetch_change_log,
    parse_did_ethr,
    resolve,
    signed_change,
    signed_change_typed_data,
    split_signature,
    typed_data_json,
)
from identity.multikey import (
    DID_KEY_PREFIX,
    encode_public_multikey,
    public_key_from_did_key,
    resolve_did_key,
)
from identity.presentations import (
    Challenge,
    ChallengeStore,
    PresentationResult,
    holder_key_from_log,
    verify_presentation,
)
from identity.proofs import EDDSA_JCS_2022
from identity.status import (
    StatusPurpose,
    format_datetime,
    list_id_from_url,
    status_list_credential,
    status_list_url,
)
from identity.store import issued_credentials, issuer_status_lists
from ledger.chain import Sender, TxResult, new_account
from ledger.deploy import decoder
from ledger.errors import Forbidden, InvalidInput, NotFound, ZhixinError
from ledger.keys import account_from_hex
from ledger.roles import Role, RolesClient

from .runtime import Runtime

__all__ = [
    "CachedRegistryView",
    "IdentityServices",
    "IssuerNotConfigured",
    "get_identity",
]

STATUS_LIST_LENGTH: Final = 131_072
ISSUER_KEY_VALIDITY: Final = 10 * 365 * 86400
CHANGE_DEADLINE: Final = 15 * 60
"""Seconds (chain time) a prepared DID change may wait for its signature and relay."""
_MAX_CACHE: Final = 100_000
T = TypeVar("T")


@functools.lru_cache(maxsize=4096)
def _did_key_public(vm_id: str) -> Ed25519PublicKey:
    """A did:key is its key (a pure function of the string); decoding it cost ~30 us."""
    return public_key_from_did_key(vm_id)


class IssuerNotConfigured(ZhixinError):
    code = "issuer-not-configured"
    status = 503


class _ServiceStarting(ZhixinError):
    code = "starting"
    status = 503


class _Head:
    """The chain head, re-read at most every ``ttl`` seconds."""

    def __init__(self, read: Callable[[], int], ttl: float) -> None:
        self.read = read
        self.ttl = ttl
        self._value = -1
        self._at = 0.0
        self._lock = threading.Lock()

    def expire(self) -> None:
        self._at = 0.0

    def get(self) -> int:
        now = time.monotonic()
        if now - self._at < self.ttl:
            return self._value
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                self._value = self.read()
                self._at = time.monotonic()
            return self._value


_STATUS_CHANGED: Final = "0x" + keccak(text="StatusChanged(uint256,uint256,bool,address)").hex()


@dataclass
class _ListState:
    """One on-chain status list as of ``block``: read whole once, then kept by events."""

    info: StatusListInfo
    bits: bytearray
    block: int
    credential: Mapping[str, Any] | None = None


class CachedRegistryView:
    """:class:`~identity.credentials.RegistryView` over the chain with the module's caches.

    Status lists are read whole once, then brought to the current head block by replaying
    ``StatusChanged`` events (each carries the bit's new value, so replaying an event the
    first read already saw is harmless): every status answer is as of the head block.
    """

    def __init__(self, inner: ChainRegistryView, head: _Head) -> None:
        self.inner = inner
        self.registry = inner.registry
        self.head = head
        self._lock = threading.RLock()
        self._roles: dict[str, tuple[int, bool]] = {}
        self._anchors: dict[bytes, Anchor] = {}
        self._no_anchor: dict[bytes, int] = {}
        self._lists: dict[int, _ListState] = {}

    def invalidate_status(self) -> None:
        """After a write here: the next answer re-reads the head (and so sees the write)."""
        self.head.expire()

    def has_issuer_role(self, account: str) -> bool:
        block = self.head.get()
        hit = self._roles.get(account)
        if hit is not None and hit[0] == block:
            return hit[1]
        with self._lock:
            value = self.inner.has_issuer_role(account)
            self._roles[account] = (block, value)
        return value

    def anchor_of(self, credential_hash: bytes) -> Anchor | None:
        found = self._anchors.get(credential_hash)
        if found is not None:
            return found
        block = self.head.get()
        if self._no_anchor.get(credential_hash) == block:
            return None
        with self._lock:
            anchor = self.inner.anchor_of(credential_hash)
            if anchor is None:
                if len(self._no_anchor) > _MAX_CACHE:
                    self._no_anchor.clear()
                self._no_anchor[credential_hash] = block
            else:
                if len(self._anchors) > _MAX_CACHE:
                    self._anchors.clear()
                self._anchors[credential_hash] = anchor  # anchors never change on chain
        return anchor

    def _list(self, list_id: int) -> _ListState:
        block = self.head.get()
        state = self._lists.get(list_id)
        if state is not None and state.block >= block:
            return state
        with self._lock:
            state = self._lists.get(list_id)
            if state is None:
                info = self.registry.status_list(list_id)  # NotFound for an unknown list
                bits = bytearray(self.registry.bitstring(list_id))
                state = _ListState(info, bits, block)
                self._lists[list_id] = state
            elif state.block < block:
                self._replay(state, block)
            return state

    def _replay(self, state: _ListState, block: int) -> None:
        chain = self.registry.chain
        params: Any = {
            "address": self.registry.address,
            "fromBlock": state.block + 1,
            "toBlock": block,
            "topics": [_STATUS_CHANGED, "0x" + state.info.list_id.to_bytes(32, "big").hex()],
        }
        logs = chain._rpc(partial(chain.w3.eth.get_logs, params))
        for lg in sorted(logs, key=lambda x: (int(x["blockNumber"]), int(x["logIndex"]))):
            index = int.from_bytes(bytes(lg["topics"][2]), "big")
            value = int.from_bytes(bytes(lg["data"])[:32], "big") != 0
            if index < len(state.bits) * 8:
                mask = 0x80 >> (index % 8)
                if value:
                    state.bits[index // 8] |= mask
                else:
                    state.bits[index // 8] &= ~mask & 0xFF
        if logs:
            state.credential = None
        state.block = block

    def status_bit(self, list_id: int, index: int) -> bool:
        bits = self._list(list_id).bits
        if not 0 <= index < len(bits) * 8:
            raise IndexError(index)
        return bool(bits[index // 8] & (0x80 >> (index % 8)))  # no 16 KiB copy per check

    def status_list_credential(self, url: str) -> Mapping[str, Any]:
        list_id = list_id_from_url(self.inner.status_base_url, url)
        if list_id is None:
            raise LookupError("not a status list URL of this registry")
        state = self._list(list_id)
        vc = state.credential
        if vc is None:
            vc = status_list_credential(
                url=url,
                issuer=issuer_did(state.info.owner, self.inner.chain_id),
                purpose=state.info.purpose,
                bitstring=bytes(state.bits),
                valid_from=datetime.now(UTC) - timedelta(seconds=1),
            )
            state.credential = vc
        return vc


@dataclass(frozen=True)
class IssuedRecord:
    credential: dict[str, Any]
    credential_id: str
    credential_hash: bytes
    tx_hash: str
    block_number: int


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _challenge_engine(engine: Engine) -> Engine:
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return engine
    own = create_engine(url.render_as_string(hide_password=False), connect_args={"timeout": 30})

    @event.listens_for(own, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return own


class IdentityServices:
    """DID resolution, credential and presentation verification, challenges, the issuer."""

    def __init__(self, rt: Runtime, *, head_ttl: float = 0.25) -> None:
        if rt.engine is None:
            raise _ServiceStarting("the database is not ready")
        self.rt = rt
        self.chain = rt.chain
        self.chain_id = rt.deployment.chain_id
        self.dids = DIDRegistryClient(rt.chain, rt.deployment.address("DIDRegistry"))
        self.registry = CredentialRegistryClient(
            rt.chain, rt.deployment.address("CredentialRegistry")
        )
        self.roles = RolesClient(rt.chain, rt.deployment.address("Roles"))
        st = rt.settings
        self.status_base_url = f"http://{st.host}:{st.port}/credentials/status-lists"
        self.head = _Head(self.chain.head, head_ttl)
        self.view = CachedRegistryView(
            ChainRegistryView(
                self.registry, self.roles, self.status_base_url, chain_id=self.chain_id
            ),
            self.head,
        )
        self.engine = rt.engine
        self.challenges = ChallengeStore(_challenge_engine(rt.engine))
        self.inline_verification = rt.engine.dialect.name == "sqlite"
        self._lock = threading.RLock()
        self._logs: dict[str, tuple[int, ChangeLog]] = {}
        self._keys: dict[tuple[str, str, int, int], Ed25519PublicKey] = {}
        self._issuer: IssuerService | None = None
        self._relayer: Sender | None = None

    # ---- DIDs ----

    def change_log(self, identity: str) -> ChangeLog:
        """The identity's registry events, re-read only when the head block moved."""
        block = self.head.get()
        hit = self._logs.get(identity)
        if hit is not None and hit[0] == block:
            return hit[1]
        with self._lock:
            log = fetch_change_log(self.dids, identity)
            if len(self._logs) > _MAX_CACHE:
                self._logs.clear()
            self._logs[identity] = (block, log)
        return log

    def resolve(self, did: str, now: datetime) -> DIDResolution:
        if not isinstance(did, str):
            raise InvalidInput("DID must be a string")
        if did.startswith(DID_ETHR_PREFIX):
            identity = parse_did_ethr(did, self.chain_id)
            return build_resolution(did, self.change_log(identity), now)
        if did.startswith(DID_KEY_PREFIX):
            return DIDResolution(resolve_did_key(did), {})
        return resolve(did, None, now=now)  # raises the right error for anything else

    def _keyed(
        self, kind: str, vm_id: str, now: datetime, build: Callable[[], Ed25519PublicKey]
    ) -> Ed25519PublicKey:
        """``build()``, cached per (verification method, head block, second of ``now``).

        A DID document is a pure function of the change log (read per block) and of ``now``
        in whole seconds (attribute and delegate validity), so this is exact; resolving the
        issuer's DID document on every presentation cost more than checking its signature.
        Failures are not cached.
        """
        key = (kind, vm_id, self.head.get(), int(now.timestamp()))
        hit = self._keys.get(key)
        if hit is not None:
            return hit
        value = build()
        if len(self._keys) > _MAX_CACHE:
            self._keys.clear()
        self._keys[key] = value
        return value

    def holder_key(self, vm_id: str, now: datetime) -> Ed25519PublicKey:
        did, sep, _ = vm_id.partition("#")
        if not sep:
            raise InvalidInput("verification method has no fragment")
        if did.startswith(DID_KEY_PREFIX):
            return _did_key_public(vm_id)
        if did.startswith(DID_ETHR_PREFIX):
            identity = parse_did_ethr(did, self.chain_id)
            return self._keyed(
                "authentication",
                vm_id,
                now,
                lambda: holder_key_from_log(vm_id, self.change_log(identity), now),
            )
        raise UnsupportedDidMethod("holder DIDs are did:key or did:ethr")

    def assertion_key(self, vm_id: str, now: datetime) -> Ed25519PublicKey:
        did, sep, _ = vm_id.partition("#")
        if not sep:
            raise InvalidInput("verification method has no fragment")
        if did.startswith(DID_KEY_PREFIX):
            return _did_key_public(vm_id)
        return self._keyed(
            "assertionMethod",
            vm_id,
            now,
            lambda: self.resolve(did, now).ed25519_key(vm_id, "assertionMethod"),
        )

    # ---- verification ----

    def verify_credential(self, vc: object, now: datetime) -> VerificationResult:
        return verify_credential(
            vc,
            resolve_key=lambda vm: self.assertion_key(vm, now),
            registry_view=self.view,
            now=now,
        )

    def verify_presentation(
        self,
        vp: object,
        now: datetime,
        *,
        challenge: str | None = None,
        domain: str | None = None,
    ) -> PresentationResult:
        return verify_presentation(
            vp,
            resolve_holder_key=lambda vm: self.holder_key(vm, now),
            credential_verifier=lambda vc: self.verify_credential(vc, now),
            consume_challenge=self.challenges.consume,
            now=now,
            expected_challenge=challenge,
            expected_domain=domain,
        )

    async def run_verification(self, verify: Callable[[], T]) -> T:
        """``verify()`` on the event loop when that cannot wait on a network: the challenge
        store is local SQLite (a WAL commit without fsync) and chain reads are cached per
        block; otherwise in a worker thread, as FastAPI runs sync routes."""
        if self.inline_verification:
            return verify()
        return await run_in_threadpool(verify)

    def issue_challenge(self, domain: str, now: datetime) -> Challenge:
        return self.challenges.issue(domain, now)

    # ---- DID changes: relayed owner-signed changes, ISSUER recovery ----

    def _ethr_identity(self, did: object) -> str:
        if isinstance(did, str) and did.startswith(DID_KEY_PREFIX):
            raise InvalidDidEthr(
                "a did:key is its key: it cannot rotate or be recovered (use a did:ethr)"
            )
        if not isinstance(did, str):
            raise InvalidDidEthr("DID must be a string")
        return parse_did_ethr(did, self.chain_id)

    def relayer(self) -> Sender:
        """The account that pays for relayed changes: its own, so that its nonce is never
        shared with the outbox's; it authorizes nothing (the owner's signature does), and the
        chains served here charge no gas."""
        if self._relayer is None:
            with self._lock:
                if self._relayer is None:
                    self._relayer = Sender(self.chain, new_account(), decoder())
        return self._relayer

    def _typed_change(
        self, identity: str, op: str, fields: Mapping[str, Any], nonce: int, deadline: int
    ) -> dict[str, Any]:
        if op not in SIGNED_OPS:
            raise InvalidInput(f"op must be one of {', '.join(SIGNED_OPS)}")
        return signed_change_typed_data(
            op,  # type: ignore[arg-type]
            identity,
            change_fields_from_json(op, fields),
            nonce=nonce,
            deadline=deadline,
            chain_id=self.chain_id,
            registry=self.dids.address,
        )

    def did_state(self, did: str) -> dict[str, Any]:
        """The canonical DID, its current owner and the nonce its next signed change needs."""
        identity = self._ethr_identity(did)
        owner = self.dids.identity_owner(identity)
        return {
            "did": did_ethr(identity, self.chain_id),
            "owner": owner,
            "deactivated": int(owner, 16) == 0,
            "nonce": self.dids.nonce(identity),
        }

    def prepare_change(self, did: str, op: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """What the owner of ``did`` signs (EIP-712) to make the change ``op``: the typed
        data with the identity's next nonce and a deadline 15 minutes ahead of the chain."""
        identity = self._ethr_identity(did)
        nonce = self.dids.nonce(identity)
        latest: Any = self.chain._rpc(lambda: self.chain.w3.eth.get_block("latest"))
        deadline = int(latest["timestamp"]) + CHANGE_DEADLINE
        typed = self._typed_change(identity, op, fields, nonce, deadline)
        return {
            "did": did_ethr(identity, self.chain_id),
            "owner": self.dids.identity_owner(identity),
            "chainId": self.chain_id,
            "registry": self.dids.address,
            "nonce": nonce,
            "deadline": deadline,
            "typedData": typed_data_json(typed),
        }

    def submit_change(
        self,
        did: str,
        op: str,
        fields: Mapping[str, Any],
        *,
        nonce: int,
        deadline: int,
        signature: str,
    ) -> TxResult:
        """Relay a change signed by the owner of ``did``; the registry checks the signature
        (simulated first, so a refused change is the contract's named error, nothing sent)."""
        identity = self._ethr_identity(did)
        typed = self._typed_change(identity, op, fields, nonce, deadline)
        change = signed_change(op, typed, *split_signature(signature))  # type: ignore[arg-type]
        tx = self.dids.submit(self.relayer(), change)
        self.head.expire()  # the next resolution sees the change at once
        return tx

    def recover(self, did: str, new_owner: str, evidence_hash: bytes) -> tuple[str, TxResult]:
        """Re-bind ``did`` to ``new_owner`` as this service's ISSUER (lost key, after in-person
        re-verification); returns the issuer's address, which the chain records."""
        identity = self._ethr_identity(did)
        iss = self.issuer()
        tx = self.dids.recover_owner(iss.sender, identity, new_owner, evidence_hash)
        self.head.expire()
        return iss.sender.address, tx

    # ---- issuer ----

    def issuer(self) -> IssuerService:
        """The configured issuer, set up on first use (key published, lists created)."""
        if self._issuer is not None:
            return self._issuer
        with self._lock:
            if self._issuer is None:
                self._issuer = self._setup_issuer()
            return self._issuer

    def _setup_issuer(self) -> IssuerService:
        ident = self.rt.dev_identities.get("issuer")
        if ident is None:
            raise IssuerNotConfigured(
                "no issuer is configured: issuing needs the demo issuer (serve --dev)"
            )
        account = account_from_hex(ident["private_key"], "issuer key")
        sender = Sender(self.chain, account, decoder())
        if not self.roles.has_role(Role.ISSUER, account.address):
            raise IssuerNotConfigured("the configured issuer account does not hold ISSUER")
        # dev only: a deterministic Ed25519 key bound to the issuer's chain key
        seed = hashlib.sha256(b"zhixin/dev-issuer/ed25519\0" + bytes(account.key)).digest()
        key = Ed25519PrivateKey.from_private_bytes(seed)
        did = issuer_did(account.address, self.chain_id)
        vm_id = self._published_key(did, key)
        if vm_id is None:
            raw = key.public_key().public_bytes_raw()
            self.dids.set_attribute(
                sender, account.address, ED25519_VERIKEY_ATTRIBUTE, raw, ISSUER_KEY_VALIDITY
            )
            self._logs.pop(account.address, None)
            vm_id = self._published_key(did, key, fresh=True)
            if vm_id is None:
                raise IssuerNotConfigured("the issuer key did not appear in its DID document")
        rev, sus = self._status_lists(sender)
        return IssuerService(
            sender=sender,
            registry=self.registry,
            private_key=key,
            key_id=vm_id.partition("#")[2],
            status_base_url=self.status_base_url,
            revocation_list_id=rev,
            suspension_list_id=sus,
            chain_id=self.chain_id,
        )

    def _published_key(self, did: str, key: Ed25519PrivateKey, fresh: bool = False) -> str | None:
        identity = parse_did_ethr(did, self.chain_id)
        log = fetch_change_log(self.dids, identity) if fresh else self.change_log(identity)
        doc = build_resolution(did, log, datetime.now(UTC)).did_document
        mb = encode_public_multikey(key.public_key())
        for vm in doc.get("verificationMethod", []):
            if vm.get("publicKeyMultibase") == mb and vm["id"] in doc.get("assertionMethod", []):
                return str(vm["id"])
        return None

    def _status_lists(self, sender: Sender) -> tuple[int, int]:
        t = issuer_status_lists
        where = (t.c.registry == self.registry.address) & (t.c.issuer == sender.address)
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(where)).first()
        if row is not None:
            return int(row.revocation_list_id), int(row.suspension_list_id)
        rev = self.registry.create_status_list(sender, StatusPurpose.REVOCATION, STATUS_LIST_LENGTH)
        sus = self.registry.create_status_list(sender, StatusPurpose.SUSPENSION, STATUS_LIST_LENGTH)
        with self.engine.begin() as conn:
            conn.execute(
                insert(t).values(
                    registry=self.registry.address,
                    issuer=sender.address,
                    revocation_list_id=rev,
                    suspension_list_id=sus,
                    length=STATUS_LIST_LENGTH,
                    created_at=_ms(datetime.now(UTC)),
                )
            )
        return rev, sus

    def _allocate(self, iss: IssuerService, credential_id: str, now: datetime) -> int:
        """A random status index not handed out before (unique in the database)."""
        for _ in range(32):
            index = secrets.randbelow(STATUS_LIST_LENGTH)
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(issued_credentials).values(
                            credential_id=credential_id,
                            registry=self.registry.address,
                            issuer=iss.sender.address,
                            revocation_list_id=iss.revocation_list_id,
                            suspension_list_id=iss.suspension_list_id,
                            status_index=index,
                            credential_hash=None,
                            issued_at=_ms(now),
                        )
                    )
                return index
            except IntegrityError:
                continue
        raise ZhixinError("no free status index found (the status list is nearly full)")

    def issue(
        self,
        *,
        holder: str,
        claims: Mapping[str, Any],
        valid_from: datetime,
        valid_until: datetime,
        now: datetime,
        cryptosuite: str = EDDSA_JCS_2022,
    ) -> IssuedRecord:
        """Sign and anchor an identity credential for ``holder`` (whose DID must resolve)."""
        self.resolve(holder, now)  # an invalid or foreign DID fails here, before anything
        iss = self.issuer()
        credential_id = f"urn:uuid:{uuid.uuid4()}"
        unsigned = build_identity_credential(
            issuer=iss.did,
            holder=holder,
            verified_name=claims.get("verifiedName"),  # type: ignore[arg-type]
            resident_id_number=claims.get("residentIdNumber"),  # type: ignore[arg-type]
            verification_level=claims.get("verificationLevel", "in-person"),
            residence_district=claims.get("residenceDistrict"),  # type: ignore[arg-type]
            valid_from=valid_from,
            valid_until=valid_until,
            status_index=0,  # placeholder: validated first, index allocated after
            revocation_list_url=status_list_url(iss.status_base_url, iss.revocation_list_id),
            suspension_list_url=status_list_url(iss.status_base_url, iss.suspension_list_id),
            credential_id=credential_id,
        )
        index = self._allocate(iss, credential_id, now)
        try:
            for entry in unsigned["credentialStatus"]:
                entry["statusListIndex"] = str(index)
                entry["id"] = f"{entry['statusListCredential']}#{index}"
            vc = issue_credential(
                unsigned,
                private_key=iss.private_key,
                verification_method=iss.verification_method,
                cryptosuite=cryptosuite,
                created=format_datetime(now),
            )
            req = anchor_request(vc, iss.revocation_list_id)
            tx = self.registry.anchor(iss.sender, req)
        except BaseException:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(issued_credentials).where(
                        issued_credentials.c.credential_id == credential_id
                    )
                )
            raise
        with self.engine.begin() as conn:
            conn.execute(
                update(issued_credentials)
                .where(issued_credentials.c.credential_id == credential_id)
                .values(credential_hash="0x" + req.credential_hash.hex())
            )
        return IssuedRecord(vc, credential_id, req.credential_hash, tx.tx_hash, tx.block_number)

    def set_status(self, credential_id: str, purpose: StatusPurpose, value: bool) -> bool:
        """Revoke or (un)suspend a credential this issuer issued; whether the bit changed."""
        iss = self.issuer()
        t = issued_credentials
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.credential_id == credential_id)).first()
        if row is None or row.registry != self.registry.address or row.credential_hash is None:
            raise NotFound("no credential with this id was issued here")
        if row.issuer != iss.sender.address:
            raise Forbidden("the credential was issued by another issuer")
        if purpose is StatusPurpose.REVOCATION and not value:
            raise InvalidInput("revocation is final: a revoked credential cannot be reinstated")
        list_id = (
            row.revocation_list_id
            if purpose is StatusPurpose.REVOCATION
            else row.suspension_list_id
        )
        changed = self.registry.set_status(iss.sender, int(list_id), int(row.status_index), value)
        self.view.invalidate_status()
        return changed

    def credential_id_of(self, vc: Mapping[str, Any]) -> str:
        """The id of a credential this service issued (and may change the status of)."""
        iss = self.issuer()
        if vc.get("issuer") != iss.did:
            raise Forbidden("the credential was issued by another issuer")
        cid = vc.get("id")
        if not isinstance(cid, str):
            raise InvalidInput("the credential has no id")
        return cid

    def status_list(self, list_id: int, now: datetime) -> dict[str, Any]:
        iss = self.issuer()
        if list_id not in (iss.revocation_list_id, iss.suspension_list_id):
            info = self.registry.status_list(list_id)  # NotFound for an unknown list
            raise NotFound(f"status list {info.list_id} is not published by this service")
        return iss.publish_status_list(
            list_id, valid_from=now - timedelta(seconds=1), created=format_datetime(now)
        )


_BUILD_LOCK = threading.Lock()


async def get_identity(request: Request) -> IdentityServices:
    """The app's :class:`IdentityServices`, built on first use. Async so that FastAPI does
    not hop to a worker thread on every request just to read ``app.state``."""
    svc: IdentityServices | None = getattr(request.app.state, "identity", None)
    rt: Runtime | None = getattr(request.app.state, "runtime", None)
    if rt is None:
        raise _ServiceStarting("the service is starting")
    if svc is not None and svc.rt is rt:
        return svc
    with _BUILD_LOCK:
        svc = getattr(request.app.state, "identity", None)
        if svc is None or svc.rt is not rt:
            svc = IdentityServices(rt)
            request.app.state.identity = svc
        return svc
