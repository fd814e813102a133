"""PostgreSQL logical replication as a live source (``[sources.postgres.NAME]``).

``capture``: set-up, the consistent snapshot and the stream (read its docstring for why a
crash at any point loses nothing); ``pgoutput``: a pure decoder of the plugin's messages;
``changes``: pure assembly of messages and snapshot rows into native change events;
``catalog``: what the source database says about tables, publication and slot.
"""

from __future__ import annotations

from tidings.capture.postgres.capture import PostgresCapture

__all__ = ["PostgresCapture"]
