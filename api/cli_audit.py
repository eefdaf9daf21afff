"""``zhixin audit``: replay the ledger from the chain alone; human report with a progress bar or
``--json``; exit status 1 when any check fails (2 when the report is partial but clean).

The chain holds only the content hash of each rule set (``publishRuleSet`` calldata is
``ruleSetId, version, contentHash``), so the documents come from ``--rules-dir`` (default: the
packaged ones): each published hash must match one of them, and every anchored list epoch is
re-evaluated from the replayed records and compared with its anchored root.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["audit"]


def audit(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Service data dir")] = None,
    rpc_url: Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC URL")] = None,
    from_block: Annotated[int | None, typer.Option("--from-block", help="first block")] = None,
    to_block: Annotated[int | None, typer.Option("--to-block", help="last block")] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="checkpoint file: continue / save progress")
    ] = None,
    page: Annotated[int, typer.Option(help="blocks per eth_getLogs page")] = 2_000,
    workers: Annotated[int | None, typer.Option(help="signature-recovery processes")] = None,
    index: Annotated[
        bool, typer.Option("--index/--no-index", help="also compare the service's SQL index")
    ] = False,
    rules_dir: Annotated[
        Path | None,
        typer.Option(
            "--rules-dir",
            help="directory of the published rule-set documents (YAML/JSON as given to `zhixin "
            "rules publish`); their hashes are recomputed and list epochs re-evaluated with "
            "them [default: the packaged rule sets]",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> None:
    """Verify the whole ledger history from the chain: signatures, roles at each block, running
    hash, lifecycle references, issuer and publisher roles, anchored log checkpoints, rule-set
    hashes and every anchored list epoch re-evaluated (Merkle roots compared)."""
    from ledger.audit_replay import load_rule_sets, replay

    from .cli import _cli_chain

    rule_dir = rules_dir or Path(__file__).resolve().parent.parent / "ledger/data/rules"
    rule_sets = load_rule_sets(rule_dir)  # before the chain: a bad directory fails fast
    chain, dep, node, settings = _cli_chain(data_dir, rpc_url)
    err = Console(stderr=True)
    try:
        if as_json or not err.is_terminal:
            report = replay(chain, dep, from_block=from_block, to_block=to_block, page=page,
                            resume=resume, workers=workers, rule_sets=rule_sets)  # fmt: skip
        else:
            cols = (
                TextColumn("replaying"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("blocks  {task.fields[records]} records"),
                TimeElapsedColumn(),
            )
            with Progress(*cols, console=err, transient=True) as bar:
                task = bar.add_task("replay", total=None, records=0)

                def tick(done: int, total: int, records: int) -> None:
                    bar.update(task, completed=done, total=total, records=records)

                report = replay(chain, dep, from_block=from_block, to_block=to_block, page=page,
                                resume=resume, workers=workers, rule_sets=rule_sets,
                                progress=tick)  # fmt: skip
        doc: dict[str, Any] = report.to_json()
        if index:
            from ledger.db import make_engine

            engine = make_engine(settings.db_url)
            try:
                from ledger.index_diff import diff_index

                diff = diff_index(chain, dep, engine, to_block=report.to_block)
            finally:
                engine.dispose()
            doc["index"] = diff.to_json()
            doc["ok"] = doc["ok"] and diff.ok
    finally:
        chain.close()
        if node:
            node.stop()
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print(doc)
    if not doc["ok"]:
        raise typer.Exit(1)
    if doc.get("partial"):
        raise typer.Exit(2)  # clean, but the range did not cover the whole history


def _print(doc: dict[str, Any]) -> None:
    out = Console()
    verdict = "[bold green]PASS[/]" if doc["ok"] else "[bold red]FAIL[/]"
    scope = " (partial)" if doc["partial"] else ""
    out.print(f"audit {verdict}{scope}: chain {doc['chain_id']}, blocks {doc['from_block']}.."
              f"{doc['to_block']} (head {doc['head_block']})")  # fmt: skip
    counts = ", ".join(f"{k} {v}" for k, v in sorted(doc["counts"].items()))
    out.print(f"  checked: {counts}")
    out.print(f"  running hash {doc['running_hash']}; log size {doc['log']['size']} root "
              f"{doc['log']['root']}")  # fmt: skip
    ep = doc["list_epochs"]
    out.print(f"  list epochs: {ep['anchored']} anchored, {ep['reevaluated']} re-evaluated "
              f"({ep['matched']} matched, {ep['mismatched']} mismatched), {ep['not_evaluated']} "
              "not evaluated")  # fmt: skip
    for e in ep["epochs"]:
        if e["status"] == "not-evaluated":
            out.print(f"    epoch {e['epoch']} (block {e['block']}): [yellow]not evaluated[/]: "
                      f"{escape(e['reason'])}")  # fmt: skip
            continue
        mark = "[green]match[/]" if e["status"] == "match" else "[bold red]MISMATCH[/]"
        out.print(f"    epoch {e['epoch']} (block {e['block']}, {e['rule_set_id']} "
                  f"{e['rule_set_version']}, asOf {e['as_of']}, {e['records']} records): {mark} "
                  f"anchored {e['anchored_root']} ({e['anchored_members']} members), recomputed "
                  f"{e['recomputed_root']} ({e['recomputed_members']})")  # fmt: skip
    findings = list(doc["findings"]) + list(doc.get("index", {}).get("findings", []))
    for note in doc["notes"] + doc.get("index", {}).get("notes", []):
        out.print(f"  [yellow]note[/]: {note}")
    if findings:
        t = Table("check", "record", "block", "tx", "detail")
        for f in findings[:200]:
            detail = f["detail"]
            if "field" in f or "expected" in f:
                detail += (
                    f" [{f.get('field', '')} expected {f.get('expected')}, got {f.get('actual')}]"
                )
            t.add_row(
                f["check"],
                f.get("record_id", "-"),
                str(f.get("block", "-")),
                f.get("tx", "-"),
                escape(detail),
            )  # fmt: skip (no markup in data)
        out.print(t)
        if len(findings) > 200:
            out.print(f"  ... and {len(findings) - 200} more (use --json)")
