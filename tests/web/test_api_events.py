"""POST /v1/events: a JSON array or NDJSON of events, any input format, a result per item in
request order; bad items quarantined (record, field, reason) while the rest are accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import FakeClock
from tests.helpers import event
from tests.web.conftest import FAST_HASHER, SECRET_ENV, Web, web_config
from tidings.access.control import AccessControl
from tidings.api import Tidings
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.web.app import create_app

FAKE_NAME = "Zebedee Quuxworth-Pennyfeather"
DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London


def placement(
    key: str, trainee: str, seq: int, event_id: str | None = None, **data: Any
) -> dict[str, Any]:
    record = {"traineeId": trainee, "site": "Leeds", "dateFrom": "2025-09-01", **data}
    return event(
        event_id or f"{key}-{seq}", key, "upsert", seq, "2025-08-06T10:00:00+01:00", record
    )


DMS_CONTROL = {
    "data": {},
    "metadata": {
        "timestamp": "2025-08-06T09:00:00Z",
        "record-type": "control",
        "operation": "create-table",
        "schema-name": "tcs",
        "table-name": "Placement",
    },
}
DEBEZIUM = {
    "payload": {
        "before": None,
        "after": {"id": "D1", "traineeId": "T2", "site": "Hull"},
        "op": "c",
        "ts_ms": 1754470800000,
        "source": {"name": "tcs", "table": "Placement", "lsn": 5000, "ts_ms": 1754470800000},
    }
}


def push(web: Web, body: Any, *, token: str | None = None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token or web.key('ingest', name='hr-feed')}"}
    return web.client.post("/v1/events", json=body, headers=headers, **kwargs)


def test_each_item_gets_its_result_in_order_and_a_bad_one_does_not_hold_back_the_rest(
    web: Web,
) -> None:
    token = web.key("ingest", name="hr-feed")
    body = [
        placement("P1", "T1", 1),
        placement("P1", "T1", 1),  # the same event again in the same batch
        placement("P2", "T1", 1, dateFrom=FAKE_NAME),  # not a date
        "not an object",
        DMS_CONTROL,  # not an event: skipped
        DEBEZIUM,
    ]
    response = push(web, body, token=token)
    assert response.status_code == 200, response.text
    result = response.json()
    statuses = [(r["index"], r["status"], r["id"]) for r in result["results"]]
    assert statuses == [
        (0, "accepted", "P1-1"),
        (1, "duplicate", "P1-1"),
        (2, "quarantined", None),
        (3, "quarantined", None),
        (4, "skipped", None),
        (5, "accepted", statuses[5][2]),
    ]
    assert statuses[5][2]  # Debezium events get an id made from their position
    assert result["totals"] == {
        "items": 6,
        "accepted": 2,
        "duplicate": 1,
        "stale": 0,
        "quarantined": 2,
        "skipped": 1,
        "skipped_by_reason": {"control record": 1},
    }
    bad_date = result["results"][2]["error"]
    assert bad_date["record"] == "P2-1"
    assert bad_date["field"] == "data.dateFrom"
    assert bad_date["reason"]
    assert result["results"][3]["error"]["reason"] == "expected a JSON object on each line"
    assert result["results"][0]["error"] is None
    # The values that were wrong are in the quarantine, never in the answer.
    assert FAKE_NAME not in response.text
    # The quarantine holds both bad items, named by the key and their position, not by data.
    entries = {e.id: e for e in web.tidings.quarantined()}
    ids = [result["results"][i]["quarantine_id"] for i in (2, 3)]
    assert sorted(ids) == sorted(entries)
    assert [(entries[i].origin, entries[i].line) for i in ids] == [
        ("api:hr-feed", 3),
        ("api:hr-feed", 4),
    ]
    assert entries[ids[0]].field == "data.dateFrom"
    assert web.tidings.pending_count() == 2


def test_pushing_the_same_batch_again_finds_duplicates_and_the_same_quarantine_entries(
    web: Web,
) -> None:
    token = web.key("ingest", name="hr-feed")
    body = [placement("P1", "T1", 1), placement("P2", "T1", 1, dateFrom="soon")]
    first = push(web, body, token=token).json()
    again = push(web, body, token=token).json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "quarantined"]
    assert again["results"][1]["quarantine_id"] == first["results"][1]["quarantine_id"]
    assert len(web.tidings.quarantined()) == 1


def test_an_event_older_than_the_closed_baseline_is_stale(web: Web) -> None:
    token = web.key("ingest")
    assert push(web, [placement("P1", "T1", 2)], token=token).status_code == 200
    web.clock.now = DAY1 + timedelta(minutes=1)
    web.tidings.close(DAY1)
    late = push(web, [placement("P1", "T1", 1, event_id="P1-late")], token=token).json()
    assert [(r["status"], r["id"]) for r in late["results"]] == [("stale", "P1-late")]
    assert late["totals"]["stale"] == 1


def test_ndjson_lines_are_items_and_a_blank_line_is_skipped(web: Web) -> None:
    lines = [orjson.dumps(placement("P1", "T1", 1)), b"", orjson.dumps(placement("P2", "T2", 1))]
    response = web.client.post(
        "/v1/events",
        content=b"\r\n".join(lines) + b"\n",
        headers={**web.auth("ingest"), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "skipped", "accepted"]


def test_the_format_parameter_reads_items_in_that_format_only(web: Web) -> None:
    token = web.key("ingest")
    as_dms = push(web, [placement("P1", "T1", 1)], token=token, params={"format": "dms"}).json()
    assert as_dms["results"][0]["status"] == "quarantined"
    assert as_dms["results"][0]["error"]["field"] is not None
    as_debezium = push(web, [DEBEZIUM], token=token, params={"format": "debezium"}).json()
    assert as_debezium["results"][0]["status"] == "accepted"
    unknown = push(web, [DEBEZIUM], token=token, params={"format": "avro"})
    assert unknown.status_code == 422


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_bodies_that_are_not_batches_of_events_are_refused_saying_what_to_send(
    web: Web,
) -> None:
    headers = web.auth("ingest")
    cases = [
        ("text/plain", b"[]", 415),
        (None, b"[]", 415),
        ("application/json", b"", 400),
        ("application/json", b"  \n", 400),
        ("application/json", b"[]", 400),
        ("application/json", b'{"name": "' + FAKE_NAME.encode() + b'"}', 400),
        ("application/json", b'[{"name": "' + FAKE_NAME.encode() + b'"', 400),
        ("application/x-ndjson", b"\n", 400),
    ]
    for content_type, body, status in cases:
        sent = dict(headers)
        if content_type is not None:
            sent["Content-Type"] = content_type
        response = web.client.post("/v1/events", content=body, headers=sent)
        assert response.status_code == status, (content_type, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == status
        assert FAKE_NAME not in response.text
        assert "send" in problem["detail"] or "events" in problem["detail"]
    assert web.tidings.pending_count() == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_more_items_than_max_items_is_413_and_nothing_is_stored(
    store_url: str, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    tidings = Tidings(
        web_config(store_url, smtp.port, serve={"max_items": 3}), clock=clock, environ=SECRET_ENV
    )
    access = AccessControl(tidings.config, tidings.store, clock, hasher=FAST_HASHER)
    token = access.create_key("feed", ["ingest"], by="test").token
    app = create_app(tidings, access=access, environ=SECRET_ENV)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        four = [placement(f"P{n}", "T1", 1) for n in range(4)]
        response = client.post("/v1/events", json=four, headers=headers)
        assert response.status_code == 413
        assert "max_items (3)" in response.json()["detail"]
        ndjson = b"\n".join(orjson.dumps(e) for e in four)
        response = client.post(
            "/v1/events",
            content=ndjson,
            headers={**headers, "Content-Type": "application/x-ndjson"},
        )
        assert response.status_code == 413
        assert client.post("/v1/events", json=four[:3], headers=headers).status_code == 200
    assert tidings.pending_count() == 3
    tidings.store.dispose()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_only_a_key_allowed_to_push_may_push(web: Web) -> None:
    body = [placement("P1", "T1", 1)]
    assert web.client.post("/v1/events", json=body).status_code == 401
    assert push(web, body, token=web.key("admin")).status_code == 403
    assert push(web, body, token=web.key("recipient_service")).status_code == 403
    assert web.tidings.pending_count() == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_validation_error_names_the_parameter_but_never_echoes_its_value(web: Web) -> None:
    response = push(web, [placement("P1", "T1", 1)], params={"format": FAKE_NAME})
    assert response.status_code == 422
    assert "format" in response.json()["detail"]
    assert FAKE_NAME not in response.text
