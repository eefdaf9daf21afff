"""Browser-test fixtures: the real service with the seeded demo, and Debian's chromium.

* ``demo_server`` (session): ``zhixin serve --chain embedded --dev`` in a subprocess on a free
  port, ready once ``/healthz`` answers ok and ``DATA_DIR/demo/scenario.json`` exists. It has
  ``.url``, ``.data_dir``, ``.demo`` (``demo/index.json``: name -> {file, kind, role, label}),
  ``.scenario`` (``demo/scenario.json``, see :mod:`api.demo`), ``.keys`` (``dev-keys.json``)
  and ``.log_tail()``.
* ``browser`` (session): Playwright's chromium driving ``/usr/bin/chromium`` headless.
* ``page`` (function): a page in a new browser context (no cookie leaks between tests), 15 s
  default timeout.
* :func:`sign_in`: ``sign_in(page, demo_server, "agency-tax")`` clicks that demo identity's
  button on ``/signin`` and waits until the browser has left ``/signin``.

``ZHIXIN_TEST_DEMO_URL`` + ``ZHIXIN_TEST_DEMO_DATA_DIR`` point the journeys at a server that is
already running instead (e.g. ``make serve`` on anvil, to walk them on the real node).

Every test using these fixtures runs in the xdist group ``browser`` (one server, one browser
per run under ``-n 2 --dist loadgroup``). Without ``/usr/bin/chromium`` the tests are skipped,
except in CI (``$CI`` set), where that is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx2 as httpx
import pytest

from ledger.node import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ZHIXIN = str(Path(sys.executable).parent / "zhixin")
START_TIMEOUT_S = 120.0
PAGE_TIMEOUT_MS = 15_000
BROWSER_FIXTURES = frozenset({"demo_server", "browser", "page"})
GROUP = "browser"


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    here = Path(__file__).parent
    ours = [
        item
        for item in items
        if here in Path(str(item.path)).parents
        and BROWSER_FIXTURES & set(getattr(item, "fixturenames", ()))
    ]
    for item in ours:  # before every other implementation, xdist's included
        item.add_marker(pytest.mark.browser)
        item.add_marker(pytest.mark.xdist_group(GROUP))
    yield


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: install Debian's chromium package to run the browser tests"
    if os.environ.get("CI"):
        pytest.fail(reason + " (required in CI)", pytrace=False)
    pytest.skip(reason)


@dataclass
class DemoServer:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes] | None
    stdout: Path
    stderr: Path
    demo: dict[str, dict[str, str]] = field(default_factory=dict)
    scenario: dict[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> dict[str, dict[str, Any]]:
        """``dev-keys.json``: name -> {address, private_key, role, categories} (demo only)."""
        return json.loads((self.data_dir / "dev-keys.json").read_text())  # type: ignore[no-any-return]

    def file(self, name: str) -> Path:
        """The demo identity's keystore or wallet file."""
        return self.data_dir / "demo" / self.demo[name]["file"]

    def log_tail(self, n: int = 40) -> str:
        out = []
        for p in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                lines = p.read_text(errors="replace").splitlines()[-n:]
                out.append(f"--- {p.name} ---\n" + "\n".join(lines))
        return "\n".join(out)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    _require_chromium()
    given = os.environ.get("ZHIXIN_TEST_DEMO_URL")
    if given:
        given_dir = Path(os.environ["ZHIXIN_TEST_DEMO_DATA_DIR"])
        server = DemoServer(given.rstrip("/"), given_dir, None, given_dir / "-", given_dir / "-")
        _wait_ready(server)
        server.demo = json.loads((given_dir / "demo" / "index.json").read_text())
        server.scenario = json.loads((given_dir / "demo" / "scenario.json").read_text())
        yield server
        return
    root = tmp_path_factory.mktemp("demo-server")
    data_dir = root / "data"
    port = free_port()
    env = {
        **os.environ,
        "ZHIXIN_VERIFY_WORKERS": "0",
        "ZHIXIN_CHECKPOINT_EVERY_RECORDS": "50",
        "ZHIXIN_LOG_LEVEL": os.environ.get("ZHIXIN_LOG_LEVEL", "info"),
        "HOME": str(root),
    }
    for var in ("ZHIXIN_DATA_DIR", "ZHIXIN_CHAIN", "ZHIXIN_RPC_URL", "ZHIXIN_DATABASE_URL"):
        env.pop(var, None)
    stdout, stderr = root / "stdout.log", root / "stderr.log"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [
                ZHIXIN,
                "serve",
                "--chain",
                "embedded",
                "--dev",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=err,
            env=env,
        )
    server = DemoServer(f"http://127.0.0.1:{port}", data_dir, proc, stdout, stderr)
    try:
        _wait_ready(server)
        server.demo = json.loads((data_dir / "demo" / "index.json").read_text())
        server.scenario = json.loads((data_dir / "demo" / "scenario.json").read_text())
        yield server
    finally:
        _stop(proc)


def _wait_ready(server: DemoServer) -> None:
    scenario = server.data_dir / "demo" / "scenario.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        code = server.proc.poll() if server.proc is not None else None
        if code is not None:
            raise AssertionError(f"zhixin serve exited with {code}\n{server.log_tail()}")
        try:
            r = httpx.get(server.url + "/healthz", timeout=2)
            last = f"/healthz {r.status_code}"
            if r.status_code == 200 and r.json().get("status") == "ok" and scenario.exists():
                return
        except httpx.HTTPError as exc:
            last = f"/healthz: {type(exc).__name__}"
        time.sleep(0.25)
    raise AssertionError(
        f"demo server not ready after {START_TIMEOUT_S:.0f} s ({last})\n{server.log_tail()}"
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Any, server: DemoServer, name: str) -> Any:
    """Sign in as the demo identity ``name`` through the ``/signin`` page's demo button."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(server.url + "/signin")
    page.locator(f'.demo-load[data-name="{name}"]').click()
    try:
        page.wait_for_url(lambda url: urlparse(url).path != "/signin")
    except PlaywrightTimeout:
        err = page.locator("#signin-error")
        shown = err.inner_text() if err.is_visible() else "no error shown"
        raise AssertionError(f"signing in as {name} did not leave /signin: {shown}") from None
    return page
