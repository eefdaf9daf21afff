"""Identity over HTTP, after the W3C CCG VC-API: issue, verify, status, challenges, DIDs.

Invariants:

* A verification answers 200 with ``verified`` and every named check, whatever the
  credential or presentation says; only a malformed *request* (not JSON, a field of the wrong
  JSON type) is a 4xx problem+json; errors are :mod:`ledger.errors` types mapped by
  :mod:`api.problems`, never a 500.
* Issuing and status changes act as the service's configured issuer only (dev: the demo
  "issuer"); a credential of another issuer is 403. Both need a session of an ISSUER role
  holder; verifying, challenges, status lists and DID resolution are public.
* ``now`` is read once per request and handed to the pure verifiers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from identity.did import DidChainMismatch, InvalidDidEthr, UnsupportedDidMethod
from identity.multikey import InvalidDid
from identity.proofs import CRYPTOSUITES, EDDSA_JCS_2022
from identity.status import StatusPurpose
from ledger.errors import InvalidInput, NotFound

from ..deps import IssuerSession
from ..identity_services import IdentityServices, get_identity

__all__ = ["router"]

router = APIRouter(tags=["identity (VC-API)"])
IdentityDep = Annotated[IdentityServices, Depends(get_identity)]
DEFAULT_VALIDITY = timedelta(days=5 * 365)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class InvalidDidProblem(InvalidInput):
    code = "invalidDid"
    status = 400


class MethodNotSupported(InvalidInput):
    code = "methodNotSupported"
    status = 400


# ---- request bodies ----


class SubjectIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(description="the holder's DID (did:key or did:ethr)")
    verifiedName: str
    residentIdNumber: str = Field(description="GB 11643 resident identity number")
    verificationLevel: Literal["in-person", "online"] = "in-person"
    residenceDistrict: str


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    credentialSubject: SubjectIn
    validFrom: datetime | None = None
    validUntil: datetime | None = None


class IssueOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cryptosuite: str = EDDSA_JCS_2022


class IssueIn(BaseModel):
    """VC-API IssueCredentialRequest: the claims; the service sets issuer, status and proof."""

    credential: CredentialIn
    options: IssueOptions = IssueOptions()


class VerifyCredentialIn(BaseModel):
    verifiableCredential: dict[str, Any]
    options: dict[str, Any] = {}


class PresentationOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    challenge: str | None = None
    domain: str | None = None


class VerifyPresentationIn(BaseModel):
    verifiablePresentation: dict[str, Any]
    options: PresentationOptions = PresentationOptions()


class StatusItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "BitstringStatusListEntry"
    status: Literal["revoked", "suspended", "unsuspended"]


class StatusIn(BaseModel):
    """VC-API UpdateCredentialStatus: by ``credentialId``, or the credential itself."""

    credentialId: str | None = None
    verifiableCredential: dict[str, Any] | None = None
    credentialStatus: list[StatusItem] = Field(min_length=1, max_length=2)


class ChallengeIn(BaseModel):
    domain: str = Field(description="the verifier's domain the presentation must name")


# ---- routes ----


def _aware(t: datetime | None, default: datetime) -> datetime:
    if t is None:
        return default
    if t.tzinfo is None:
        raise InvalidInput("validFrom and validUntil need a time zone")
    return t


@router.post("/credentials/issue", status_code=201, summary="Issue an identity credential")
def issue(body: IssueIn, ids: IdentityDep, _issuer: IssuerSession) -> dict[str, Any]:
    if body.options.cryptosuite not in CRYPTOSUITES:
        raise InvalidInput(f"cryptosuite must be one of {sorted(CRYPTOSUITES)}")
    now = _now()
    cred = body.credential
    valid_from = _aware(cred.validFrom, now)
    valid_until = _aware(cred.validUntil, valid_from + DEFAULT_VALIDITY)
    subject = cred.credentialSubject
    rec = ids.issue(
        holder=subject.id,
        claims=subject.model_dump(exclude={"id"}),
        valid_from=valid_from,
        valid_until=valid_until,
        now=now,
        cryptosuite=body.options.cryptosuite,
    )
    return {
        "verifiableCredential": rec.credential,
        "credentialId": rec.credential_id,
        "credentialHash": "0x" + rec.credential_hash.hex(),
        "transactionHash": rec.tx_hash,
        "blockNumber": rec.block_number,
    }


@router.post("/credentials/verify", summary="Verify a credential (every check named)")
def verify_credential(body: VerifyCredentialIn, ids: IdentityDep) -> dict[str, Any]:
    return ids.verify_credential(body.verifiableCredential, _now()).to_json()


@router.post("/presentations/verify", summary="Verify a presentation (every check named)")
async def verify_presentation(body: VerifyPresentationIn, ids: IdentityDep) -> JSONResponse:
    """Async on purpose: verification is GIL-bound Python whose chain reads are cached per
    block, so a worker thread adds no parallelism, only two thread handoffs per request and
    GIL convoys under load; :meth:`IdentityServices.run_verification` still sends it to a
    thread when the challenge store is a networked database. The result is returned as a
    prebuilt ``JSONResponse``: it is plain JSON, and response-model validation of it cost
    more than building it."""
    vp, opts = body.verifiablePresentation, body.options
    result = await ids.run_verification(
        lambda: ids.verify_presentation(
            vp, datetime.now(UTC), challenge=opts.challenge, domain=opts.domain
        )
    )
    return JSONResponse(result.to_json())


@router.post("/credentials/status", summary="Revoke, suspend or unsuspend a credential")
def update_status(body: StatusIn, ids: IdentityDep, _issuer: IssuerSession) -> dict[str, Any]:
    if (body.credentialId is None) == (body.verifiableCredential is None):
        raise InvalidInput("give exactly one of credentialId and verifiableCredential")
    cid = body.credentialId or ids.credential_id_of(body.verifiableCredential or {})
    changes = []
    for item in body.credentialStatus:
        if item.type != "BitstringStatusListEntry":
            raise InvalidInput("credentialStatus type must be BitstringStatusListEntry")
        purpose = StatusPurpose.REVOCATION if item.status == "revoked" else StatusPurpose.SUSPENSION
        changed = ids.set_status(cid, purpose, item.status != "unsuspended")
        changes.append({"status": item.status, "changed": changed})
    return {"credentialId": cid, "updates": changes}


@router.post("/challenges", summary="A fresh single-use challenge for a verifier")
def create_challenge(body: ChallengeIn, ids: IdentityDep) -> dict[str, Any]:
    return ids.issue_challenge(body.domain, datetime.now(UTC)).to_json()


@router.get(
    "/credentials/status-lists/{list_id}",
    summary="BitstringStatusListCredential built from chain state, signed by the issuer",
)
def status_list(
    ids: IdentityDep, list_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> JSONResponse:
    vc = ids.status_list(list_id, _now())
    return JSONResponse(vc, media_type="application/vc+ld+json")


@router.get("/1.0/identifiers/{did}", summary="Resolve a DID (universal-resolver style)")
def resolve_did(did: str, ids: IdentityDep) -> JSONResponse:
    try:
        res = ids.resolve(did, datetime.now(UTC))
    except UnsupportedDidMethod as exc:
        raise MethodNotSupported(
            exc.detail, didResolutionMetadata={"error": "methodNotSupported"}
        ) from None
    except (InvalidDidEthr, DidChainMismatch, InvalidDid) as exc:
        raise InvalidDidProblem(exc.detail, didResolutionMetadata={"error": "invalidDid"}) from None
    except InvalidInput as exc:
        raise InvalidDidProblem(exc.detail, didResolutionMetadata={"error": "invalidDid"}) from None
    except NotFound as exc:
        raise NotFound(exc.detail, didResolutionMetadata={"error": "notFound"}) from None
    body = res.to_json()
    body["didResolutionMetadata"] = {
        **res.did_resolution_metadata,
        "did": {"method": did.split(":")[1]},
    }
    return JSONResponse(body, media_type="application/did-resolution+json")
