"""The ``zhixin`` command line.

Invariant: a user error ends with one line on stderr (``zhixin: error: ...``) and a non-zero
exit, never a stack trace; a command that fails validation writes nothing.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ledger.errors import ZhixinError

from .cli_identity import TYPERS as IDENTITY_TYPERS
from .cli_records import records_app
from .cli_rules import rules_app
from .settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="zhixin",
    help="zhixin 智信: identity and credit ledger on a permissioned chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
roles_app = typer.Typer(help="On-chain roles: grant, revoke, list.", no_args_is_help=True)
app.add_typer(roles_app, name="roles")
keys_app = typer.Typer(help="Encrypted keystores for the service's own keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(rules_app, name="rules")
app.add_typer(records_app, name="records")
for _sub, _name in IDENTITY_TYPERS:  # did, credentials, wallet (api/cli_identity.py)
    app.add_typer(_sub, name=_name)

out = Console()

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Service data dir [env ZHIXIN_DATA_DIR]")
]
ChainOpt = Annotated[
    str | None,
    typer.Option("--chain", help="anvil (local node), embedded (in-process) or external"),
]
RpcUrl = Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC URL of the chain")]
Keystore = Annotated[Path | None, typer.Option("--keystore", help="Governor keystore file")]
PasswordFile = Annotated[
    Path | None,
    typer.Option("--password-file", help="File holding the keystore password"),
]


def _settings(**overrides: Any) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    pw_file = clean.pop("password_file", None)
    if pw_file is not None:
        try:
            clean["keystore_password"] = Path(pw_file).read_text().rstrip("\n")
        except OSError as exc:
            raise ZhixinError(f"cannot read password file {pw_file}: {exc.strerror}") from None
    if clean.get("rpc_url") and "chain" not in clean:
        clean["chain"] = "external"
    try:
        return Settings(**clean)
    except ValueError as exc:
        first = str(exc).splitlines()
        raise ZhixinError("invalid setting: " + " ".join(first[1:3]).strip()) from None


@app.command()
def serve(
    data_dir: DataDir = None,
    chain: ChainOpt = None,
    rpc_url: RpcUrl = None,
    host: Annotated[str | None, typer.Option(help="HTTP bind address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
    node_port: Annotated[int | None, typer.Option(help="Local node RPC port")] = None,
    keystore: Keystore = None,
    password_file: PasswordFile = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Provision demo identities (demo and tests only)")
    ] = False,
) -> None:
    """Start the node (or connect), deploy or verify the contracts, and serve HTTP."""
    import uvicorn

    from ledger.node import port_in_use

    from .main import create_app
    from .observability import configure_logging
    from .runtime import Runtime

    settings = _settings(
        data_dir=data_dir,
        chain=chain,
        rpc_url=rpc_url,
        host=host,
        port=port,
        node_port=node_port,
        keystore=keystore,
        password_file=password_file,
        dev=dev or None,
    )
    if port_in_use(settings.host, settings.port):
        raise ZhixinError(f"HTTP port {settings.port} on {settings.host} is in use")
    configure_logging(os.environ.get("ZHIXIN_LOG_LEVEL", "info"))
    rt = Runtime.start(settings)
    try:
        url = f"http://{settings.host}:{settings.port}"
        out.print(f"[bold]zhixin[/] chain {rt.deployment.chain_id} ({rt.chain.kind})")
        for name, addr in rt.deployment.contracts.items():
            out.print(f"  {name:<18} {addr}")
        demo_help: list[str] = []
        if rt.dev_identities and settings.demo_seed:
            from .demo import seed_demo, sign_in_lines

            out.print("seeding the demo scenario…")
            sys.stdout.flush()
            scenario = seed_demo(rt)  # a failure is one ZhixinError line (api.cli.main)
            out.print(
                f"demo: {scenario['counts']['records']} records, rule set "
                f"{scenario['rule_set']['id']} {scenario['rule_set']['version']}, epoch "
                f"{scenario['epoch']['epoch']}; keys in {settings.data_dir / 'dev-keys.json'} "
                "(demo only)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            demo_help = sign_in_lines(url, settings.data_dir, scenario)
        out.print(f"serving on [link]{url}[/]  (API docs: {url}/docs)")
        for line in demo_help:
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        sys.stdout.flush()
        # start-up objects (contracts, catalogs, caches) live as long as the process: keep them
        # out of the collector's full passes, which otherwise stall requests for ~100 ms
        gc.collect()
        gc.freeze()
        uvicorn.run(
            create_app(runtime=rt, close_runtime=True),
            host=settings.host,
            port=settings.port,
            log_level=os.environ.get("ZHIXIN_LOG_LEVEL", "warning"),
            log_config=None,  # keep our handlers (api/observability.py)
            access_log=False,  # our access line replaces uvicorn's
        )
    finally:
        rt.close()


def _cli_chain(data_dir: Path | None, rpc_url: str | None) -> tuple[Any, Any, Any, Settings]:
    from .runtime import open_chain_for_cli

    settings = _settings(data_dir=data_dir, rpc_url=rpc_url)
    chain, dep, node = open_chain_for_cli(settings)
    return chain, dep, node, settings


def _governor(settings: Settings, chain: Any, keystore: Path | None, pw: Path | None) -> Any:
    from ledger.chain import Sender
    from ledger.deploy import decoder

    from .runtime import governor_account

    s = _settings(
        data_dir=settings.data_dir,
        keystore=keystore,
        password_file=pw,
        chain=settings.chain,
        rpc_url=settings.rpc_url,
    )
    acct = governor_account(s)
    if acct is None:
        raise ZhixinError(f"no governor key: {s.keystore_path} not found")
    return Sender(chain, acct, decoder())


def _parse_categories(value: str | None) -> list[int]:
    from ledger.catalog import load_catalog
    from ledger.errors import InvalidInput

    if not value:
        return []
    cat = load_catalog()
    ids: list[int] = []
    for part in value.split(","):
        p = part.strip()
        if not p:
            continue
        if p.isdigit():
            ids.append(cat.by_id(int(p)).id)
        elif p:
            ids.append(cat.by_code(p).id)
    if not ids:
        raise InvalidInput("--categories names no category")
    return ids


@roles_app.command("grant")
def roles_grant(
    role: Annotated[str, typer.Argument(help="governor, agency, issuer, auditor, rule-publisher")],
    account: Annotated[str, typer.Argument(help="0x account address")],
    categories: Annotated[
        str | None,
        typer.Option(help="For agencies: comma-separated category codes or ids to allow"),
    ] = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    keystore: Keystore = None,
    password_file: PasswordFile = None,
) -> None:
    """Grant ROLE to ACCOUNT (and, for agencies, category scope)."""
    from ledger.chain import parse_address
    from ledger.errors import InvalidInput
    from ledger.roles import Role, parse_role

    r = parse_role(role)
    addr = parse_address(account, "account")
    cats = _parse_categories(categories)
    if cats and r is not Role.AGENCY:
        raise InvalidInput("--categories applies to the agency role only")
    chain, dep, node, settings = _cli_chain(data_dir, rpc_url)
    try:
        from ledger.roles import RolesClient

        gov = _governor(settings, chain, keystore, password_file)
        client = RolesClient(chain, dep.address("Roles"))
        new = client.grant(gov, r, addr)
        out.print(f"{'granted' if new else 'already held'}: {r.value} → {addr}")
        if cats:
            client.grant_categories(gov, addr, cats)
            out.print(f"categories in scope: {', '.join(map(str, client.categories_of(addr)))}")
    finally:
        chain.close()
        if node:
            node.stop()


@roles_app.command("revoke")
def roles_revoke(
    role: Annotated[str, typer.Argument(help="governor, agency, issuer, auditor, rule-publisher")],
    account: Annotated[str, typer.Argument(help="0x account address")],
    categories: Annotated[
        str | None,
        typer.Option(help="For agencies: revoke only these categories, keep the role"),
    ] = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    keystore: Keystore = None,
    password_file: PasswordFile = None,
) -> None:
    """Revoke ROLE from ACCOUNT (or only some categories from an agency's scope)."""
    from ledger.chain import parse_address
    from ledger.errors import InvalidInput
    from ledger.roles import Role, RolesClient, parse_role

    r = parse_role(role)
    addr = parse_address(account, "account")
    cats = _parse_categories(categories)
    if cats and r is not Role.AGENCY:
        raise InvalidInput("--categories applies to the agency role only")
    chain, dep, node, settings = _cli_chain(data_dir, rpc_url)
    try:
        gov = _governor(settings, chain, keystore, password_file)
        client = RolesClient(chain, dep.address("Roles"))
        if cats:
            client.revoke_categories(gov, addr, cats)
            out.print(f"categories revoked from {addr}: {', '.join(map(str, cats))}")
        else:
            gone = client.revoke(gov, r, addr)
            out.print(f"{'revoked' if gone else 'not held'}: {r.value} ✗ {addr}")
    finally:
        chain.close()
        if node:
            node.stop()


@keys_app.command("new")
def keys_new(
    path: Annotated[
        Path, typer.Argument(help="where to write the keystore (refuses to overwrite)")
    ],
    password_file: PasswordFile = None,
) -> None:
    """Create an encrypted keystore (scrypt, mode 0600) and print only its address — e.g. the
    rule publisher's `DATA_DIR/publisher.keystore.json`, then `zhixin roles grant
    rule_publisher ADDRESS`. The password comes from --password-file or
    ZHIXIN_KEYSTORE_PASSWORD, the same one the service reads."""
    from ledger.keys import create_keystore

    settings = _settings(password_file=password_file)
    acct = create_keystore(path, settings.password())
    out.print(acct.address, markup=False, highlight=False)


@roles_app.command("list")
def roles_list(
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List every role holder read from the chain."""
    from ledger.roles import RolesClient

    chain, dep, node, _ = _cli_chain(data_dir, rpc_url)
    try:
        members = RolesClient(chain, dep.address("Roles")).list_all()
    finally:
        chain.close()
        if node:
            node.stop()
    if as_json:
        doc = [
            {"role": m.role.value, "account": m.account, "categories": list(m.categories)}
            for m in members
        ]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    table = Table("role", "account", "categories")
    for m in members:
        table.add_row(m.role.value, m.account, ", ".join(map(str, m.categories)))
    out.print(table)


from .cli_audit import audit as _audit  # noqa: E402 - registered after the shared options

app.command("audit")(_audit)


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps every ZhixinError to one line on stderr and exit status 1."""
    try:
        app(args=argv, prog_name="zhixin")
    except ZhixinError as exc:
        sys.stderr.write(f"zhixin: error: {exc.detail}\n")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
