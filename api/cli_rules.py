"""``zhixin rules publish|evaluate|status|proof``: joint reward and punishment through the
running service's HTTP API (``--url``).

Invariant: an HTTP problem ends as one ``zhixin: error: ...`` line (with the rule-set problems
and their positions listed), never a stack trace; nothing is written when validation fails.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.client import env_session_headers
from ledger.errors import ZhixinError

__all__ = ["rules_app"]

rules_app = typer.Typer(
    help="Joint reward and punishment: publish rule sets, evaluate, status, proofs.",
    no_args_is_help=True,
)

Url = Annotated[
    str, typer.Option("--url", envvar="ZHIXIN_URL", help="Base URL of the running service")
]


def _request(
    url: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    ctype: str = "application/json",
    params: dict[str, Any] | None = None,
) -> Any:
    q = {k: v for k, v in (params or {}).items() if v is not None}
    full = url.rstrip("/") + path + ("?" + urllib.parse.urlencode(q) if q else "")
    headers = {"Content-Type": ctype, **env_session_headers(url)}  # $ZHIXIN_TOKEN / SIGNIN_KEY
    req = urllib.request.Request(full, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            doc = json.loads(exc.read())
        except ValueError:
            raise ZhixinError(f"HTTP {exc.code} from {full}") from None
        detail = doc.get("detail") or doc.get("title") or f"HTTP {exc.code}"
        problems = doc.get("problems") or []
        raise ZhixinError(
            detail if not problems else detail.split(": ", 1)[0] + ":\n  " + "\n  ".join(problems)
        ) from None
    except urllib.error.URLError as exc:
        raise ZhixinError(f"cannot reach {url}: {exc.reason}") from None


def _print(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


@rules_app.command("publish")
def publish(
    path: Annotated[Path, typer.Argument(help="rule set YAML or JSON", exists=True)],
    url: Url = "http://127.0.0.1:8000",
) -> None:
    """Validate a rule set and anchor its hash on chain (nothing anchored if invalid)."""
    _print(
        _request(
            url, "POST", "/v1/rules/rule-sets", body=path.read_bytes(), ctype="application/yaml"
        )
    )


@rules_app.command("evaluate")
def evaluate(
    as_of: Annotated[int | None, typer.Option("--as-of", help="unix seconds")] = None,
    version: Annotated[str | None, typer.Option(help="rule-set version")] = None,
    url: Url = "http://127.0.0.1:8000",
) -> None:
    """Full evaluation at AS_OF, anchored as an epoch."""
    doc = {"as_of": as_of, "version": version}
    _print(_request(url, "POST", "/v1/rules/evaluations", body=json.dumps(doc).encode()))


@rules_app.command("status")
def status(
    kind: Annotated[str, typer.Argument(help="person or entity")],
    identifier: Annotated[str, typer.Argument(help="resident id number or USCC")],
    as_of: Annotated[int | None, typer.Option("--as-of")] = None,
    url: Url = "http://127.0.0.1:8000",
) -> None:
    """A subject's lists with rule, triggering records and exit conditions."""
    _print(
        _request(
            url,
            "GET",
            "/v1/rules/status",
            params={"subject_kind": kind, "subject_id": identifier, "as_of": as_of},
        )
    )


@rules_app.command("proof")
def proof(
    list_id: Annotated[str, typer.Argument(help="list id, e.g. black")],
    kind: Annotated[str, typer.Argument(help="person or entity")],
    identifier: Annotated[str, typer.Argument(help="resident id number or USCC")],
    epoch: Annotated[int | None, typer.Option(help="epoch (default: newest)")] = None,
    url: Url = "http://127.0.0.1:8000",
) -> None:
    """Merkle proof of membership or non-membership at an epoch."""
    _print(
        _request(
            url,
            "GET",
            "/v1/rules/proof",
            params={
                "list": list_id,
                "subject_kind": kind,
                "subject_id": identifier,
                "epoch": epoch,
            },
        )
    )
