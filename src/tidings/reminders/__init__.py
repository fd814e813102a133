"""Reminders: notice in good time before a date held in a record's current state.

Ingest keeps an index of the fields reminders and relations need (``ingest.tracking``).
``due`` (pure) works out the moments a reminder falls due, in the configured timezone;
``conditions`` compiles each reminder's CEL condition; ``planner`` asks the store, decides
what is due at a time, and writes what is sent to the outbox with its decisions.
"""
