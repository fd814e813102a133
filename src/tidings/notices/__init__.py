"""Notices: a close's net changes routed by the rules (``routing``), filtered by people's
preferences (``preferences``, ``deferral``), addressed (``people``, ``addresses``), rendered
(``rendering``) and written to the outbox (``rows``), step by step in ``composer``."""
