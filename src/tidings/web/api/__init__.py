"""The versioned API (``/v1``): one module per resource, each with its own router.

events      POST /events: push change events, a result per item
preview     GET /preview: what the next window close would send
people      GET /people/{recipient}/notices | preferences: staff reads, audited
recipients  /recipients/{recipient}/inbox... | preferences | inbox-token: the inbox API
notify      POST /callbacks/notify: GOV.UK Notify delivery-status callbacks
"""

from __future__ import annotations

from fastapi import APIRouter, Security

from tidings.web.api import events, notify, people, preview, recipients
from tidings.web.api.common import BEARER

router = APIRouter(dependencies=[Security(BEARER)])
for _resource in (events, preview, people, recipients, notify):
    router.include_router(_resource.router)
