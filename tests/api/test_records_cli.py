"""`zhixin records sign|submit|show|list` as a user runs them, against a real `zhixin serve --dev`
on anvil; and LedgerReader reading the same records from the chain with no service in between."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ledger.client import LedgerReader
from ledger.node import free_port
from ledger.records import record_digest, recover_signer, signed_record_from_json

from .test_cli import ZHIXIN, Server, env  # noqa: F401 - env is a fixture

pytestmark = [pytest.mark.anvil, pytest.mark.xdist_group("cli")]

ENTITY = "91440300568520498A"


def records(
    *args: str, run_env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZHIXIN, "records", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=run_env,
        input=stdin,
    )


def one_line_error(r: subprocess.CompletedProcess[str], needle: str) -> None:
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zhixin: error: "), r.stderr
    assert needle in lines[0], lines[0]


def test_sign_submit_show_list_and_bad_input(tmp_path: Path, env: dict[str, str]) -> None:  # noqa: F811
    data = tmp_path / "data"
    env = {**env, "ZHIXIN_DEMO_SEED": "false"}  # counts below are of this test's records only
    srv = Server(data, env, "--dev")
    try:
        health = srv.wait_healthy()
        keys = json.loads((data / "dev-keys.json").read_text())
        tax = keys["agency-tax"]
        key_file = tmp_path / "agency.key"
        key_file.write_text(tax["private_key"] + "\n")
        url = ["--url", srv.url]

        r = records(
            "sign",
            "--subject-kind", "entity",
            "--subject-id", ENTITY,
            "--category", "tax.arrears",
            "--amount", "125000",
            "--reason", "欠缴增值税",
            "--key-file", str(key_file),
            *url,
            run_env=env,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        item = json.loads(r.stdout)
        signed = signed_record_from_json({k: item[k] for k in ("record", "signature")})
        assert item["reason"] == "欠缴增值税" and signed.record.amount == 125000

        # the key can also come from the environment; the item goes in through stdin
        r = records("submit", "-", *url, run_env=env, stdin=json.dumps([item]))
        assert r.returncode == 0, r.stderr
        index, status, rid = r.stdout.strip().split("\t")
        assert (index, status) == ("0", "accepted") and rid.startswith("0x")

        r = records("show", rid, "--wait", "30", *url, run_env=env)
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["indexed"] is True and st["block_number"] > 0

        r = records("list", "--subject-kind", "entity", "--subject-id", ENTITY, *url, run_env=env)
        assert r.returncode == 0, r.stderr
        assert [x["id"] for x in json.loads(r.stdout)["records"]] == [rid]
        r = records("list", "--agency", tax["address"], "--history", *url, run_env=env)
        assert [x["id"] for x in json.loads(r.stdout)["records"]] == [rid]

        # resubmitting the same file is a duplicate, not a second record
        signed_file = tmp_path / "signed.json"
        signed_file.write_text(json.dumps(item))
        r = records("submit", str(signed_file), *url, run_env=env)
        assert r.returncode == 0 and "\tduplicate\t" + rid in r.stdout, r.stdout

        # straight from the chain: no service, just the RPC URL and deployment.json
        with LedgerReader(health["node"]["rpc_url"], data / "deployment.json") as reader:
            res = reader.read_all()
            assert res.head_matches and [e.id.hex() for e in res.entries] == [rid[2:]]
            (entry,) = res.entries
            assert entry.log.signed == signed and entry.log.signer == tax["address"]
            assert recover_signer(entry.log.signed, reader.domain()) == tax["address"]
            assert record_digest(signed.record, reader.domain()).hex() == rid[2:]

        sign_args = ["sign", "--subject-kind", "entity", "--category", "tax.arrears"]
        keyed = {**env, "ZHIXIN_AGENCY_KEY": tax["private_key"]}
        bad_key = tmp_path / "bad.key"
        bad_key.write_text("not a key")
        cases = [
            ((*sign_args, "--subject-id", "91440300568520498B", *url), keyed, "check"),
            (
                ("sign", "--subject-kind", "entity", "--subject-id", ENTITY,
                 "--category", "no.such", *url),
                keyed,
                "no.such",
            ),
            (
                (*sign_args, "--subject-id", ENTITY, "--key-file", str(bad_key), *url),
                env,
                "must be 32 bytes of hex",
            ),
            (
                (*sign_args, "--subject-id", ENTITY, "--key-file", str(tmp_path / "nope"), *url),
                env,
                "cannot read key file",
            ),
            ((*sign_args, "--subject-id", ENTITY, *url), env, "no agency key"),
            (("show", "0x1234", *url), env, "record id must be 0x"),
            (("list", *url), env, "give --subject-id"),
            (("submit", str(tmp_path / "missing.json"), *url), env, "cannot read"),
        ]  # fmt: skip
        for args, e, needle in cases:
            one_line_error(records(*args, run_env=e), needle)
        # an item the service refuses: per-item line on stdout, one error line, exit 1
        tampered = json.loads(json.dumps(item))
        tampered["record"]["amount"] = "1"
        r = records("submit", "-", *url, run_env=env, stdin=json.dumps(tampered))
        assert "\trejected\t" in r.stdout
        one_line_error(r, "1 of 1 records rejected")
    finally:
        srv.stop()
    # the service is down: a one-line error, not a traceback
    down = ["--url", f"http://127.0.0.1:{free_port()}"]
    one_line_error(records("show", "0x" + "11" * 32, *down, run_env=env), "cannot reach")
    one_line_error(
        records(
            "sign", "--subject-kind", "entity", "--subject-id", ENTITY, "--category",
            "tax.arrears", *down, run_env={**env, "ZHIXIN_AGENCY_KEY": "0x" + "42" * 32},
        ),
        "cannot reach the zhixin service",
    )  # fmt: skip
