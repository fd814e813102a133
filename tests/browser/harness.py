"""What the browser tests share: the served console, screenshots, and signing in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import FakeClock
from tests.web.conftest import PASSWORD
from tidings.access.control import AccessControl
from tidings.api import Tidings
from tidings.demo.smtp_server import LocalSmtpServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@dataclass
class Console:
    url: str
    tidings: Tidings
    access: AccessControl
    smtp: LocalSmtpServer
    clock: FakeClock

    def at(self, path: str) -> str:
        return self.url + path


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, console: Console, username: str, *, next_path: str = "/console/") -> None:
    page.goto(console.at(next_path))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own: Playwright's synchronous API keeps an event loop
    running in the test's thread, and the dispatcher starts one with ``asyncio.run``."""
    done: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            done.append(work())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if failed:
        raise failed[0]
    return done[0]
