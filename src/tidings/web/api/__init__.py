"""The versioned API (``/v1``): one module per resource, each with its own router."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
