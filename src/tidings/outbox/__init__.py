"""Outbox: notices written with the window close, delivered by the dispatcher."""
