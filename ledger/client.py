"""Python clients of zhixin credit records: the service's HTTP API, an offline signer, and a
chain reader that needs no service at all.

Invariants:
- The agency key never leaves this process: :meth:`CreditClient.sign` asks the service only for
  what it alone can give (the subject's pseudonym, since the district secret stays with the
  service, and the agency's next nonce) and signs locally.
- A record is signed only under the domain of the ledger it will be written to: the domain
  comes from the service's ``/healthz`` or a ``deployment.json``, and the id the service
  reports must equal the digest computed here, or nothing is signed.
- Every failure is a :class:`~ledger.errors.ZhixinError` with a one-line ``detail``: a service
  that cannot be reached is :class:`ServiceUnavailable`, and a problem+json answer is
  :class:`ServiceError` carrying the service's own detail.
- :class:`LedgerReader` trusts only the chain: it re-derives every id and the running hash from
  the logs (see :func:`ledger.records.decode_recorded_log`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
from eth_account.signers.local import LocalAccount

from .chain import RpcChain
from .credit import CreditLedgerClient, LedgerEntry, LedgerState
from .deploy import Deployment
from .errors import InvalidInput, ZhixinError
from .keys import account_from_hex, load_keystore
from .records import (
    Eip712Domain,
    record_digest,
    record_from_json,
    replay_head,
    sign_record,
    signed_record_to_json,
)

__all__ = [
    "AGENCY_KEY_ENV",
    "CreditClient",
    "LedgerReader",
    "ReadResult",
    "ServiceError",
    "ServiceUnavailable",
    "domain_from_deployment",
    "env_session_headers",
    "load_agency_account",
    "signed_items_from_json",
]

AGENCY_KEY_ENV = "ZHIXIN_AGENCY_KEY"


class ServiceUnavailable(ZhixinError):
    """The zhixin service could not be reached (not running, wrong URL, timed out)."""

    code = "service-unavailable"
    status = 503


class ServiceError(ZhixinError):
    """The service answered with an error (RFC 9457 problem details)."""

    code = "service-error"

    def __init__(self, detail: str, *, status: int, problem: Mapping[str, Any]) -> None:
        super().__init__(detail)
        self.status = status
        self.problem = dict(problem)


def load_agency_account(
    *,
    key_file: Path | None = None,
    keystore: Path | None = None,
    password: str | None = None,
) -> LocalAccount:
    """The agency's account from a hex key file, a keystore, or ``$ZHIXIN_AGENCY_KEY``.

    The keystore password defaults to ``$ZHIXIN_KEYSTORE_PASSWORD``.
    """
    if key_file is not None and keystore is not None:
        raise InvalidInput("give either a key file or a keystore, not both")
    if keystore is not None:
        pw = password if password is not None else os.environ.get("ZHIXIN_KEYSTORE_PASSWORD", "")
        return load_keystore(keystore, pw)
    if key_file is not None:
        try:
            text = key_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read key file {key_file}: {exc.strerror}") from None
        return account_from_hex(text, f"key file {key_file}")
    env = os.environ.get(AGENCY_KEY_ENV)
    if not env:
        raise InvalidInput(f"no agency key: pass --key-file or --keystore, or set {AGENCY_KEY_ENV}")
    return account_from_hex(env, AGENCY_KEY_ENV)


def domain_from_deployment(path: Path) -> Eip712Domain:
    """The ledger's EIP-712 domain from a service's ``deployment.json``."""
    dep = _load_deployment(path)
    return Eip712Domain(dep.chain_id, dep.address("CreditLedger"))


def _load_deployment(path: Path) -> Deployment:
    try:
        return Deployment.from_json(json.loads(path.read_text()))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not a zhixin deployment: {exc}") from None


class CreditClient:
    """Typed client of a running service's credit API (``/v1/credit-records``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._domain: Eip712Domain | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CreditClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport ----

    def _request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            raise ServiceUnavailable(f"the zhixin service at {self.url} timed out") from None
        except httpx.HTTPError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ServiceUnavailable(
                f"cannot reach the zhixin service at {self.url}: {reason}"
            ) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        return resp.status_code, body

    def _ok(self, method: str, path: str, **kw: Any) -> Any:
        status, body = self._request(method, path, **kw)
        if status >= 400:
            raise _service_error(status, body, self.url)
        return body

    # ---- service API ----

    def health(self) -> dict[str, Any]:
        return dict(self._ok("GET", "/healthz"))

    def domain(self) -> Eip712Domain:
        """The ledger's EIP-712 domain, as the service reports it (cached)."""
        if self._domain is None:
            h = self.health()
            try:
                self._domain = Eip712Domain(int(h["chain_id"]), h["contracts"]["CreditLedger"])
            except (KeyError, TypeError, ValueError):
                raise ServiceError(
                    "the service's /healthz names no CreditLedger", status=502, problem=h
                ) from None
        return self._domain

    def prepare(self, fields: Mapping[str, Any], *, agency: str | None = None) -> dict[str, Any]:
        """The record to sign, with the subject's pseudonym and (given ``agency``) its nonce."""
        body = dict(fields)
        if agency is not None:
            body["agency"] = agency
        return dict(self._ok("POST", "/v1/credit-records/prepare", json=body))

    def submit(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Per-item outcome ``{accepted, rejected, items}``; a wholly rejected batch is not an
        exception here (the service answers 4xx with the same per-item list)."""
        status, body = self._request("POST", "/v1/credit-records", json=list(items))
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            return {
                "accepted": sum(1 for i in body["items"] if i.get("status") != "rejected"),
                "rejected": sum(1 for i in body["items"] if i.get("status") == "rejected"),
                "items": body["items"],
            }
        raise _service_error(status, body, self.url)

    def status(self, record_id: str) -> dict[str, Any]:
        return dict(self._ok("GET", f"/v1/credit-records/{record_id}"))

    def query(
        self,
        *,
        subject_kind: str | None = None,
        subject_id: str | None = None,
        agency: str | None = None,
        category: str | None = None,
        history: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "view": "history" if history else "current",
            "limit": limit,
            "offset": offset,
        }
        for k, v in (
            ("subject_kind", subject_kind),
            ("subject_id", subject_id),
            ("agency", agency),
            ("category", category),
        ):
            if v is not None:
                params[k] = v
        return dict(self._ok("GET", "/v1/credit-records", params=params))

    # ---- signing ----

    def sign_in(self, account: LocalAccount) -> None:
        """Sign in with Ethereum (EIP-4361) as ``account``: later requests carry the session
        (preparing records needs an AGENCY session). The token never leaves this client."""
        from eth_account.messages import encode_defunct

        n = self._ok("GET", "/auth/siwe/nonce")
        text = "\n".join(
            [
                f"{n['domain']} wants you to sign in with your Ethereum account:",
                account.address,
                "",
                "Sign in to zhixin",
                "",
                f"URI: {n['uri']}",
                "Version: 1",
                f"Chain ID: {n['chainId']}",
                f"Nonce: {n['nonce']}",
                f"Issued At: {n['issuedAt']}",
            ]
        )
        sig = account.sign_message(encode_defunct(text=text)).signature
        body = {"message": text, "signature": "0x" + bytes(sig).hex()}
        token = self._ok("POST", "/auth/siwe", json=body)["token"]
        self._http.headers["Authorization"] = f"Bearer {token}"
        self._http.cookies.clear()

    def sign(self, fields: Mapping[str, Any], account: LocalAccount) -> dict[str, Any]:
        """Prepare through the service, sign locally; the submit-ready item (with ``reason``)."""
        if "authorization" not in self._http.headers:
            self.sign_in(account)
        prep = self.prepare(fields, agency=account.address)
        record = record_from_json(prep["record"])
        domain = self.domain()
        rid = "0x" + record_digest(record, domain).hex()
        if prep.get("id") != rid:
            raise ServiceError(
                "the service's record id does not match this ledger's domain; not signing",
                status=502,
                problem=prep,
            )
        item = signed_record_to_json(sign_record(record, bytes(account.key), domain))
        if prep.get("reason"):
            item["reason"] = prep["reason"]
        return item


_ENV_SESSIONS: dict[str, dict[str, str]] = {}


def env_session_headers(url: str) -> dict[str, str]:
    """Authorization for CLI calls that need a session: ``$ZHIXIN_TOKEN`` as is, else a
    SIWE sign-in with the hex key in ``$ZHIXIN_SIGNIN_KEY`` (once per URL); none without."""
    token = os.environ.get("ZHIXIN_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    key = os.environ.get("ZHIXIN_SIGNIN_KEY")
    if not key:
        return {}
    base = url.rstrip("/")
    if base not in _ENV_SESSIONS:
        from .keys import account_from_hex

        with CreditClient(base) as client:
            client.sign_in(account_from_hex(key, "ZHIXIN_SIGNIN_KEY"))
            _ENV_SESSIONS[base] = {"Authorization": client._http.headers["authorization"]}
    return dict(_ENV_SESSIONS[base])


def _service_error(status: int, body: Any, url: str) -> ServiceError:
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        detail = body["detail"].splitlines()[0]
    elif isinstance(body, dict) and isinstance(body.get("title"), str):
        detail = body["title"]
    else:
        detail = f"HTTP {status} from {url}"
    return ServiceError(detail, status=status, problem=body if isinstance(body, dict) else {})


@dataclass(frozen=True)
class ReadResult:
    """Records read from the chain, and whether they re-verify against the ledger's state."""

    entries: list[LedgerEntry]
    state: LedgerState
    head_matches: bool


class LedgerReader:
    """Reads records straight from the chain (no service): an RPC URL and a deployment.json."""

    def __init__(self, rpc_url: str, deployment: Path | Deployment) -> None:
        self.deployment = (
            deployment if isinstance(deployment, Deployment) else _load_deployment(deployment)
        )
        self.chain = RpcChain(rpc_url)
        self.ledger = CreditLedgerClient(self.chain, self.deployment.address("CreditLedger"))

    def close(self) -> None:
        self.chain.close()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def domain(self) -> Eip712Domain:
        return Eip712Domain(self.deployment.chain_id, self.ledger.address)

    def records(self, from_block: int | None = None) -> list[LedgerEntry]:
        """Every accepted record since deployment (or ``from_block``), in ledger order."""
        start = self.deployment.deploy_block if from_block is None else from_block
        return self.ledger.fetch_records(start)

    def read_all(self) -> ReadResult:
        """All records, each id checked against its record's digest, and the running hash
        replayed against the contract's head (the state is read first, the logs up to a later
        head, then cut at the state's count)."""
        state = self.ledger.state()
        last = self.chain.head()
        entries = self.ledger.fetch_records(self.deployment.deploy_block, last)
        domain = self.domain()
        for e in entries:
            if record_digest(e.log.signed.record, domain) != e.id:
                raise ZhixinError(f"record {e.id.hex()} does not hash to its id")
        entries = entries[: state.count]
        return ReadResult(entries, state, replay_head(e.id for e in entries) == state.head)

    @staticmethod
    def to_json(entry: LedgerEntry) -> dict[str, Any]:
        return {
            "id": "0x" + entry.id.hex(),
            "seq": entry.log.seq,
            "agency": entry.log.signer,
            "block_number": entry.block_number,
            "tx_hash": entry.tx_hash,
            "head_after": "0x" + entry.log.head_after.hex(),
            **signed_record_to_json(entry.log.signed),
        }


def signed_items_from_json(doc: Any) -> list[dict[str, Any]]:
    """A signed record, a list of them, or ``{records: [...]}`` → the list to submit."""
    if isinstance(doc, dict) and "records" in doc:
        doc = doc["records"]
    elif isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc or not all(isinstance(i, dict) for i in doc):
        raise InvalidInput("expected a signed record, a list of them, or {records: [...]}")
    return doc
