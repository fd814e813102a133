"""What the API's resources share: the problem document their errors are, and the error
responses each kind of guard can give (so the OpenAPI spec lists them)."""

from __future__ import annotations

from typing import Any

from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

# Only describes the credentials in the OpenAPI spec (the docs' "Authorize" button); the
# route's guard checks them.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (tdk_…), a recipient's inbox token (v1.…), or, for the Notify "
    "callback, the token set in GOV.UK Notify.",
)


class Problem(BaseModel):
    """An RFC 9457 problem document: what went wrong and what to do, never the values sent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Forbidden",
                    "status": 403,
                    "detail": "your roles (manager) do not allow events.push",
                }
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For 422: each invalid field's location and why."
    )


Responses = dict[int | str, dict[str, Any]]


def _problem(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }


UNAUTHENTICATED: Responses = {401: _problem("No valid API key or token was sent.")}
FORBIDDEN: Responses = {403: _problem("The key's roles do not allow this.")}
INVALID: Responses = {422: _problem("A parameter or the body is not valid (the fields are named).")}
GUARDED: Responses = {**UNAUTHENTICATED, **FORBIDDEN, **INVALID}
NOT_FOUND: Responses = {404: _problem("No such thing, or not one these credentials may see.")}
