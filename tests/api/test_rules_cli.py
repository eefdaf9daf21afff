"""`zhixin rules ...` against a real HTTP service (uvicorn on 127.0.0.1, embedded chain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from api.main import create_app
from api.settings import Settings
from ledger.node import free_port

ZHIXIN = str(Path(sys.executable).parent / "zhixin")
STARTER = Path(__file__).resolve().parents[2] / "ledger" / "data" / "rules"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    d = tmp_path_factory.mktemp("rules-cli")
    port = free_port()
    settings = Settings(data_dir=d, chain="embedded", dev=True, port=port, verify_workers=0)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    keys = json.loads((d / "dev-keys.json").read_text())
    yield f"http://127.0.0.1:{port}", keys
    server.should_exit = True
    t.join(timeout=30)


def zx(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ZHIXIN_TOKEN", "ZHIXIN_SIGNIN_KEY")}
    if key:
        env["ZHIXIN_SIGNIN_KEY"] = key
    return subprocess.run([ZHIXIN, *args], capture_output=True, text=True, env=env, timeout=120)


def test_publish_evaluate_status_proof(service: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, keys = service
    pub = keys["rule-publisher"]["private_key"]
    starter = next(STARTER.glob("*.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(starter.read_text().replace("tax.arrears", "tax.no_such_category", 1))
    r = zx("rules", "publish", str(bad), "--url", url, key=pub)
    assert r.returncode == 1
    assert r.stderr.startswith("zhixin: error:") and "tax.no_such_category" in r.stderr
    assert "Traceback" not in r.stderr
    # without a session the publisher route refuses
    r = zx("rules", "publish", str(starter), "--url", url)
    assert r.returncode == 1 and r.stderr.startswith("zhixin: error:")
    r = zx("rules", "publish", str(starter), "--url", url, key=pub)
    assert r.returncode == 0, r.stderr
    published = json.loads(r.stdout)
    assert published["hash"].startswith("0x") and len(published["hash"]) == 66
    assert published["tx_hash"].startswith("0x")
    r = zx("rules", "evaluate", "--url", url, key=pub)
    assert r.returncode == 0, r.stderr
    assert "epoch" in json.loads(r.stdout)
    r = zx("rules", "status", "entity", "91440300568520498A", "--url", url)
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), dict)
    r = zx("rules", "proof", "black", "entity", "91440300568520498A", "--url", url)
    assert r.returncode == 0, r.stderr
    assert "proof" in r.stdout
    r = zx("rules", "status", "entity", "91440300568520498B", "--url", url)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "zhixin: error:" in r.stderr


def test_service_down_is_one_line() -> None:
    r = zx(
        "rules",
        "status",
        "entity",
        "91440300568520498A",
        "--url",
        f"http://127.0.0.1:{free_port()}",
    )
    assert r.returncode == 1
    assert r.stderr.startswith("zhixin: error: cannot reach") and r.stderr.count("\n") == 1
