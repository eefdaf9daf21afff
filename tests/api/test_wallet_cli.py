"""The holder's wallet and the credentials CLI against a real `zhixin serve --dev` on anvil:
new wallet, in-person issuance, presentation to a verifier, revocation, bad input; and with a
did:ethr wallet also key rotation (`did rotate`) and lost-key recovery (`did recover` by an
issuer, `did publish` from the new wallet)."""

from __future__ import annotations

import hashlib
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """One `zhixin serve --dev` on anvil for the module (starting one takes ~18 s)."""
    tmp = tmp_path_factory.mktemp("served")
    env = {
        **os.environ,
        "ZHIXIN_KEYSTORE_PASSWORD": "correct horse",
        "ZHIXIN_DISTRICT_SECRET": "5a" * 32,
        "ZHIXIN_LOG_LEVEL": "warning",  # stderr is a pipe read only at exit
        "ZHIXIN_DEMO_SEED": "false",  # this test's records only; the demo is tested elsewhere
        "HOME": str(tmp / "home"),
    }
    (tmp / "home").mkdir()
    srv = Server(tmp / "data", env, "--dev")
    try:
        srv.wait_healthy()
        env["ZHIXIN_URL"] = srv.url
        # issuing, revoking and recovering need an ISSUER session: the CLI signs in (SIWE)
        keys = json.loads((tmp / "data" / "dev-keys.json").read_text())
        env["ZHIXIN_SIGNIN_KEY"] = keys["issuer"]["private_key"]
        yield srv, env
    finally:
        srv.stop()


@pytest.fixture
def served(
    server: tuple[Server, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Server, dict[str, str]]:
    """The module's server, and this test's own HOME (so its own default wallet)."""
    global _capsys
    _capsys = capsys
    srv, base_env = server
    env = {**base_env, "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    for name in ("ZHIXIN_SIGNIN_KEY", "HOME", "ZHIXIN_URL"):
        monkeypatch.setenv(name, env[name])
    return srv, env


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


def _verify(vp: Path) -> tuple[int, dict[str, str], str]:
    """`zhixin credentials verify VP`: exit code, each named check's code, stderr."""
    r = run("credentials", "verify", str(vp))
    res = json.loads(r.stdout)
    return r.returncode, {c["name"]: c["code"] for c in res["checks"]}, r.stderr


def _present(wallet: Path, out: Path) -> Path:
    r = run(
        "wallet", "present", "--domain", "bank.example", "--wallet", str(wallet), "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    return out


def test_did_ethr_wallet_rotation_and_recovery_on_anvil(
    served: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    """The whole citizen flow from a terminal with a did:ethr wallet: new wallet (key
    published through the service), in-person issuance, presentation, key rotation, lost-key
    recovery by an issuer, revocation; each presentation checked by its named checks."""
    wallet = tmp_path / "wallet.json"
    r = run("wallet", "new", "--ethr", "--wallet", str(wallet))
    assert r.returncode == 0, r.stderr
    pub = json.loads(r.stdout)
    did, owner1 = pub["did"], pub["owner"]
    assert did.startswith("did:ethr:0x") and did.endswith(owner1.lower())
    assert pub["verificationMethod"].startswith(did + "#delegate-")
    assert "ownerKey" not in r.stdout and "secretKeyMultibase" not in r.stdout
    assert oct(wallet.stat().st_mode & 0o777) == "0o600"
    r = run("did", "show", "--wallet", str(wallet))
    assert pub["verificationMethod"] in json.loads(r.stdout)["didDocument"]["authentication"]

    vc_file = tmp_path / "vc.json"
    r = run(
        "credentials", "issue", "--name", "张三", "--id-number", "11010519491231002X",
        "--district", "禅城区", "--wallet", str(wallet), "--out", str(vc_file),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(vc_file.read_text())["credentialSubject"]["id"] == did
    code, checks, _ = _verify(_present(wallet, tmp_path / "vp1.json"))
    assert code == 0 and set(checks.values()) == {"ok"}, checks

    # key rotation: the old wallet file keeps the old keys, which stop working
    old = tmp_path / "old-wallet.json"
    old.write_text(wallet.read_text())
    r = run("did", "rotate", "--wallet", str(wallet))
    assert r.returncode == 0, r.stderr
    rotated = json.loads(r.stdout)
    assert rotated["did"] == did and rotated["owner"] != owner1
    assert rotated["verificationMethod"] != pub["verificationMethod"]
    code, checks, err = _verify(_present(old, tmp_path / "vp-old.json"))
    assert code == 1 and checks["holder-proof"] == "key-not-authorized"
    assert [n for n, c in checks.items() if c != "ok"] == ["holder-proof"]
    assert err.startswith("zhixin: error:") and "holder-proof" in err
    code, checks, _ = _verify(_present(wallet, tmp_path / "vp2.json"))
    assert code == 0 and set(checks.values()) == {"ok"}, checks
    r = run("did", "rotate", "--wallet", str(old))  # the old key controls nothing any more
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "does not control" in r.stderr

    # lost key: a new wallet for the same DID, re-bound by an issuer after re-verification
    lost = wallet
    new = tmp_path / "new-wallet.json"
    r = run("wallet", "new", "--ethr", "--did", did, "--wallet", str(new))
    assert r.returncode == 0, r.stderr
    owner3 = json.loads(r.stdout)["owner"]
    assert "did recover" in r.stderr
    r = run("did", "publish", "--wallet", str(new))  # not re-bound yet
    assert r.returncode == 1 and "does not control" in r.stderr and "did recover" in r.stderr
    record = tmp_path / "re-verification.pdf"
    record.write_bytes(b"in-person re-verification, counter 3")
    r = run("did", "recover", did, "--new-owner", owner3)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "--evidence" in r.stderr
    r = run("did", "recover", did, "--new-owner", owner3, "--evidence", str(record))
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    issuer = json.loads(vc_file.read_text())["issuer"].rsplit(":", 1)[1]
    assert rec["owner"] == owner3 and rec["issuer"].lower() == issuer.lower()
    assert rec["evidenceHash"] == "0x" + hashlib.sha256(record.read_bytes()).hexdigest()
    r = run("did", "publish", "--wallet", str(new))
    assert r.returncode == 0, r.stderr
    assert run("wallet", "add", str(vc_file), "--wallet", str(new)).returncode == 0
    code, checks, _ = _verify(_present(new, tmp_path / "vp3.json"))
    assert code == 0 and set(checks.values()) == {"ok"}, checks
    code, checks, _ = _verify(_present(lost, tmp_path / "vp-lost.json"))
    assert code == 1 and checks["holder-proof"] == "key-not-authorized"

    # revocation: the recovered key still signs, the credential fails on status by name
    r = run("credentials", "revoke", str(vc_file))
    assert r.returncode == 0, r.stderr
    code, checks, err = _verify(_present(new, tmp_path / "vp4.json"))
    assert code == 1 and checks["status"] == "revoked" and checks["holder-proof"] == "ok"
    assert [n for n, c in checks.items() if c != "ok"] == ["status"]

    # a did:key wallet cannot rotate
    assert run("wallet", "new").returncode == 0
    r = run("did", "rotate")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "did:key" in r.stderr


def test_did_ethr_interrupted_rotation_is_resumed(
    served: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    """`did rotate` stores the new owner key before it sends the change: whether or not the
    change reached the chain before a crash, the next command settles the wallet with it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from api.cli_identity import _signed_change
    from identity.multikey import encode_private_multikey
    from ledger.chain import new_account
    from ledger.keys import account_from_hex

    srv, _env = served
    wallet = tmp_path / "wallet.json"
    assert run("wallet", "new", "--ethr", "--wallet", str(wallet)).returncode == 0
    doc = json.loads(wallet.read_text())
    first_vm = doc["verificationMethod"]

    def crash_during_rotation(sent: bool) -> str:
        new_owner = new_account()
        doc = json.loads(wallet.read_text())
        doc["pendingOwnerKey"] = "0x" + bytes(new_owner.key).hex()
        doc["pendingSecretKeyMultibase"] = encode_private_multikey(Ed25519PrivateKey.generate())
        wallet.write_text(json.dumps(doc))
        if sent:
            owner = account_from_hex(doc["ownerKey"])
            _signed_change(
                srv.url, doc["did"], owner, "changeOwner", {"newOwner": new_owner.address}
            )
        return str(new_owner.address)

    # the change never left: the pending key is dropped, the current one still rules
    before = json.loads(wallet.read_text())["ownerKey"]
    crash_during_rotation(sent=False)
    r = run("did", "publish", "--wallet", str(wallet))
    assert r.returncode == 0, r.stderr
    after = json.loads(wallet.read_text())
    assert after["ownerKey"] == before and "pendingOwnerKey" not in after
    # the change was relayed, the wallet not updated: the pending key is the owner now
    new_owner = crash_during_rotation(sent=True)
    r = run("did", "publish", "--wallet", str(wallet))
    assert r.returncode == 0, r.stderr
    pub = json.loads(r.stdout)
    assert pub["owner"] == new_owner and pub["verificationMethod"] != first_vm
    assert "pendingOwnerKey" not in json.loads(wallet.read_text())
    r = run("did", "show", "--wallet", str(wallet))
    assert pub["verificationMethod"] in json.loads(r.stdout)["didDocument"]["authentication"]
