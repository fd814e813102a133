"""``tidings serve``: the HTTP API, the console, the scheduler and the dispatcher."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app  # filled in with the serve command
