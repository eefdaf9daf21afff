"""Identity over HTTP, after the W3C CCG VC-API: issue, verify, status, challenges, DIDs.

Invariants:

* A verification answers 200 with ``verified`` and every named check, whatever the
  credential or presentation says; only a malformed *request* (not JSON, a field of the wrong
  JSON type) is a 4xx problem+json; errors are :mod:`ledger.errors` types mapped by
  :mod:`api.problems`, never a 500.
* Issuing and status changes act as the service's configured issuer only (dev: the demo
  "issuer"); a credential of another issuer is 403. Both need a session of an ISSUER role
  holder; verifying, challenges, status lists and DID resolution are public.
* A did:ethr holder changes its DID (key rotation, publishing a key) by signing the change
  (EIP-712) with its owner key: ``/dids/changes/prepare`` gives the typed data, and
  ``/dids/changes`` relays the signed change, so a citizen needs no gas. The signature is the
  authorization (the registry refuses any other signer, a stale nonce, a late deadline: 409
  with the contract's error name), so these need no session. Lost-key recovery
  (``/dids/recover``) needs an ISSUER session and is sent as the configured issuer.
* ``now`` is read once per request and handed to the pure verifiers.
* Selective disclosure (SD-JWT VC, :mod:`identity.sdjwt`): ``/credentials/issue-sd`` as
  ``/credentials/issue`` (ISSUER session, the configured issuer), ``/presentations/verify-sd``
  as ``/presentations/verify`` (public, 200 with every named check, the same challenges).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from identity.did import SIGNED_OPS, DidChainMismatch, InvalidDidEthr, UnsupportedDidMethod
from identity.multikey import InvalidDid
from identity.proofs import CRYPTOSUITES, EDDSA_JCS_2022
from identity.sdjwt import DISCLOSABLE, MAX_PRESENTATION
from identity.status import StatusPurpose
from ledger.chain import TxResult
from ledger.errors import ContractReverted, InvalidInput, NotFound

from ..deps import IssuerSession
from ..identity_services import IdentityServices, get_identity
from ..sdjwt_services import issue_sd, verify_sd

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


SignedOpName = Literal[SIGNED_OPS]  # type: ignore[valid-type]


class DidChangeIn(BaseModel):
    """A change of a did:ethr DID; ``fields`` as in the registry's EIP-712 types (addresses
    as 0x-hex, ``delegateType``/``name`` as text, ``value`` as 0x-hex bytes)."""

    did: str = Field(description="did:ethr of the identity to change")
    op: SignedOpName  # type: ignore[valid-type]
    fields: dict[str, str | int]


class SignedDidChangeIn(DidChangeIn):
    nonce: int = Field(ge=0, le=2**256 - 1)
    deadline: int = Field(ge=0, le=2**256 - 1)
    signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]{130}$", description="65-byte r||s||v EIP-712 signature"
    )


class RecoverIn(BaseModel):
    did: str = Field(description="did:ethr whose holder lost the key")
    newOwner: str = Field(description="the holder's new key (address)")
    evidenceHash: str = Field(
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="SHA-256 of the in-person re-verification record (kept off chain)",
    )


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


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined (for ``openapi_extra``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


def _json_request(request: Request, body: bytes) -> Any:
    """The JSON request body as FastAPI reads it for a body model (strict content type: JSON
    only if the type is application/json or application/*+json, else the raw bytes, which no
    model accepts); malformed JSON is the same 422 ``json_invalid``, an unreadable body the
    same 400."""
    if not body:
        return None
    ctype = request.headers.get("content-type")
    if ctype is None:
        return body
    mime = ctype.partition(";")[0].strip().lower()
    major, _, sub = mime.partition("/")
    if major != "application" or not (sub == "json" or sub.endswith("+json")):
        return body
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, nested too deep: as FastAPI
        raise HTTPException(400, "There was an error parsing the body") from exc


def _presentation_request(data: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """``(verifiablePresentation, options.challenge, options.domain)`` as
    :class:`VerifyPresentationIn` validates them: the usual shape is taken as it is, anything
    else goes through the model (its errors are the route's 422)."""
    if type(data) is dict and type(vp := data.get("verifiablePresentation")) is dict:
        opts = data.get("options", {})
        if type(opts) is dict:
            ch, dom = opts.get("challenge"), opts.get("domain")
            if (ch is None or type(ch) is str) and (dom is None or type(dom) is str):
                return vp, ch, dom
    try:
        body = VerifyPresentationIn.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors, body=data) from None
    return body.verifiablePresentation, body.options.challenge, body.options.domain


def _json_response(content: Any) -> Response:
    """Plain JSON (no NaN, no non-str keys) as ``JSONResponse`` writes it, by orjson: the
    result of a presentation is ~2.7 KB, and ``json.dumps`` of it took ~20 us."""
    return Response(orjson.dumps(content), media_type="application/json")


@router.post(
    "/presentations/verify",
    summary="Verify a presentation (every check named)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_schema(VerifyPresentationIn)}},
        }
    },
)
async def verify_presentation(request: Request) -> Response:
    """Async on purpose: verification is GIL-bound Python whose chain reads are cached per
    block, so a worker thread adds no parallelism, only two thread handoffs per request and
    GIL convoys under load; :meth:`IdentityServices.run_verification` still sends it to a
    thread when the challenge store is a networked database.

    The hot path of the service, so it does by hand what FastAPI would do with a body model,
    a dependency and a ``JSONResponse``, with the same answers: the request body is read
    once with ``json.loads`` (as ``Request.json``) and taken as it is when it has the usual
    shape (:func:`_presentation_request`), and the result is plain JSON written by orjson."""
    try:
        raw = await request.body()  # a body limit's errors pass through (their own 413)
    except ClientDisconnect as exc:  # as FastAPI answers a body it could not read
        raise HTTPException(400, "There was an error parsing the body") from exc
    vp, challenge, domain = _presentation_request(_json_request(request, raw))
    ids = await get_identity(request)
    result = await ids.run_verification(
        lambda: ids.verify_presentation(vp, datetime.now(UTC), challenge=challenge, domain=domain)
    )
    return _json_response(result.to_json())


class SdSubjectIn(SubjectIn):
    residenceDistrictCode: str | None = Field(
        default=None, pattern=r"^\d{6}$", description="GB/T 2260 code (e.g. 440604 Chancheng)"
    )
    holderKeyId: str | None = Field(
        default=None, description="the holder's Ed25519 authentication key (did:ethr: required)"
    )


class SdCredentialIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    credentialSubject: SdSubjectIn
    validFrom: datetime | None = None
    validUntil: datetime | None = None


class IssueSdIn(BaseModel):
    credential: SdCredentialIn


class VerifySdIn(BaseModel):
    presentation: str = Field(
        max_length=MAX_PRESENTATION, description="<issuer-jwt>~<disclosures>~<kb-jwt>"
    )
    domain: str | None = Field(default=None, description="the verifier's domain (= KB-JWT aud)")


@router.post(
    "/credentials/issue-sd",
    status_code=201,
    summary="Issue the identity credential as an SD-JWT VC (selective disclosure)",
)
def issue_sd_credential(
    body: IssueSdIn, ids: IdentityDep, _issuer: IssuerSession
) -> dict[str, Any]:
    now = _now()
    cred = body.credential
    valid_from = _aware(cred.validFrom, now)
    valid_until = _aware(cred.validUntil, valid_from + DEFAULT_VALIDITY)
    subject = cred.credentialSubject
    rec = issue_sd(
        ids,
        holder=subject.id,
        holder_key_id=subject.holderKeyId,
        claims=subject.model_dump(exclude={"id", "holderKeyId"}),
        valid_from=valid_from,
        valid_until=valid_until,
        now=now,
    )
    return {
        "sdJwt": rec.sd_jwt,
        "credentialId": rec.credential_id,
        "holderKeyId": rec.holder_key_id,
        "disclosable": list(DISCLOSABLE),
    }


@router.post("/presentations/verify-sd", summary="Verify an SD-JWT VC presentation")
def verify_sd_presentation(body: VerifySdIn, ids: IdentityDep) -> dict[str, Any]:
    return verify_sd(ids, body.presentation, datetime.now(UTC), domain=body.domain).to_json()


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


def _tx(tx: TxResult) -> dict[str, Any]:
    return {"transactionHash": tx.tx_hash, "blockNumber": tx.block_number}


class _Refused(ContractReverted):
    """A refused DID change, its error arguments as JSON (bytes as 0x-hex)."""


def _refused(exc: ContractReverted) -> _Refused:
    args = tuple("0x" + a.hex() if isinstance(a, bytes) else a for a in exc.error_args)
    return _Refused(exc.detail, error_name=exc.error_name, args=args)


@router.get("/dids/{did}", summary="A did:ethr's canonical form, owner and next nonce")
def did_state(did: str, ids: IdentityDep) -> dict[str, Any]:
    return ids.did_state(did)


@router.post("/dids/changes/prepare", summary="The EIP-712 typed data of a did:ethr change")
def prepare_did_change(body: DidChangeIn, ids: IdentityDep) -> dict[str, Any]:
    return ids.prepare_change(body.did, body.op, body.fields)


@router.post(
    "/dids/changes", status_code=201, summary="Relay a did:ethr change signed by its owner"
)
def submit_did_change(body: SignedDidChangeIn, ids: IdentityDep) -> dict[str, Any]:
    try:
        tx = ids.submit_change(
            body.did,
            body.op,
            body.fields,
            nonce=body.nonce,
            deadline=body.deadline,
            signature=body.signature,
        )
    except ContractReverted as exc:
        raise _refused(exc) from None
    return {**ids.did_state(body.did), "op": body.op, **_tx(tx)}


@router.post(
    "/dids/recover", status_code=201, summary="Re-bind a did:ethr after a lost key (ISSUER)"
)
def recover_did(body: RecoverIn, ids: IdentityDep, _issuer: IssuerSession) -> dict[str, Any]:
    try:
        issuer, tx = ids.recover(body.did, body.newOwner, bytes.fromhex(body.evidenceHash[2:]))
    except ContractReverted as exc:
        raise _refused(exc) from None
    return {
        **ids.did_state(body.did),
        "issuer": issuer,
        "evidenceHash": body.evidenceHash.lower(),
        **_tx(tx),
    }
