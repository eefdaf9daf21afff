"""``zhixin did|credentials|wallet``: DIDs, credentials and a small holder wallet.

``did`` and ``credentials`` talk to a running service over HTTP (``--url``); ``wallet`` keeps
an Ed25519 key and its ``did:key`` in a JSON file (``~/.zhixin/wallet.json`` or ``--wallet``)
and signs presentations over a verifier's challenge.

Invariants:

* Every failure is a :class:`~ledger.errors.ZhixinError` (``api.cli.main`` prints one line
  and exits 1); a verification that answers ``verified: false`` prints the result and fails.
* The wallet file is written atomically with mode 0600 and never overwritten without
  ``--force``; the private key is never printed.
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
    resolve_did_key,
    verification_method_id,
)
from ledger.client import env_session_headers
from ledger.errors import InvalidInput, ZhixinError

__all__ = ["TYPERS", "credentials_app", "did_app", "wallet_app"]

DEFAULT_URL = "http://127.0.0.1:8000"

did_app = typer.Typer(
    help="DIDs: resolve through the service, show the wallet's.", no_args_is_help=True
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
        headers = env_session_headers(url.split("/credentials/")[0]) if auth else {}
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
    return {
        "did": doc["did"],
        "verificationMethod": doc["verificationMethod"],
        "credentials": len(doc.get("credentials", [])),
    }


# ---- did ----


@did_app.command("resolve")
def did_resolve(
    did: Annotated[str, typer.Argument(help="did:ethr or did:key")], url: Url = DEFAULT_URL
) -> None:
    """Resolve DID through the service (DID resolution result as JSON)."""
    from urllib.parse import quote

    _print(_request("GET", f"{url.rstrip('/')}/1.0/identifiers/{quote(did, safe=':')}"))


@did_app.command("show")
def did_show(wallet: WalletOpt = None) -> None:
    """The wallet's DID and its DID document (a did:key, resolved locally)."""
    doc = _load_wallet(wallet)
    _print({"did": doc["did"], "didDocument": resolve_did_key(doc["did"])})


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


@wallet_app.command("new")
def wallet_new(
    wallet: WalletOpt = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing wallet")] = False,
) -> None:
    """Create a wallet: a new Ed25519 key and its did:key."""
    path = _wallet_path(wallet)
    if path.exists() and not force:
        raise InvalidInput(f"{path} exists: use --force to replace it (its key is then lost)")
    key = Ed25519PrivateKey.generate()
    did = did_key_from_public_key(key.public_key())
    doc = {
        "version": 1,
        "did": did,
        "verificationMethod": verification_method_id(did),
        "secretKeyMultibase": encode_private_multikey(key),
        "credentials": [],
    }
    _save_wallet(path, doc)
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
