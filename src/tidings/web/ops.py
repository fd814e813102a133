"""Operations: the root's redirect to the console, liveness, readiness and Prometheus metrics.

``/healthz`` says only that the process answers; ``/readyz`` that the store answers a read
and its schema is the newest (else 503 and why, naming no secret), for a load balancer to
send traffic only to an instance that can serve it; ``/metrics`` needs ``metrics.read``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tidings.access.roles import Permission, Principal
from tidings.web.api.common import BEARER, FORBIDDEN, UNAUTHENTICATED
from tidings.web.context import WebContext, context
from tidings.web.guard import Public, Requires
from tidings.web.metrics import exposition

log = logging.getLogger("tidings.web")

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ready", "reason": None},
                {"status": "unavailable", "reason": "the store did not answer a read"},
            ]
        }
    )

    status: Literal["ready", "unavailable"]
    reason: str | None = Field(default=None, description="Why not ready (never a secret).")


@router.get(
    "/",
    include_in_schema=False,
    dependencies=[Depends(Public("the root sends browsers on to the console"))],
)
def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)


@router.get(
    "/healthz",
    summary="Liveness: the process answers",
    response_model=Health,
    dependencies=[Depends(Public("liveness for load balancers and orchestrators"))],
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the store answers and its schema is current",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready, and why."}},
    dependencies=[Depends(Public("readiness for load balancers and orchestrators"))],
)
async def readyz(request: Request) -> Response:
    reason = await run_in_threadpool(_not_ready, context(request))
    if reason is None:
        return JSONResponse(Readiness(status="ready").model_dump())
    return JSONResponse(Readiness(status="unavailable", reason=reason).model_dump(), 503)


def _not_ready(ctx: WebContext) -> str | None:
    tidings = ctx.tidings
    if tidings.missing_store is not None:
        return "the store does not exist yet; start tidings serve with a writable [store] url"
    try:
        with tidings.store.read() as tx:
            tx.ledger.last_window_id()
        return tidings.store.schema_problem()
    except Exception as exc:  # any failure means "not ready"; the log has what it was
        log.warning("readiness: the store did not answer (%s)", type(exc).__name__)
        return "the store did not answer a read; the server's log says why"


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition."},
        **UNAUTHENTICATED,
        **FORBIDDEN,
    },
    dependencies=[Security(BEARER)],
)
async def metrics(
    request: Request,
    _: Annotated[Principal, Depends(Requires(Permission.METRICS_READ))],
) -> Response:
    body = await run_in_threadpool(exposition, context(request))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
