"""What every request handler reaches: the app's ``Tidings``, access control and signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request

from tidings.access.control import AccessControl
from tidings.api import Tidings
from tidings.config import Config
from tidings.links import LinkSigner


@dataclass(frozen=True)
class WebContext:
    tidings: Tidings
    access: AccessControl
    # Signs recipients' inbox tokens (purpose "inbox"); the serve secret, not the links one.
    signer: LinkSigner = field(repr=False)
    # The bearer token GOV.UK Notify sends with its delivery-status callbacks (None: refused).
    notify_token: str | None = field(default=None, repr=False)
    # Shared by the API and the console, for figures the store does not hold (close
    # durations); see ``web.metrics``.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.tidings.config

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.tidings.clock


def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx
