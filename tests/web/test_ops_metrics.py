"""Operations: the root's redirect, liveness, readiness (the store answers and its schema is
current), and Prometheus metrics read from the store at scrape time."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import event, lines
from tests.notify_setup import advance, dispatch
from tests.web.conftest import FAST_HASHER, SECRET_ENV, Web
from tidings.api import Tidings
from tidings.web.app import create_app
from tidings.web.metrics import CloseTimings, close_timings

DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(web: Web, headers: dict[str, str]) -> Samples:
    response = web.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_root_sends_browsers_to_the_console(web: Web) -> None:
    response = web.client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"


def test_liveness_and_readiness_need_no_credentials(web: Web) -> None:
    assert web.client.get("/healthz").json() == {"status": "ok"}
    ready = web.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "reason": None}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_readiness_is_503_while_the_schema_is_behind_and_names_no_path_or_secret(
    web: Web, store_url: str
) -> None:
    path = store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        (current,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        db.execute("UPDATE alembic_version SET version_num = '0006'")
    response = web.client.get("/readyz")
    assert response.status_code == 503
    reason = response.json()["reason"]
    assert "0006" in reason
    assert current in reason
    assert "migrate" in reason
    assert path not in response.text
    assert SECRET_ENV["TIDINGS_SECRET"] not in response.text
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (current,))
    assert web.client.get("/readyz").status_code == 200


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_readiness_is_503_when_the_store_does_not_answer(web: Web, store_url: str) -> None:
    path = Path(store_url.removeprefix("sqlite:///"))
    web.tidings.store.dispose()
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    path.write_bytes(b"this is not a database, and never was one" * 100)
    response = web.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "did not answer" in response.json()["reason"]
    assert str(path) not in response.text
    assert web.client.get("/healthz").status_code == 200  # alive, just not ready


def test_metrics_need_metrics_read(web: Web) -> None:
    assert web.client.get("/metrics").status_code == 401
    assert web.client.get("/metrics", headers=web.auth("ingest")).status_code == 403
    manager = web.auth("manager", scope="programme=North")
    assert web.client.get("/metrics", headers=manager).status_code == 403
    for role in ("support", "auditor", "admin"):
        assert web.client.get("/metrics", headers=web.auth(role)).status_code == 200


def test_metrics_follow_an_ingest_a_close_and_a_dispatch(web: Web) -> None:
    headers = web.auth("auditor")
    before = scrape(web, headers)
    booted = value(before, "tidings_events_ingested_total")
    assert booted == 3  # the three people loaded by the fixture
    assert value(before, "tidings_events_quarantined_total") == 0
    assert value(before, "tidings_outbox_depth") == 0
    assert value(before, "tidings_window_close_duration_seconds_count") == 0

    record = {"traineeId": "T1", "site": "York", "dateFrom": "2025-09-01"}
    web.tidings.ingest_lines(
        lines(
            event("P1-1", "P1", "upsert", 1, "2025-08-06T10:00:00+01:00", record),
            event(
                "P2-1",
                "P2",
                "upsert",
                1,
                "2025-08-06T10:00:00+01:00",
                {**record, "traineeId": "T2"},
            ),
            '{"id": "broken"',
        )
    )
    ingested = scrape(web, headers)
    assert value(ingested, "tidings_events_ingested_total") == booted + 2
    assert value(ingested, "tidings_events_quarantined_total") == 1
    changes_before = value(ingested, "tidings_net_changes_total")

    advance(web.clock, DAY1 + timedelta(minutes=1))
    web.tidings.close(DAY1)
    close_timings(web.app.state.ctx).observe(0.3)
    advance(web.clock, DAY1 + timedelta(minutes=6))
    closed = scrape(web, headers)
    assert value(closed, "tidings_net_changes_total") == changes_before + 2
    assert value(closed, "tidings_outbox_depth") == 4  # email and inbox for T1 and T2
    for channel in ("email", "inbox"):
        assert value(closed, "tidings_notices_total", channel=channel, outcome="pending") == 2
    assert 290 <= value(closed, "tidings_outbox_oldest_due_age_seconds") <= 360
    assert value(closed, "tidings_window_close_duration_seconds_count") == 1
    assert value(closed, "tidings_window_close_duration_seconds_sum") == pytest.approx(0.3)
    assert value(closed, "tidings_window_close_duration_seconds_bucket", le="0.25") == 0
    assert value(closed, "tidings_window_close_duration_seconds_bucket", le="0.5") == 1
    assert value(closed, "tidings_window_close_duration_seconds_bucket", le="+Inf") == 1

    dispatch(web.tidings)
    sent = scrape(web, headers)
    assert value(sent, "tidings_outbox_depth") == 0
    assert value(sent, "tidings_outbox_oldest_due_age_seconds") == 0
    for channel in ("email", "inbox"):
        assert value(sent, "tidings_notices_total", channel=channel, outcome="delivered") == 2
        assert value(sent, "tidings_notices_total", channel=channel, outcome="pending") == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_each_app_has_its_own_close_timings(web: Web) -> None:
    other = create_app(web.tidings, access=web.access, environ=SECRET_ENV)
    close_timings(web.app.state.ctx).observe(1.0)
    assert close_timings(web.app.state.ctx) is close_timings(web.app.state.ctx)
    assert close_timings(other.state.ctx).snapshot().count == 0
    headers = web.auth("admin")
    with TestClient(other) as client:
        text = client.get("/metrics", headers=headers).text
    assert "tidings_window_close_duration_seconds_count 0.0" in text
    assert value(scrape(web, headers), "tidings_window_close_duration_seconds_count") == 1


def test_close_timings_count_every_observation_from_many_threads() -> None:
    timings = CloseTimings(buckets=(1.0, 10.0))

    def observe() -> None:
        for n in range(1000):
            timings.observe(0.5 if n % 2 else 5.0)

    threads = [threading.Thread(target=observe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = timings.snapshot()
    assert snap.count == 8000
    assert snap.buckets == ((1.0, 4000), (10.0, 8000))
    assert snap.total == pytest.approx(8 * 500 * 5.5)
    assert snap.last in (0.5, 5.0)


def test_metrics_read_an_empty_store(tmp_path: Path) -> None:
    from tests.web.conftest import web_config

    tidings = Tidings(web_config(f"sqlite:///{tmp_path / 'empty.db'}", 1))
    from tidings.access.control import AccessControl

    access = AccessControl(tidings.config, tidings.store, tidings.clock, hasher=FAST_HASHER)
    token = access.create_key("prometheus", ["auditor"], by="test").token
    with TestClient(create_app(tidings, access=access, environ=SECRET_ENV)) as client:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "tidings_events_ingested_total 0.0" in response.text
    assert "tidings_outbox_oldest_due_age_seconds 0.0" in response.text
    tidings.store.dispose()
