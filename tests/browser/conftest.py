"""The console served for real: uvicorn on a free port of 127.0.0.1 in a background thread,
over a SQLite store with a history (``region``), driven by Playwright through Debian's
Chromium (``/usr/bin/chromium``; nothing is downloaded). Each page a test visits is saved as a
full-page screenshot under ``test-artifacts/screenshots/``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.browser.harness import Console
from tests.browser.region import REPORTS, with_history
from tests.conftest import FakeClock
from tests.notify_setup import advance, bootstrap
from tests.web.conftest import BOOT_PEOPLE, FAST_HASHER, PASSWORD, SECRET_ENV, web_config
from tidings.access.control import AccessControl
from tidings.access.roles import Scope
from tidings.api import Tidings
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not CHROMIUM.exists():
    pytest.skip(
        "the browser tests drive Debian's chromium at /usr/bin/chromium, which is not "
        "installed (make test installs it: apt-get install chromium)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The console over a SQLite region with a history; users ada (admin), sam (support) and
    mo (manager of programme North), each with the password ``PASSWORD``."""
    folder = tmp_path_factory.mktemp("console")
    with LocalSmtpServer() as smtp:
        clock = FakeClock(datetime(2025, 8, 1, 0, 0, tzinfo=UTC))
        config = web_config(f"sqlite:///{folder / 'tidings.db'}", smtp.port, reports=REPORTS)
        tidings = Tidings(config, clock=clock, environ=SECRET_ENV)
        advance(clock, BOOT_PEOPLE)
        bootstrap(
            tidings,
            [("T1", "t1@nhs.example"), ("T2", "t2@gmail.example"), ("T3", None)],
            BOOT_PEOPLE,
        )
        with_history(tidings, clock, smtp)
        access = AccessControl(config, tidings.store, clock, hasher=FAST_HASHER)
        for name, role, scope in (
            ("ada", "admin", None),
            ("sam", "support", None),
            ("mo", "manager", "programme=North"),
        ):
            access.add_user(name, PASSWORD, by="test", display_name=name.title())
            access.grant(
                role=role, username=name, by="test", scope=Scope.parse(scope) if scope else None
            )
        app = create_app(tidings, access=access, environ=SECRET_ENV)
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, name="console-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the console server did not start within 15 s")
            time.sleep(0.05)
        try:
            yield Console(f"http://127.0.0.1:{port}", tidings, access, smtp, clock)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            tidings.store.dispose()


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Any]:
    """Chromium, started after the console (its set-up runs asyncio, which Playwright's
    synchronous API would otherwise be running in this thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, 1280 pixels wide."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        context.close()
