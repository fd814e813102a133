"""The inbox API: a recipient's token sees that recipient's messages and nothing else; keys of
the recipient service read and mark any inbox; preferences read and change."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import event, lines
from tests.notify_setup import advance, dispatch
from tests.web.conftest import Web
from tidings.links import LinkClaim, LinkSigner
from tidings.web.guard import INBOX_TOKEN_SECONDS, issue_inbox_token

DAY1 = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)  # 18:00 in London
FAKE_NAME = "Zebedee Quuxworth-Pennyfeather"


def placement(key: str, trainee: str, site: str) -> dict[str, object]:
    record = {"traineeId": trainee, "site": site, "dateFrom": "2025-09-01"}
    return event(f"{key}-1", key, "upsert", 1, "2025-08-06T10:00:00+01:00", record)


def deliver(web: Web) -> dict[str, list[int]]:
    """Close two windows with placements for T1 (one each day) and T2 (the first day), and
    deliver them: T1 has two in-app messages, T2 one. Returns each recipient's message ids."""
    days = [
        [placement("P1", "T1", "York"), placement("P3", "T2", "Leeds")],
        [placement("P2", "T1", "Hull")],
    ]
    for day, placements in enumerate(days):
        web.tidings.ingest_lines(lines(*placements, origin=f"day{day}.jsonl"))
        closes = DAY1 + timedelta(days=day)
        advance(web.clock, closes + timedelta(minutes=1))
        web.tidings.close(closes)
        # Email and inbox for each recipient told.
        assert dispatch(web.tidings).delivered == 2 * len(placements)
    with web.tidings.store.read() as tx:
        messages = tx.inbox.all()
    ids: dict[str, list[int]] = {}
    for m in messages:
        ids.setdefault(m.recipient, []).append(m.id)
    assert {r: len(found) for r, found in ids.items()} == {"T1": 2, "T2": 1}
    return ids


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(web: Web, recipient: str, seconds: int = INBOX_TOKEN_SECONDS) -> str:
    return issue_inbox_token(web.app.state.ctx.signer, recipient, web.clock().timestamp(), seconds)


def test_a_recipients_token_sees_only_their_own_messages_and_cannot_touch_anothers(
    web: Web,
) -> None:
    ids = deliver(web)
    a = bearer(token_for(web, "T1"))

    own = web.client.get("/v1/recipients/T1/inbox", headers=a)
    assert own.status_code == 200
    body = own.json()
    assert {m["recipient"] for m in body["messages"]} == {"T1"}
    assert sorted(m["id"] for m in body["messages"]) == sorted(ids["T1"])
    assert body["unread"] == len(ids["T1"])
    assert "Leeds" not in own.text  # T2's placement is in T2's message only

    # T2's inbox does not exist for T1's token: its list, count and preferences are 404.
    for path in ("inbox", "inbox?include_archived=true", "inbox/unread-count", "preferences"):
        response = web.client.get(f"/v1/recipients/T2/{path}", headers=a)
        assert response.status_code == 404, path
        assert "Leeds" not in response.text
    # Nor can it mark T2's messages, through its own path or T2's.
    for message_id in ids["T2"]:
        for action in ("read", "archive"):
            own_path = f"/v1/recipients/T1/inbox/{message_id}/{action}"
            assert web.client.post(own_path, headers=a).status_code == 404
            their_path = f"/v1/recipients/T2/inbox/{message_id}/{action}"
            assert web.client.post(their_path, headers=a).status_code == 404
    refused = web.client.put(
        "/v1/recipients/T2/preferences",
        json={"category": "placements", "opt_out": ["email"]},
        headers=a,
    )
    assert refused.status_code == 404

    # T2's messages are as they were.
    b = web.client.get("/v1/recipients/T2/inbox", headers=bearer(token_for(web, "T2"))).json()
    assert [m["state"] for m in b["messages"]] == ["unread"]
    assert sorted(m["id"] for m in b["messages"]) == ids["T2"]
    assert {m["recipient"] for m in b["messages"]} == {"T2"}


def test_an_expired_or_tampered_token_is_401(web: Web) -> None:
    deliver(web)
    signer: LinkSigner = web.app.state.ctx.signer
    now = web.clock().timestamp()
    expired = issue_inbox_token(signer, "T1", now - 2 * INBOX_TOKEN_SECONDS, INBOX_TOKEN_SECONDS)
    good = token_for(web, "T1")
    version, payload, mac = good.split(".")
    other_payload = (
        base64.urlsafe_b64encode(json.dumps(["T2", str(int(now) + 600)]).encode())
        .rstrip(b"=")
        .decode()
    )
    flipped = mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB")
    someone_elses = LinkSigner(b"k" * 32).sign(LinkClaim("inbox", "T1", str(int(now) + 600)))
    wrong_purpose = signer.sign(LinkClaim("preferences", "T1", str(int(now) + 600)))
    for token in (
        expired,
        f"{version}.{payload}.{flipped}",
        f"{version}.{other_payload}.{mac}",
        someone_elses,
        wrong_purpose,
        "v1.garbage",
    ):
        for path in ("/v1/recipients/T1/inbox", "/v1/recipients/T2/inbox"):
            response = web.client.get(path, headers=bearer(token))
            assert response.status_code == 401, (token, path)
            assert response.headers["www-authenticate"] == "Bearer"
    # And the good one still works, until it expires.
    assert web.client.get("/v1/recipients/T1/inbox", headers=bearer(good)).status_code == 200
    advance(web.clock, web.clock() + timedelta(seconds=INBOX_TOKEN_SECONDS + 1))
    assert web.client.get("/v1/recipients/T1/inbox", headers=bearer(good)).status_code == 401


def test_marking_read_and_archived_changes_the_list_and_the_unread_count(web: Web) -> None:
    ids = deliver(web)
    a = bearer(token_for(web, "T1"))
    first, second = sorted(ids["T1"])

    def unread() -> int:
        response = web.client.get("/v1/recipients/T1/inbox/unread-count", headers=a)
        assert response.status_code == 200
        return int(response.json()["unread"])

    assert unread() == 2
    marked = web.client.post(f"/v1/recipients/T1/inbox/{first}/read", headers=a)
    assert marked.json() == {"id": first, "state": "read"}
    assert unread() == 1
    assert (
        web.client.post(f"/v1/recipients/T1/inbox/{second}/archive", headers=a).status_code == 200
    )
    assert unread() == 0
    shown = web.client.get("/v1/recipients/T1/inbox", headers=a).json()
    assert [(m["id"], m["state"]) for m in shown["messages"]] == [(first, "read")]
    everything = web.client.get(
        "/v1/recipients/T1/inbox", params={"include_archived": True}, headers=a
    )
    assert sorted((m["id"], m["state"]) for m in everything.json()["messages"]) == [
        (first, "read"),
        (second, "archived"),
    ]
    assert web.client.post("/v1/recipients/T1/inbox/999999/read", headers=a).status_code == 404
    assert web.client.post("/v1/recipients/T1/inbox/0/read", headers=a).status_code == 422


def test_the_recipient_service_reads_any_inbox_and_hands_out_tokens_for_one(web: Web) -> None:
    ids = deliver(web)
    service = web.auth("recipient_service")
    for recipient in ("T1", "T2"):
        listed = web.client.get(f"/v1/recipients/{recipient}/inbox", headers=service).json()
        assert sorted(m["id"] for m in listed["messages"]) == sorted(ids[recipient])

    made = web.client.post("/v1/recipients/T1/inbox-token", headers=service)
    assert made.status_code == 200
    token = made.json()["token"]
    expires = datetime.fromisoformat(made.json()["expires"])
    assert expires == web.clock() + timedelta(seconds=INBOX_TOKEN_SECONDS)
    assert web.client.get("/v1/recipients/T1/inbox", headers=bearer(token)).status_code == 200
    assert web.client.get("/v1/recipients/T2/inbox", headers=bearer(token)).status_code == 404
    # A recipient's token cannot make tokens, not even for itself.
    assert (
        web.client.post("/v1/recipients/T1/inbox-token", headers=bearer(token)).status_code == 403
    )
    # Staff roles do not read inboxes through the API.
    assert web.client.get("/v1/recipients/T1/inbox", headers=web.auth("admin")).status_code == 403
    made_for = [a.target for a in web.access.audit_log() if a.action == "inbox.token"]
    assert made_for == ["person:T1"]


def test_preferences_are_read_and_changed_for_one_category(web: Web) -> None:
    a = bearer(token_for(web, "T1"))
    shown = web.client.get("/v1/recipients/T1/preferences", headers=a)
    assert shown.status_code == 200
    categories = {c["category"]: c for c in shown.json()["categories"]}
    assert categories["placements"] == {
        "category": "placements",
        "label": "Placements",
        "critical": False,
        "frequency": "daily",
        "frequency_chosen": False,
        "opted_out": [],
    }
    assert categories["details"]["critical"] is True
    assert shown.json()["channels"] == ["email", "inbox"]

    changed = web.client.put(
        "/v1/recipients/T1/preferences",
        json={"category": "placements", "opt_out": ["email"], "frequency": "weekly"},
        headers=a,
    )
    assert changed.status_code == 200, changed.text
    placements = next(c for c in changed.json()["categories"] if c["category"] == "placements")
    assert (placements["opted_out"], placements["frequency"], placements["frequency_chosen"]) == (
        ["email"],
        "weekly",
        True,
    )
    back = web.client.put(
        "/v1/recipients/T1/preferences",
        json={"category": "placements", "opt_in": ["email"]},
        headers=a,
    ).json()
    placements = next(c for c in back["categories"] if c["category"] == "placements")
    assert (placements["opted_out"], placements["frequency"]) == ([], "weekly")
    # T2's preferences are untouched.
    t2 = web.client.get(
        "/v1/recipients/T2/preferences", headers=web.auth("recipient_service")
    ).json()
    assert all(c["opted_out"] == [] and not c["frequency_chosen"] for c in t2["categories"])


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_refused_preference_change_says_why_without_echoing_what_was_sent(web: Web) -> None:
    a = bearer(token_for(web, "T1"))
    cases = [
        ({"category": FAKE_NAME, "opt_out": ["email"]}, "category"),
        ({"category": "placements", "opt_out": [FAKE_NAME]}, "opt_out"),
        ({"category": "placements", "opt_in": [FAKE_NAME]}, "opt_in"),
        ({"category": "details", "opt_out": ["email"]}, "critical"),
        ({"category": "details", "frequency": "weekly"}, "critical"),
        ({"category": "placements", "frequency": FAKE_NAME}, "frequency"),
        ({"category": "placements", "surname": FAKE_NAME}, "surname"),
        ({"category": "placements", "opt_out": ["email"], "opt_in": ["email"]}, "same channel"),
        ({"opt_out": FAKE_NAME}, "category"),
    ]
    for body, named in cases:
        response = web.client.put("/v1/recipients/T1/preferences", json=body, headers=a)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert named in response.json()["detail"], (body, response.text)
        assert FAKE_NAME not in response.text, body
    malformed = web.client.put(
        "/v1/recipients/T1/preferences",
        content=b'{"category": "' + FAKE_NAME.encode() + b'",',
        headers={**a, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    assert FAKE_NAME not in malformed.text
    unchanged = web.client.get("/v1/recipients/T1/preferences", headers=a).json()
    assert all(c["opted_out"] == [] for c in unchanged["categories"])
