"""Outbox: notices written with the window close, delivered by the dispatcher through the
channels (``channel`` is what a channel must offer), with pacing and attention."""
