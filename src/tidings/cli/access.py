"""``tidings users`` and ``tidings keys``: staff accounts, API keys and their grants."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app
