"""Staff reads over the API: the preview of the next close and a person's notices and
preferences; a manager sees only people in their scope (others are 404), and every read of a
person's data is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import event, lines
from tests.notify_setup import advance, dispatch
from tests.web.conftest import Web

DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London


def placement(key: str, trainee: str, programme: str) -> dict[str, object]:
    record = {
        "traineeId": trainee,
        "site": "York",
        "dateFrom": "2025-09-01",
        "programme": programme,
    }
    return event(f"{key}-1", key, "upsert", 1, "2025-08-06T10:00:00+01:00", record)


def ingest(web: Web) -> None:
    """T1's placement is in programme North, T2's in South."""
    web.tidings.ingest_lines(lines(placement("P1", "T1", "North"), placement("P2", "T2", "South")))
    advance(web.clock, DAY1 + timedelta(minutes=1))


def views(web: Web, target: str) -> list[tuple[str, str, object]]:
    return [
        (a.actor, a.action, a.detail.get("what"))
        for a in web.access.audit_log(target=target)
        if a.action == "person.view"
    ]


def test_the_preview_shows_what_the_next_close_would_send_and_changes_nothing(web: Web) -> None:
    ingest(web)
    response = web.client.get("/v1/preview", headers=web.auth("support"))
    assert response.status_code == 200, response.text
    shown = response.json()
    assert datetime.fromisoformat(shown["closes_at"]) == DAY1
    assert shown["scoped"] is False
    assert [d["recipient"] for d in shown["digests"]] == ["T1", "T2"]
    change = shown["digests"][0]["changes"][0]
    assert (change["key"], change["kind"]) == ("P1", "created")
    assert change["fields"]["site"] == {"before": None, "after": "York"}
    assert web.tidings.pending_count() == 2  # nothing was closed
    assert [a.action for a in web.access.audit_log() if a.target == "window:next"] == [
        "window.preview"
    ]


def test_a_managers_preview_holds_only_the_people_in_their_scope(web: Web) -> None:
    ingest(web)
    north = web.client.get("/v1/preview", headers=web.auth("manager", scope="programme=North"))
    assert north.status_code == 200
    assert north.json()["scoped"] is True
    assert [d["recipient"] for d in north.json()["digests"]] == ["T1"]
    assert "T2" not in north.text
    assert "P2" not in north.text
    south = web.client.get("/v1/preview", headers=web.auth("manager", scope="programme=South"))
    assert [d["recipient"] for d in south.json()["digests"]] == ["T2"]
    nowhere = web.client.get("/v1/preview", headers=web.auth("manager", scope="programme=East"))
    assert nowhere.json()["digests"] == []


def test_a_persons_notices_are_read_with_their_outcomes_and_the_read_is_audited(
    web: Web,
) -> None:
    ingest(web)
    advance(web.clock, DAY1 + timedelta(minutes=1))
    web.tidings.close(DAY1)
    dispatch(web.tidings)
    token = web.key("support", name="helpdesk")
    response = web.client.get("/v1/people/T1/notices", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    notices = response.json()
    assert sorted((n["channel"], n["status"], n["outcome"]) for n in notices) == [
        ("email", "delivered", "delivered"),
        ("inbox", "delivered", "delivered"),
    ]
    email = next(n for n in notices if n["channel"] == "email")
    assert email["address"] == "t1@nhs.example"
    assert email["attempts"] == 1
    assert {n["recipient"] for n in notices} == {"T1"}
    assert views(web, "person:T1") == [("key:helpdesk", "person.view", "notices")]

    one = web.client.get(
        "/v1/people/T1/notices", params={"limit": 1}, headers={"Authorization": f"Bearer {token}"}
    )
    assert len(one.json()) == 1
    too_many = web.client.get(
        "/v1/people/T1/notices", params={"limit": 5000}, headers=web.auth("support")
    )
    assert too_many.status_code == 422


def test_a_manager_reads_people_in_scope_and_anyone_else_is_404_unaudited(web: Web) -> None:
    ingest(web)
    advance(web.clock, DAY1 + timedelta(minutes=1))
    web.tidings.close(DAY1)
    manager = web.auth("manager", scope="programme=North")
    for what in ("notices", "preferences"):
        mine = web.client.get(f"/v1/people/T1/{what}", headers=manager)
        assert mine.status_code == 200, (what, mine.text)
        theirs = web.client.get(f"/v1/people/T2/{what}", headers=manager)
        assert theirs.status_code == 404, what
        assert "t2@" not in theirs.text
        nobody = web.client.get(f"/v1/people/NOBODY/{what}", headers=manager)
        assert nobody.status_code == 404
        assert nobody.json()["detail"] == theirs.json()["detail"]  # cannot tell them apart
    assert sorted(str(v[2]) for v in views(web, "person:T1")) == ["notices", "preferences"]
    assert views(web, "person:T2") == []


def test_a_persons_preferences_are_read_by_staff_with_the_defaults(web: Web) -> None:
    from tidings.notices import preferences

    preferences.change(
        web.tidings.store,
        web.tidings.config,
        "T1",
        "placements",
        now=web.clock(),
        opt_out=["email"],
    )
    response = web.client.get("/v1/people/T1/preferences", headers=web.auth("auditor"))
    assert response.status_code == 200
    categories = {c["category"]: c for c in response.json()["categories"]}
    assert categories["placements"]["opted_out"] == ["email"]
    assert categories["details"]["opted_out"] == []
    assert views(web, "person:T1")[0][1:] == ("person.view", "preferences")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_roles_without_people_read_are_refused(web: Web) -> None:
    for role in ("ingest", "recipient_service"):
        for path in ("/v1/people/T1/notices", "/v1/people/T1/preferences", "/v1/preview"):
            assert web.client.get(path, headers=web.auth(role)).status_code == 403, (role, path)
    assert web.client.get("/v1/people/T1/notices").status_code == 401
    assert views(web, "person:T1") == []
