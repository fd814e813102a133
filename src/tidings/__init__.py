"""Tidings: tell people what actually changed in the records kept about them.

The data flow, one direction, one module or folder per stage::

    sources/ -> ingest/ -> ledger/ -> window/ -> rules -> notices/ -> outbox/ -> channels/
    (native,    (validate,  (fold, net   (when; the   (CEL)    (route, prefs,  (dispatch,  (smtp,
     DMS,        dedup,      change:     close's               address,        pacing,     notify,
     Debezium)   write)      pure)       steps)                render, rows)   attention)  webhook,
                                                                                           inapp)

``store/`` is where everything is kept, behind named operations (SQLite, PostgreSQL, memory);
``api.py`` is the Python API and ``cli/`` the command line on top of it.
"""

__version__ = "0.1.0"
