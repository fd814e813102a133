"""Tidings: tell people what actually changed in the records kept about them.

Ingest change events, close a window to fold them into net changes, and deliver one digest
per person: email, SMS, the in-app inbox, webhooks. Every command takes --config (else
$TIDINGS_CONFIG, else ./tidings.toml). Exit codes: 0 done; 1 done, but something needs a
person (see `tidings attention`); 2 the command could not run.
"""

from __future__ import annotations

import sys

import typer

from tidings.cli import attention, delivery, quarantine, records, reminders, reports
from tidings.errors import TidingsError
from tidings.terminal import err, styled

# Help texts are printed as written: "[audit] retention_days" is a config key, not markup.
app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, rich_markup_mode=None)
# The command groups, registered explicitly, in the order the data flows.
for group in (records, quarantine, delivery, reminders, reports, attention):
    group.register(app)


def main() -> None:
    try:
        app()
    except TidingsError as exc:
        err.print(styled(("error:", "bold red"), " ", str(exc)))
        sys.exit(2)
