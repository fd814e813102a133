"""Tidings: tell people what actually changed in the records kept about them.

The data flow, one direction, one module or folder per stage::

    sources/  ->  ingest.py  ->  ledger/  ->  window/  ->  digests
    (native,      (validate,     (baseline,    (when a window closes; the close
     DMS,          dedup,         fold,         itself: fold, diff, address,
     Debezium)     quarantine)    net change)   persist in one transaction)

``store/`` is the database adapter (SQLite or PostgreSQL), ``api.py`` the Python API and
``cli.py`` the command line on top of it.
"""

__version__ = "0.1.0"
