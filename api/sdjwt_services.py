"""SD-JWT VC issuance and verification over :class:`~api.identity_services.IdentityServices`.

Invariants:

* The same issuer, keys, chain views and challenge store as the VC-API routes: the issuer
  key is the configured issuer's ``did:ethr`` Ed25519 ``assertionMethod`` key, resolved and
  role-checked on chain as for VCs; nonces are the ``/challenges`` challenges (single use,
  bound to the domain that is the KB-JWT's ``aud``).
* A status index is allocated per SD-JWT exactly as for a VC (``issued_credentials``), and
  the row's ``credential_hash`` is the SHA-256 of the issuer-signed JWT, so
  ``/credentials/status`` with the returned ``credentialId`` revokes or suspends it. An
  SD-JWT is not anchored in the CredentialRegistry (its hash would tie every presentation
  to one on-chain record); the issuer signature, the ISSUER role and the status bits stand.
* The holder key (``cnf``) is the holder DID's authentication key at issuance, and must
  still be authorized by the DID at verification (``cnf.kid`` re-resolved).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, update

from identity.did import DID_ETHR_PREFIX
from identity.multikey import DID_KEY_PREFIX, verification_method_id
from identity.sdjwt import SdJwtResult, issue_sd_jwt, verify_sd_jwt
from identity.status import StatusPurpose, list_id_from_url, status_list_url
from identity.store import issued_credentials
from ledger.errors import InvalidInput

from .identity_services import IdentityServices

__all__ = ["DISTRICT_CODES", "IssuedSdJwt", "issue_sd", "verify_sd"]

DISTRICT_CODES: Final = {
    "禅城区": "440604",
    "南海区": "440605",
    "顺德区": "440606",
    "三水区": "440607",
    "高明区": "440608",
}
"""GB/T 2260 codes of Foshan's districts, used when the request gives no code."""


@dataclass(frozen=True)
class IssuedSdJwt:
    sd_jwt: str
    credential_id: str
    holder_key_id: str


def _holder_vm(holder: str, holder_key_id: str | None) -> str:
    if holder_key_id is None:
        if holder.startswith(DID_KEY_PREFIX):
            return verification_method_id(holder)
        if holder.startswith(DID_ETHR_PREFIX):
            raise InvalidInput("a did:ethr holder must name its Ed25519 key (holderKeyId)")
        raise InvalidInput("holder DIDs are did:key or did:ethr")
    if holder_key_id.partition("#")[0] != holder:
        raise InvalidInput("holderKeyId must be a verification method of the holder DID")
    return holder_key_id


def issue_sd(
    ids: IdentityServices,
    *,
    holder: str,
    holder_key_id: str | None,
    claims: Mapping[str, Any],
    valid_from: datetime,
    valid_until: datetime,
    now: datetime,
) -> IssuedSdJwt:
    """Sign an SD-JWT VC for ``holder`` as the configured issuer, with a status index."""
    vm = _holder_vm(holder, holder_key_id)
    holder_key = ids.holder_key(vm, now)  # a foreign/unauthorized key fails here
    iss = ids.issuer()
    district = claims["residenceDistrict"]
    code = claims.get("residenceDistrictCode") or DISTRICT_CODES.get(str(district).strip())
    credential_id = f"urn:uuid:{uuid.uuid4()}"
    index = ids._allocate(iss, credential_id, now)
    t = issued_credentials
    try:
        status = {
            "bitstring_status_list": {
                "revocation": {
                    "uri": status_list_url(iss.status_base_url, iss.revocation_list_id),
                    "idx": index,
                },
                "suspension": {
                    "uri": status_list_url(iss.status_base_url, iss.suspension_list_id),
                    "idx": index,
                },
            }
        }
        sd_jwt = issue_sd_jwt(
            issuer=iss.did,
            verification_method=iss.verification_method,
            private_key=iss.private_key,
            holder=holder,
            holder_key=holder_key,
            holder_key_id=vm,
            verified_name=claims["verifiedName"],
            resident_id_number=claims["residentIdNumber"],
            residence_district=district,
            district_code=code,
            verification_level=claims.get("verificationLevel", "in-person"),
            valid_from=valid_from,
            valid_until=valid_until,
            now=now,
            status=status,
        )
    except BaseException:
        with ids.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.credential_id == credential_id))
        raise
    digest = hashlib.sha256(sd_jwt.partition("~")[0].encode("ascii")).hexdigest()
    with ids.engine.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.credential_id == credential_id)
            .values(credential_hash="0x" + digest)
        )
    return IssuedSdJwt(sd_jwt, credential_id, vm)


def _status_bit(ids: IdentityServices, issuer: str, purpose: str, uri: str, idx: int) -> bool:
    list_id = list_id_from_url(ids.status_base_url, uri)
    if list_id is None:
        raise LookupError("not a status list of this registry")
    slc = ids.view.status_list_credential(uri)
    subject = slc.get("credentialSubject", {})
    if slc.get("issuer") != issuer or subject.get("statusPurpose") != StatusPurpose(purpose):
        raise LookupError("the status list is not the issuer's list for this purpose")
    return ids.view.status_bit(list_id, idx)


def verify_sd(
    ids: IdentityServices, presentation: object, now: datetime, *, domain: str | None
) -> SdJwtResult:
    return verify_sd_jwt(
        presentation,
        resolve_issuer_key=lambda vm: ids.assertion_key(vm, now),
        has_issuer_role=ids.view.has_issuer_role,
        consume_challenge=ids.challenges.consume,
        now=now,
        expected_aud=domain,
        status_bit=lambda iss, purpose, uri, idx: _status_bit(ids, iss, purpose, uri, idx),
        resolve_holder_key=lambda vm: ids.holder_key(vm, now),
    )
