"""``zhixin records``: sign, submit, show and list credit records through a running service.

Invariants (as for every ``zhixin`` command): a user error is one line on stderr
(``zhixin: error: ...``) and a non-zero exit; nothing is written before the input is valid.
The agency key stays on this machine: ``sign`` asks the service for the pseudonym and nonce
and signs locally (:class:`ledger.client.CreditClient`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.client import CreditClient, load_agency_account, signed_items_from_json
from ledger.errors import InvalidInput, ZhixinError

__all__ = ["records_app"]

records_app = typer.Typer(
    help="Credit records through a running service: sign, submit, show, list.",
    no_args_is_help=True,
)

Url = Annotated[
    str,
    typer.Option("--url", envvar="ZHIXIN_URL", help="Service URL [env ZHIXIN_URL]"),
]
DEFAULT_URL = "http://127.0.0.1:8000"


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


@records_app.command("sign")
def sign(
    subject_kind: Annotated[str, typer.Option(help="person or entity")],
    subject_id: Annotated[str, typer.Option(help="resident identity number or USCC")],
    category: Annotated[str, typer.Option(help="catalog code, e.g. tax.arrears")],
    kind: Annotated[str, typer.Option(help="record, amend, withdraw, objection, ...")] = "record",
    amount: Annotated[int | None, typer.Option(min=0, help="amount (smallest unit)")] = None,
    reason: Annotated[
        str | None, typer.Option(help="reason text (only its hash is signed)")
    ] = None,
    ref: Annotated[
        str | None, typer.Option(help="id of the record a lifecycle kind refers to")
    ] = None,
    effective_until: Annotated[int | None, typer.Option(min=0, help="unix seconds")] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="file holding the agency's hex key")
    ] = None,
    keystore: Annotated[
        Path | None,
        typer.Option("--keystore", help="agency keystore (password: ZHIXIN_KEYSTORE_PASSWORD)"),
    ] = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Print a signed record (JSON) ready for `zhixin records submit`.

    The key is a --key-file, a --keystore or $ZHIXIN_AGENCY_KEY.
    """
    account = load_agency_account(key_file=key_file, keystore=keystore)
    fields: dict[str, Any] = {
        "subject": {"kind": subject_kind, "id": subject_id},
        "category": category,
        "kind": kind,
    }
    for name, value in (
        ("amount", amount),
        ("reason", reason),
        ("ref", ref),
        ("effectiveUntil", effective_until),
    ):
        if value is not None:
            fields[name] = value
    with CreditClient(url) as client:
        _print_json(client.sign(fields, account))


@records_app.command("submit")
def submit(
    file: Annotated[str, typer.Argument(help="JSON file of a signed record or a list; - = stdin")],
    url: Url = DEFAULT_URL,
) -> None:
    """Submit signed records; print one line per item. Exit 1 if any was rejected."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{file} is not JSON: {exc}") from None
    items = signed_items_from_json(doc)
    with CreditClient(url) as client:
        res = client.submit(items)
    for item in res["items"]:
        if item.get("status") == "rejected":
            detail = (item.get("problem") or {}).get("detail", "rejected")
            sys.stdout.write(f"{item['index']}\trejected\t{detail}\n")
        else:
            sys.stdout.write(f"{item['index']}\t{item['status']}\t{item['id']}\n")
    if res["rejected"]:
        raise ZhixinError(f"{res['rejected']} of {len(res['items'])} records rejected")


@records_app.command("show")
def show(
    record_id: Annotated[str, typer.Argument(help="record id (0x + 64 hex digits)")],
    wait: Annotated[
        float, typer.Option(help="wait up to this many seconds until the record is indexed")
    ] = 0.0,
    url: Url = DEFAULT_URL,
) -> None:
    """Print a record's status: pending → submitted → onchain → final, and whether indexed."""
    deadline = time.monotonic() + wait
    with CreditClient(url) as client:
        st = client.status(record_id)
        while not st.get("indexed") and time.monotonic() < deadline:
            time.sleep(0.2)
            st = client.status(record_id)
    _print_json(st)


@records_app.command("list")
def list_records(
    subject_kind: Annotated[str | None, typer.Option(help="person or entity")] = None,
    subject_id: Annotated[
        str | None, typer.Option(help="identifier; pseudonymized by the service")
    ] = None,
    agency: Annotated[str | None, typer.Option(help="agency address")] = None,
    category: Annotated[str | None, typer.Option(help="catalog code or id")] = None,
    history: Annotated[
        bool, typer.Option("--history", help="raw records instead of the current view")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    url: Url = DEFAULT_URL,
) -> None:
    """List records by subject, agency or category (JSON)."""
    if subject_id is None and agency is None and category is None:
        raise InvalidInput("give --subject-id (with --subject-kind), --agency or --category")
    if subject_id is not None and subject_kind is None:
        raise InvalidInput("--subject-id needs --subject-kind person|entity")
    with CreditClient(url) as client:
        _print_json(
            client.query(
                subject_kind=subject_kind,
                subject_id=subject_id,
                agency=agency,
                category=category,
                history=history,
                limit=limit,
            )
        )
