"""Ingest: validate input lines (``validate``, in worker processes for large inputs:
``parallel``), then store them (``write``)."""

from tidings.ingest.validate import Line, Rejection, Validated, Validator, read_lines
from tidings.ingest.write import Ingestor

__all__ = ["Ingestor", "Line", "Rejection", "Validated", "Validator", "read_lines"]
