"""The demo's last step: the staff console on the demo's data.

A demo admin (``admin``, a random password made for this run) is added to the demo's store
through access control, as ``tidings users add`` would, and the demo prints the command that
starts ``tidings serve`` on its config, where to point a browser, and how to sign in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from tidings.access.control import AccessControl
from tidings.api import Tidings, system_clock
from tidings.config import Config

ADMIN = "admin"


@dataclass(frozen=True)
class ConsoleAccess:
    """How to reach the console: the command that serves it, its address, and the sign-in."""

    command: str
    url: str
    username: str
    password: str
    smtp_command: str

    def lines(self) -> list[tuple[str, str]]:
        """(what to do, the command or detail) pairs, printed as the demo's "Try next" hints."""
        return [
            ("Start the service on the demo's data (API, console, scheduler; Ctrl-C stops it):",
             self.command),
            ("Then open the console in a browser:", f"{self.url}/console/"),
            ("and sign in as the demo admin:",
             f"username {self.username}, password {self.password}"),
            ("The API and its OpenAPI documentation:", f"{self.url}/v1/docs"),
            ("Emails it sends go to the demo's SMTP server, which stopped with the demo; to "
             "catch them, run this first in another terminal:", self.smtp_command),
        ]  # fmt: skip


def make_admin(tidings: Tidings) -> str:
    """Add the demo admin to the demo's (fresh) store; returns the password made for it."""
    password = secrets.token_urlsafe(12)
    # Real time, not the demo's 2025 evening: the account is made now.
    access = AccessControl(tidings.config, tidings.store, system_clock)
    access.add_user(ADMIN, password, by="demo", display_name="Demo admin")
    access.grant(role="admin", username=ADMIN, by="demo")
    return password


def console_access(
    config: Config, config_path: Path, password: str, tidings_cmd: str, python_cmd: str
) -> ConsoleAccess:
    spec = config.serve
    smtp_port = getattr(config.channels.get("email"), "port", 8025)
    mail = config_path.parent / "mail"
    return ConsoleAccess(
        command=f"{tidings_cmd} serve --config {config_path}",
        url=spec.public_url,
        username=ADMIN,
        password=password,
        smtp_command=(
            f"{python_cmd} -m tidings.demo.smtp_server --port {smtp_port} --save-dir {mail}"
        ),
    )
