"""Schemathesis against the app's own OpenAPI spec: every operation, called with generated
parameters and bodies (valid and not), never answers with a server error.

Each operation is called with credentials that pass its guard (a key holding every role that
applies, or Notify's callback token), so the generated data reaches the handlers instead of
stopping at 401 / 403. The store holds people, notices and in-app messages first, so reads
find something. Derandomized and capped, to stay well under a minute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from tests.helpers import event, lines
from tests.notify_setup import advance, dispatch
from tests.web.conftest import SECRET_ENV, Web

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)]

DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London
EXAMPLES = 25


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: schemathesis.SerializationContext, value: object) -> bytes:
    # Generated NDJSON bodies are strings (the spec's schema); send them as they are.
    return value.encode() if isinstance(value, str) else str(value).encode()


def populate(web: Web) -> None:
    record = {"traineeId": "T1", "site": "York", "dateFrom": "2025-09-01", "programme": "North"}
    web.tidings.ingest_lines(
        lines(event("P1-1", "P1", "upsert", 1, "2025-08-06T10:00:00+01:00", record))
    )
    advance(web.clock, DAY1 + timedelta(minutes=1))
    web.tidings.close(DAY1)
    dispatch(web.tidings)


def exercise(operation: APIOperation, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Case) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error])

    call()


def test_no_operation_answers_with_a_server_error(web: Web) -> None:
    populate(web)
    key = web.key("admin", "ingest", "recipient_service", name="everything")
    staff = {"Authorization": f"Bearer {key}"}
    notify = {"Authorization": f"Bearer {SECRET_ENV['TIDINGS_NOTIFY_CALLBACK_TOKEN']}"}
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", web.app)
    called: list[str] = []
    for found in schema.get_all_operations():
        assert isinstance(found, Ok), found
        operation = found.ok()
        if operation.path.startswith("/console"):
            continue  # pages for browsers (a session and CSRF): the browser tests drive them
        headers = notify if operation.path == "/v1/callbacks/notify" else staff
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                exercise(operation, mode, headers)
            except Unsatisfiable:
                # Nothing can be invalid in an operation without parameters or body.
                assert mode is GenerationMode.NEGATIVE, operation.label
        called.append(f"{operation.method.upper()} {operation.path}")
    # Every operation of the API and the operational endpoints was exercised.
    assert {
        "POST /v1/events",
        "GET /v1/preview",
        "GET /v1/people/{recipient}/notices",
        "GET /v1/people/{recipient}/preferences",
        "GET /v1/recipients/{recipient}/inbox",
        "GET /v1/recipients/{recipient}/inbox/unread-count",
        "POST /v1/recipients/{recipient}/inbox/{message_id}/read",
        "POST /v1/recipients/{recipient}/inbox/{message_id}/archive",
        "POST /v1/recipients/{recipient}/inbox-token",
        "GET /v1/recipients/{recipient}/preferences",
        "PUT /v1/recipients/{recipient}/preferences",
        "POST /v1/callbacks/notify",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    } <= set(called)
