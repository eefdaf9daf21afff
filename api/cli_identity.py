"""``zhixin did|credentials|wallet``: DIDs, credentials and a small holder wallet.

``did`` and ``credentials`` talk to a running service over HTTP (``--url``); ``wallet`` keeps
an Ed25519 key and its DID in a JSON file (``~/.zhixin/wallet.json`` or ``--wallet``) and signs
presentations over a verifier's challenge. The DID is a ``did:key`` (the key itself, which can
never rotate) or, with ``wallet new --ethr``, a ``did:ethr``: the wallet then also keeps the
secp256k1 owner key of the DID, signs its changes (EIP-712) and has the service relay them, so
the holder can rotate keys (``did rotate``) and, after losing them, be re-bound by an issuer
(``did recover``, then ``did publish`` from the new wallet).

Invariants:

* Every failure is a :class:`~ledger.errors.ZhixinError` (``api.cli.main`` prints one line
  and exits 1); a verification that answers ``verified: false`` prints the result and fails.
* The wallet file is written atomically with mode 0600 and never overwritten without
  ``--force``; the private key is never printed.
* A did:ethr wallet signs only EIP-712 messages it builds itself from what it means to
  change; the service supplies the nonce, the deadline, the chain id and the registry. A new
  owner key is written to the wallet (as pending) before the change that hands it the DID is
  sent, so a crash between the two never leaves the DID with a key nobody kept.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx2 as httpx
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.multikey import (
    decode_private_multikey,
    did_key_from_public_key,
    encode_private_multikey,
    encode_public_multikey,
    resolve_did_key,
    verification_method_id,
)
from ledger.client import env_session_headers
from ledger.errors import InvalidInput, ZhixinError

__all__ = ["TYPERS", "credentials_app", "did_app", "new_did_key_wallet", "wallet_app"]

DEFAULT_URL = "http://127.0.0.1:8000"

did_app = typer.Typer(
    help="DIDs: resolve, show the wallet's; rotate, publish, recover a did:ethr.",
    no_args_is_help=True,
)
credentials_app = typer.Typer(
    help="Identity credentials: issue, verify, revoke, suspend (via the service).",
    no_args_is_help=True,
)
wallet_app = typer.Typer(
    help="The holder's wallet: key, DID, credentials, presentations.", no_args_is_help=True
)
TYPERS = ((did_app, "did"), (credentials_app, "credentials"), (wallet_app, "wallet"))

Url = Annotated[str, typer.Option("--url", help="The zhixin service", envvar="ZHIXIN_URL")]
WalletOpt = Annotated[
    Path | None, typer.Option("--wallet", help="Wallet file [default ~/.zhixin/wallet.json]")
]
Out = Annotated[Path | None, typer.Option("--out", help="Write JSON here instead of stdout")]


class ServiceError(ZhixinError):
    code = "service"


class NotVerified(ZhixinError):
    code = "not-verified"


DID_ETHR = "did:ethr:"
HOLDER_KEY_VALIDITY = 2 * 365 * 86400
"""Seconds a did:ethr wallet's published presentation key stays valid."""


# ---- helpers ----


def _print(doc: Any, out: Path | None = None) -> None:
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


def _request(method: str, url: str, body: Any = None, *, auth: bool = False) -> Any:
    """``auth``: send the session of $ZHIXIN_TOKEN or $ZHIXIN_SIGNIN_KEY (issuing needs one)."""
    try:
        base = url.split("/credentials/")[0].split("/dids/")[0]
        headers = env_session_headers(base) if auth else {}
        r = httpx.request(method, url, json=body, timeout=60, headers=headers)
    except httpx.HTTPError as exc:
        raise ServiceError(f"cannot reach {url}: {exc}") from None
    try:
        doc = r.json()
    except ValueError:
        raise ServiceError(f"{url} answered {r.status_code} without JSON") from None
    if r.status_code >= 400:
        detail = doc.get("detail") or doc.get("title") if isinstance(doc, dict) else None
        raise ServiceError(f"{r.status_code} from {url}: {detail or r.text[:200]}")
    return doc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}") from None


def _credential_from_file(path: Path) -> dict[str, Any]:
    doc = _read_json(path)
    if isinstance(doc, dict) and isinstance(doc.get("verifiableCredential"), dict):
        doc = doc["verifiableCredential"]  # the issue response as saved
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path} does not hold a credential (a JSON object)")
    return doc


def _wallet_path(wallet: Path | None) -> Path:
    return wallet or Path.home() / ".zhixin" / "wallet.json"


def _load_wallet(wallet: Path | None) -> dict[str, Any]:
    path = _wallet_path(wallet)
    if not path.exists():
        raise InvalidInput(f"no wallet at {path}: run `zhixin wallet new` first")
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("secretKeyMultibase"), str):
        raise InvalidInput(f"{path} is not a zhixin wallet")
    return doc


def _save_wallet(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".wallet-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    out = {
        "did": doc["did"],
        "verificationMethod": doc["verificationMethod"],
        "credentials": len(doc.get("credentials", [])),
    }
    if doc.get("ownerKey"):
        out["owner"] = _owner_account(doc).address
    return out


# ---- did:ethr wallets: owner key, signed changes relayed by the service ----


def _owner_account(doc: dict[str, Any], field: str = "ownerKey") -> Any:
    from ledger.keys import account_from_hex

    return account_from_hex(str(doc[field]), "the wallet's owner key")


def _ethr_wallet(wallet: Path | None) -> dict[str, Any]:
    doc = _load_wallet(wallet)
    if not str(doc.get("did", "")).startswith(DID_ETHR) or not doc.get("ownerKey"):
        raise InvalidInput(
            "this wallet holds a did:key, which is its key and cannot rotate or be recovered: "
            "`zhixin wallet new --ethr` makes a did:ethr wallet"
        )
    return doc


def _did_state(base: str, did: str) -> dict[str, Any]:
    from urllib.parse import quote

    state: dict[str, Any] = _request("GET", f"{base}/dids/{quote(did, safe=':')}")
    return state


def _signed_change(base: str, did: str, owner: Any, op: str, fields: dict[str, Any]) -> Any:
    """Sign ``op`` with the owner key over the service's nonce; the service relays it."""
    from identity.did import (
        change_fields_from_json,
        parse_did_ethr,
        sign_typed_data,
        signed_change_typed_data,
    )

    body: dict[str, Any] = {"did": did, "op": op, "fields": fields}
    prep = _request("POST", f"{base}/dids/changes/prepare", body)
    typed = signed_change_typed_data(
        op,  # type: ignore[arg-type]
        parse_did_ethr(did, int(prep["chainId"])),
        change_fields_from_json(op, fields),
        nonce=int(prep["nonce"]),
        deadline=int(prep["deadline"]),
        chain_id=int(prep["chainId"]),
        registry=str(prep["registry"]),
    )
    v, r, s = sign_typed_data(owner, typed)
    body.update(nonce=prep["nonce"], deadline=prep["deadline"])
    body["signature"] = "0x" + (r + s + bytes([v])).hex()
    return _request("POST", f"{base}/dids/changes", body)


def _promote_pending(base: str, doc: dict[str, Any], path: Path) -> None:
    """A rotation that was interrupted after its key was stored: keep it if the chain did."""
    pending = doc.get("pendingOwnerKey")
    if not pending:
        return
    owner = _did_state(base, doc["did"])["owner"]
    if owner == _owner_account(doc, "pendingOwnerKey").address:
        doc["ownerKey"] = pending
        doc["secretKeyMultibase"] = doc["pendingSecretKeyMultibase"]
        doc["verificationMethod"] = None
    for k in ("pendingOwnerKey", "pendingSecretKeyMultibase"):
        doc.pop(k, None)
    _save_wallet(path, doc)


def _check_owner(base: str, doc: dict[str, Any]) -> None:
    state = _did_state(base, doc["did"])
    mine = _owner_account(doc).address
    if state["deactivated"]:
        raise InvalidInput(f"{doc['did']} is deactivated: it can never change again")
    if state["owner"] != mine:
        raise InvalidInput(
            f"this wallet's key {mine} does not control {doc['did']} (its owner is "
            f"{state['owner']}); after a lost key an issuer re-binds the DID: "
            f"`zhixin did recover {doc['did']} --new-owner <new wallet's owner>`"
        )


def _publish_key(base: str, doc: dict[str, Any], path: Path) -> str:
    """Publish the wallet's Ed25519 key as a did:ethr authentication key; its method id."""
    from identity.did import ED25519_SIGAUTH_ATTRIBUTE

    key = decode_private_multikey(doc["secretKeyMultibase"])
    raw = key.public_key().public_bytes_raw()
    fields = {
        "name": ED25519_SIGAUTH_ATTRIBUTE,
        "value": "0x" + raw.hex(),
        "validity": HOLDER_KEY_VALIDITY,
    }
    _signed_change(base, doc["did"], _owner_account(doc), "setAttribute", fields)
    res = _request("GET", f"{base}/1.0/identifiers/{doc['did']}")
    ddoc = res.get("didDocument", {})
    mb = encode_public_multikey(key.public_key())
    vm = next(
        (
            m["id"]
            for m in ddoc.get("verificationMethod", [])
            if m.get("publicKeyMultibase") == mb and m["id"] in ddoc.get("authentication", [])
        ),
        None,
    )
    if vm is None:
        raise ServiceError(f"the published key does not appear in {doc['did']}'s document")
    doc["verificationMethod"] = vm
    _save_wallet(path, doc)
    return str(vm)


# ---- did ----


@did_app.command("resolve")
def did_resolve(
    did: Annotated[str, typer.Argument(help="did:ethr or did:key")], url: Url = DEFAULT_URL
) -> None:
    """Resolve DID through the service (DID resolution result as JSON)."""
    from urllib.parse import quote

    _print(_request("GET", f"{url.rstrip('/')}/1.0/identifiers/{quote(did, safe=':')}"))


@did_app.command("show")
def did_show(wallet: WalletOpt = None, url: Url = DEFAULT_URL) -> None:
    """The wallet's DID and its DID document (did:key locally, did:ethr via the service)."""
    doc = _load_wallet(wallet)
    if str(doc["did"]).startswith(DID_ETHR):
        res = _request("GET", f"{url.rstrip('/')}/1.0/identifiers/{doc['did']}")
        _print({"did": doc["did"], "didDocument": res.get("didDocument")})
        return
    _print({"did": doc["did"], "didDocument": resolve_did_key(doc["did"])})


@did_app.command("rotate")
def did_rotate(wallet: WalletOpt = None, url: Url = DEFAULT_URL) -> None:
    """Rotate a did:ethr wallet's keys: the current owner key signs changeOwner (EIP-712) to a
    new key, the service relays it, and the new key publishes a new presentation key."""
    from ledger.chain import new_account

    path = _wallet_path(wallet)
    doc = _ethr_wallet(wallet)
    base = url.rstrip("/")
    _promote_pending(base, doc, path)
    _check_owner(base, doc)
    new_owner = new_account()
    doc["pendingOwnerKey"] = "0x" + bytes(new_owner.key).hex()
    doc["pendingSecretKeyMultibase"] = encode_private_multikey(Ed25519PrivateKey.generate())
    _save_wallet(path, doc)  # kept before the chain hands the DID to it
    try:
        _signed_change(
            base, doc["did"], _owner_account(doc), "changeOwner", {"newOwner": new_owner.address}
        )
    except ServiceError:
        _promote_pending(base, doc, path)  # a lost answer may still have changed the owner
        raise
    _promote_pending(base, doc, path)
    vm = _publish_key(base, doc, path)
    sys.stderr.write(f"rotated: the old keys no longer sign for {doc['did']}\n")
    _print({**_public(doc), "verificationMethod": vm})


@did_app.command("publish")
def did_publish(wallet: WalletOpt = None, url: Url = DEFAULT_URL) -> None:
    """Publish a did:ethr wallet's presentation key, signed by its owner key (after a
    recovery re-bound the DID to this wallet, or a rotation that stopped half way)."""
    path = _wallet_path(wallet)
    doc = _ethr_wallet(wallet)
    base = url.rstrip("/")
    _promote_pending(base, doc, path)
    _check_owner(base, doc)
    _publish_key(base, doc, path)
    _print(_public(doc))


@did_app.command("recover")
def did_recover(
    did: Annotated[str, typer.Argument(help="the did:ethr whose holder lost the key")],
    new_owner: Annotated[
        str, typer.Option("--new-owner", help="owner address of the holder's new wallet")
    ],
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="the re-verification record (its SHA-256 is recorded)"),
    ] = None,
    evidence_hash: Annotated[
        str | None, typer.Option("--evidence-hash", help="or its SHA-256 (0x + 64 hex)")
    ] = None,
    url: Url = DEFAULT_URL,
) -> None:
    """As an ISSUER, after in-person re-verification: re-bind DID to the holder's new key.
    The chain records the issuer and the evidence hash; every key of the DID published
    before stops counting. The holder then runs `zhixin did publish` in the new wallet."""
    import hashlib
    import re

    if (evidence is None) == (evidence_hash is None):
        raise InvalidInput("give the record with --evidence FILE or its --evidence-hash, one")
    if evidence is not None:
        try:
            digest = "0x" + hashlib.sha256(evidence.read_bytes()).hexdigest()
        except OSError as exc:
            raise InvalidInput(f"cannot read {evidence}: {exc.strerror}") from None
    else:
        assert evidence_hash is not None
        if not re.fullmatch(r"0x[0-9a-fA-F]{64}", evidence_hash):
            raise InvalidInput("--evidence-hash must be 0x and 64 hex digits (SHA-256)")
        digest = evidence_hash
    if not did.startswith(DID_ETHR):
        raise InvalidInput("only a did:ethr can be recovered (a did:key is its key)")
    body = {"did": did, "newOwner": new_owner, "evidenceHash": digest}
    _print(_request("POST", f"{url.rstrip('/')}/dids/recover", body, auth=True))


# ---- credentials ----


@credentials_app.command("issue")
def credentials_issue(
    name: Annotated[str, typer.Option("--name", help="verified name")],
    id_number: Annotated[str, typer.Option("--id-number", help="resident identity number")],
    district: Annotated[str, typer.Option("--district", help="residence district")],
    holder: Annotated[str | None, typer.Option("--holder", help="holder DID")] = None,
    level: Annotated[str, typer.Option("--level", help="in-person or online")] = "in-person",
    wallet: WalletOpt = None,
    out: Out = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Issue an identity credential (as the service's issuer) to --holder or the wallet's DID."""
    w = None
    if holder is None:
        w = _load_wallet(wallet)
        holder = str(w["did"])
    body = {
        "credential": {
            "credentialSubject": {
                "id": holder,
                "verifiedName": name,
                "residentIdNumber": id_number,
                "verificationLevel": level,
                "residenceDistrict": district,
            }
        }
    }
    res = _request("POST", f"{url.rstrip('/')}/credentials/issue", body, auth=True)
    vc = res["verifiableCredential"]
    if w is not None:
        w.setdefault("credentials", []).append(vc)
        _save_wallet(_wallet_path(wallet), w)
        sys.stderr.write(f"stored in the wallet: {res['credentialId']}\n")
    _print(vc, out)


@credentials_app.command("verify")
def credentials_verify(
    file: Annotated[Path, typer.Argument(help="a credential or presentation (JSON)")],
    url: Url = DEFAULT_URL,
) -> None:
    """Verify a credential or a presentation; prints every check, fails unless verified."""
    doc = _read_json(file)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{file} does not hold a JSON object")
    raw = doc.get("type")
    types: list[Any] = raw if isinstance(raw, list) else [raw]
    base = url.rstrip("/")
    if "VerifiablePresentation" in types:
        res = _request("POST", f"{base}/presentations/verify", {"verifiablePresentation": doc})
    else:
        vc = _credential_from_file(file)
        res = _request("POST", f"{base}/credentials/verify", {"verifiableCredential": vc})
    _print(res)
    if not res.get("verified"):
        failed = [c["name"] for c in res.get("checks", []) if not c.get("ok")]
        raise NotVerified(f"not verified: failed checks {', '.join(failed)}")


def _status(file: Path | None, credential_id: str | None, status: str, url: str) -> None:
    if (file is None) == (credential_id is None):
        raise InvalidInput("give a credential FILE or --id, not both")
    body: dict[str, Any] = {"credentialStatus": [{"status": status}]}
    if credential_id is not None:
        body["credentialId"] = credential_id
    else:
        assert file is not None
        body["verifiableCredential"] = _credential_from_file(file)
    _print(_request("POST", f"{url.rstrip('/')}/credentials/status", body, auth=True))


FileArg = Annotated[Path | None, typer.Argument(help="the credential (JSON)")]
IdOpt = Annotated[str | None, typer.Option("--id", help="credential id (urn:uuid:...)")]


@credentials_app.command("revoke")
def credentials_revoke(
    file: FileArg = None, credential_id: IdOpt = None, url: Url = DEFAULT_URL
) -> None:
    """Revoke a credential (final) as its issuer."""
    _status(file, credential_id, "revoked", url)


@credentials_app.command("suspend")
def credentials_suspend(
    file: FileArg = None,
    credential_id: IdOpt = None,
    undo: Annotated[bool, typer.Option("--undo", help="lift the suspension")] = False,
    url: Url = DEFAULT_URL,
) -> None:
    """Suspend a credential (or lift the suspension with --undo) as its issuer."""
    _status(file, credential_id, "unsuspended" if undo else "suspended", url)


# ---- wallet ----


def new_did_key_wallet() -> dict[str, Any]:
    """A new wallet document: a fresh Ed25519 key and its did:key, no credentials yet."""
    key = Ed25519PrivateKey.generate()
    did = did_key_from_public_key(key.public_key())
    return {
        "version": 1,
        "did": did,
        "verificationMethod": verification_method_id(did),
        "secretKeyMultibase": encode_private_multikey(key),
        "credentials": [],
    }


@wallet_app.command("new")
def wallet_new(
    wallet: WalletOpt = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing wallet")] = False,
    ethr: Annotated[
        bool, typer.Option("--ethr", help="a did:ethr (rotatable, recoverable), not a did:key")
    ] = False,
    did: Annotated[
        str | None,
        typer.Option("--did", help="with --ethr: new keys for this did:ethr after a lost key"),
    ] = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Create a wallet: a new Ed25519 key and its did:key, or with --ethr a did:ethr whose
    owner key the wallet keeps (its presentation key is published through the service)."""
    path = _wallet_path(wallet)
    if path.exists() and not force:
        raise InvalidInput(f"{path} exists: use --force to replace it (its key is then lost)")
    if did is not None and not ethr:
        raise InvalidInput("--did needs --ethr (new keys for an existing did:ethr)")
    if ethr:
        _new_ethr_wallet(path, did, url.rstrip("/"))
        return
    doc = new_did_key_wallet()
    _save_wallet(path, doc)
    _print(_public(doc))


def _new_ethr_wallet(path: Path, did: str | None, base: str) -> None:
    from ledger.chain import new_account

    owner = new_account()
    recovering = did is not None
    state = _did_state(base, did if did is not None else DID_ETHR + owner.address)
    if state["deactivated"]:
        raise InvalidInput(f"{state['did']} is deactivated: it can never be recovered")
    doc: dict[str, Any] = {
        "version": 1,
        "did": state["did"],
        "verificationMethod": None,
        "secretKeyMultibase": encode_private_multikey(Ed25519PrivateKey.generate()),
        "ownerKey": "0x" + bytes(owner.key).hex(),
        "credentials": [],
    }
    _save_wallet(path, doc)
    if recovering:
        sys.stderr.write(
            f"after in-person re-verification an issuer runs `zhixin did recover {doc['did']} "
            f"--new-owner {owner.address} --evidence RECORD`; then `zhixin did publish`\n"
        )
    else:
        _publish_key(base, doc, path)
    _print(_public(doc))


@wallet_app.command("show")
def wallet_show(wallet: WalletOpt = None) -> None:
    """The wallet's DID and credential ids (never its key)."""
    doc = _load_wallet(wallet)
    pub = _public(doc)
    pub["credentials"] = [c.get("id") for c in doc.get("credentials", [])]
    _print(pub)


@wallet_app.command("add")
def wallet_add(
    file: Annotated[Path, typer.Argument(help="a credential (JSON)")], wallet: WalletOpt = None
) -> None:
    """Store a credential in the wallet."""
    doc = _load_wallet(wallet)
    vc = _credential_from_file(file)
    doc.setdefault("credentials", []).append(vc)
    _save_wallet(_wallet_path(wallet), doc)
    _print(_public(doc))


@wallet_app.command("present")
def wallet_present(
    domain: Annotated[str, typer.Option("--domain", help="the verifier's domain")],
    verifier: Annotated[
        str, typer.Option("--verifier", help="the verifier's service URL", envvar="ZHIXIN_URL")
    ] = DEFAULT_URL,
    credential: Annotated[
        Path | None, typer.Option("--credential", help="present this file, not the wallet's")
    ] = None,
    submit: Annotated[
        bool, typer.Option("--submit", help="also submit it for verification")
    ] = False,
    wallet: WalletOpt = None,
    out: Out = None,
) -> None:
    """Ask the verifier for a challenge and sign a presentation of the wallet's credentials."""
    # imported here: identity.presentations pulls in the chain stack, slow for other commands
    from identity.presentations import build_presentation, sign_presentation
    from identity.status import format_datetime

    doc = _load_wallet(wallet)
    creds = [_credential_from_file(credential)] if credential else doc.get("credentials", [])
    if not creds:
        raise InvalidInput("the wallet holds no credential: `zhixin credentials issue` first")
    if not doc.get("verificationMethod"):
        raise InvalidInput("the wallet's key is not published yet: run `zhixin did publish`")
    key = decode_private_multikey(doc["secretKeyMultibase"])
    base = verifier.rstrip("/")
    ch = _request("POST", f"{base}/challenges", {"domain": domain})
    vp = sign_presentation(
        build_presentation(doc["did"], creds),
        private_key=key,
        verification_method=doc["verificationMethod"],
        challenge=ch["challenge"],
        domain=domain,
        created=format_datetime(datetime.now(UTC)),
    )
    _print(vp, out)
    if submit:
        res = _request("POST", f"{base}/presentations/verify", {"verifiablePresentation": vp})
        sys.stderr.write(json.dumps(res, ensure_ascii=False) + "\n")
        if not res.get("verified"):
            raise NotVerified(f"not verified: failed checks {', '.join(res.get('failed', []))}")
