"""``zhixin audit`` re-evaluates anchored list epochs without the service: the embedded chain
stands in for the node (``_cli_chain`` patched), the rule-set documents come from --rules-dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app
from ledger.chain import Chain
from tests.ledger.test_audit_epochs import RULES_DIR, EpochHistory

ENV = {"COLUMNS": "400", "NO_COLOR": "1"}


@pytest.fixture
def epochs(embedded_chain: Chain, monkeypatch: pytest.MonkeyPatch) -> EpochHistory:
    e = EpochHistory(embedded_chain)
    e.write(2)
    e.publish()

    def cli_chain(_data_dir: Any, _rpc_url: Any) -> tuple[Any, ...]:
        return embedded_chain, e.dep, None, None

    monkeypatch.setattr("api.cli._cli_chain", cli_chain)
    monkeypatch.setattr(embedded_chain, "close", lambda: None)  # the CLI closes its chain
    return e


def audit(*args: str) -> Any:
    return CliRunner().invoke(app, ["audit", *args], env=ENV)


def test_clean_history_passes_with_epochs_reevaluated(epochs: EpochHistory) -> None:
    _anchor, com = epochs.anchor()
    epochs.write(1)
    epochs.anchor()
    r = audit("--json", "--rules-dir", str(RULES_DIR), "--workers", "1")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["counts"]["epochs_reevaluated"] == 2
    ep = doc["list_epochs"]
    assert (ep["anchored"], ep["reevaluated"], ep["matched"], ep["not_evaluated"]) == (2, 2, 2, 0)
    assert ep["epochs"][0]["recomputed_root"] == "0x" + com.lists_root.hex()

    human = audit("--rules-dir", str(RULES_DIR), "--workers", "1")  # default rules dir: same
    assert human.exit_code == 0, human.output
    assert "audit PASS" in human.stdout
    assert "list epochs: 2 anchored, 2 re-evaluated (2 matched, 0 mismatched)" in human.stdout
    assert "epoch 1 (block" in human.stdout and ": match anchored 0x" in human.stdout


def test_wrong_anchored_root_fails_with_the_finding(epochs: EpochHistory, tmp_path: Path) -> None:
    anchor, com = epochs.anchor(root=b"\x42" * 32)
    r = audit("--json", "--workers", "1")  # the packaged documents by default
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert not doc["ok"] and doc["failed_checks"] == {"epoch-root-mismatch": 1}
    (f,) = doc["findings"]
    assert (f["epoch"], f["block"], f["field"]) == (1, anchor.anchored_at, "listsRoot")
    assert f["expected"] == "0x" + com.lists_root.hex() and f["actual"] == "0x" + "42" * 32
    assert doc["list_epochs"]["mismatched"] == 1

    human = audit("--workers", "1")
    assert human.exit_code == 1
    assert "audit FAIL" in human.stdout and "MISMATCH" in human.stdout
    assert "epoch-root-mismatch" in human.stdout and "[listsRoot expected 0x" in human.stdout

    # no document for the published hash: a precise finding, exit 1, no traceback
    r = audit("--json", "--rules-dir", str(tmp_path), "--workers", "1")
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    doc = json.loads(r.stdout)
    assert doc["failed_checks"] == {"rule-set-document-missing": 1}
    assert doc["list_epochs"]["not_evaluated"] == 1


def test_partial_clean_range_exits_2(epochs: EpochHistory) -> None:
    """A clean replay that stops before the head is not a pass of the whole history."""
    anchor, _com = epochs.anchor()
    epochs.write(1)
    r = audit("--json", "--to-block", str(anchor.anchored_at), "--workers", "1")
    assert r.exit_code == 2, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["partial"]
    assert audit("--json", "--workers", "1").exit_code == 0  # the whole history: a pass
