"""Notices: net changes routed by rules, addressed, rendered and written to the outbox."""
