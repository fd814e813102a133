"""The staff console (``/console``): server-rendered pages, plain forms, no build step."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
