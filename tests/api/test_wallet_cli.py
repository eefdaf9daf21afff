"""The holder's wallet and the credentials CLI against a real `zhixin serve --dev` on anvil:
new wallet, in-person issuance, presentation to a verifier, revocation, bad input."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from api.cli import main
from tests.api.test_cli import Server

_capsys: pytest.CaptureFixture[str] | None = None


def run(*args: str, env: dict[str, str] | None = None) -> SimpleNamespace:
    """`zhixin ARGS` in this process (the server is the real binary): exit code and output."""
    assert _capsys is not None
    _capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = _capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


pytestmark = [pytest.mark.anvil, pytest.mark.xdist_group("cli")]


@pytest.fixture
def served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Server, dict[str, str]]]:
    global _capsys
    _capsys = capsys
    env = {
        **os.environ,
        "ZHIXIN_KEYSTORE_PASSWORD": "correct horse",
        "ZHIXIN_DISTRICT_SECRET": "5a" * 32,
        "HOME": str(tmp_path / "home"),
    }
    (tmp_path / "home").mkdir()
    srv = Server(tmp_path / "data", env, "--dev")
    try:
        srv.wait_healthy()
        env["ZHIXIN_URL"] = srv.url
        # issuing and revoking need an ISSUER session: the CLI signs in with this key (SIWE)
        keys = json.loads((tmp_path / "data" / "dev-keys.json").read_text())
        env["ZHIXIN_SIGNIN_KEY"] = keys["issuer"]["private_key"]
        monkeypatch.setenv("ZHIXIN_SIGNIN_KEY", env["ZHIXIN_SIGNIN_KEY"])
        monkeypatch.setenv("HOME", env["HOME"])
        monkeypatch.setenv("ZHIXIN_URL", srv.url)
        yield srv, env
    finally:
        srv.stop()


def test_wallet_flow_on_anvil(served: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    _srv, env = served
    r = run("wallet", "new", env=env)
    assert r.returncode == 0, r.stderr
    did = json.loads(r.stdout)["did"]
    assert did.startswith("did:key:z6Mk")
    wallet = Path(env["HOME"]) / ".zhixin" / "wallet.json"
    assert oct(wallet.stat().st_mode & 0o777) == "0o600"
    assert "secretKeyMultibase" not in run("wallet", "show", env=env).stdout
    r = run("wallet", "new", env=env)
    assert r.returncode == 1 and r.stderr.startswith("zhixin: error:") and "--force" in r.stderr

    vc_file = tmp_path / "vc.json"
    r = run(
        "credentials", "issue", "--name", "张三", "--id-number", "11010519491231002X",
        "--district", "禅城区", "--out", str(vc_file), env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    vc = json.loads(vc_file.read_text())
    assert vc["credentialSubject"]["id"] == did

    vp_file = tmp_path / "vp.json"
    r = run("wallet", "present", "--domain", "bank.example", "--out", str(vp_file), env=env)
    assert r.returncode == 0, r.stderr
    r = run("credentials", "verify", str(vp_file), env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verified"] is True
    r = run("credentials", "verify", str(vp_file), env=env)  # the challenge is spent
    assert r.returncode == 1 and "challenge" in r.stderr

    r = run("did", "resolve", vc["issuer"], env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["didDocument"]["id"] == vc["issuer"]
    r = run("did", "resolve", "did:web:example.com", env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "not supported" in r.stderr

    r = run("credentials", "revoke", str(vc_file), env=env)
    assert r.returncode == 0, r.stderr
    r = run("wallet", "present", "--domain", "bank.example", "--submit", env=env)
    assert r.returncode == 1 and "status" in r.stderr

    r = run("credentials", "verify", str(tmp_path / "missing.json"), env=env)
    assert r.returncode == 1 and r.stderr.startswith("zhixin: error:")
    r = run("credentials", "verify", str(vc_file), "--url", "http://127.0.0.1:9", env=env)
    assert r.returncode == 1 and "cannot reach" in r.stderr
