"""The staff console's pages through the ASGI app, on every store: each page opens for a role
that may see it and is refused to one that may not; signing in and out (with login CSRF and
lockout); form posts need their CSRF token; a manager sees only their scope; views and actions
are audited; and the attention page's actions resolve what they act on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.browser.region import BOUNCING, FIRST_CLOSE, REPORTS, with_history
from tests.conftest import FakeClock
from tests.helpers import event, lines
from tests.notify_setup import advance, bootstrap, dispatch
from tests.web.conftest import BOOT_PEOPLE, FAST_HASHER, PASSWORD, SECRET_ENV, Web, web_config
from tidings.access.control import AccessControl
from tidings.access.roles import ROLE_PERMISSIONS, Permission
from tidings.api import Tidings
from tidings.demo.smtp_server import LocalSmtpServer
from tidings.outbox import attention as outbox
from tidings.templates.sample import SAMPLE_RECIPIENT_NAME
from tidings.web.app import create_app
from tidings.web.console.render import NAV
from tidings.web.guard import session_cookie_name

P = Permission


@pytest.fixture
def region(web: Web, smtp: LocalSmtpServer) -> Web:
    """The web fixture with a history: a closed window dispatched (T2's address bounced, T3
    has none), a quarantined line, and edits waiting for tonight."""
    with_history(web.tidings, web.clock, smtp)
    return web


@pytest.fixture
def reporting(store_url: str, smtp: LocalSmtpServer, clock: FakeClock) -> Iterator[Web]:
    """The same region with reports: one scoped by programme, one without a scope column."""
    config = web_config(store_url, smtp.port, reports=REPORTS)
    tidings = Tidings(config, clock=clock, environ=SECRET_ENV)
    advance(clock, BOOT_PEOPLE + timedelta(minutes=1))
    bootstrap(
        tidings, [("T1", "t1@nhs.example"), ("T2", "t2@gmail.example"), ("T3", None)], BOOT_PEOPLE
    )
    with_history(tidings, clock, smtp)
    access = AccessControl(config, tidings.store, clock, hasher=FAST_HASHER)
    app = create_app(tidings, access=access, environ=SECRET_ENV)
    with TestClient(app, base_url="http://testserver") as client:
        yield Web(tidings, app, access, client, clock)
    tidings.store.dispose()


def _h1(html: str) -> str:
    found = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    assert found is not None, "the page has no h1"
    return re.sub(r"\s+", " ", found.group(1)).strip()


def _nav(html: str) -> list[str]:
    nav = re.search(r'<nav class="service-nav".*?</nav>', html, re.S)
    return re.findall(r'class="service-nav__link" href="([^"]+)"', nav.group(0)) if nav else []


def _notice_of(web: Web, recipient: str, channel: str = "email") -> int:
    return next(
        n.id for n in outbox.notices_of(web.tidings.store, recipient) if n.channel == channel
    )


def _audit(web: Web) -> list[tuple[str, str, str, dict[str, object]]]:
    return [(a.actor, a.action, a.target, a.detail) for a in web.access.audit_log(1000)]


def _pages(web: Web) -> list[tuple[str, Permission, str]]:
    notice = _notice_of(web, "T1")
    return [
        ("/console/", P.DASHBOARD, "Dashboard"),
        ("/console/tonight", P.PREVIEW, "What tonight's close would send"),
        ("/console/people?q=Trainee", P.PEOPLE_READ, "People"),
        ("/console/people/T1", P.PEOPLE_READ, "Trainee T1 Smith"),
        (f"/console/notices/{notice}", P.PEOPLE_READ, "What Trainee T1 Smith is told, and why"),
        ("/console/attention", P.ATTENTION_READ, "Attention"),
        ("/console/reports", P.REPORTS_READ, "Reports"),
        ("/console/rules", P.CONFIG_READ, "Rules and templates"),
        ("/console/access", P.ACCESS_READ, "Access"),
    ]


STAFF = ("support", "auditor", "admin")  # unscoped staff roles, least to most


def test_each_page_opens_for_a_role_that_may_and_is_refused_to_one_that_may_not(
    region: Web,
) -> None:
    web = region
    sessions: dict[str, TestClient] = {}

    def session(role: str) -> TestClient:
        if role not in sessions:
            scope = "programme=North" if role == "manager" else None
            sessions[role] = web.session(web.user(f"user-{role}", role, scope=scope))
        return sessions[role]

    for path, permission, heading in _pages(web):
        allowed = next(r for r in STAFF if permission in ROLE_PERMISSIONS[r])
        response = session(allowed).get(path)
        assert response.status_code == 200, (path, allowed, response.text[:500])
        assert _h1(response.text) == heading, path
        # The navigation lists exactly the pages this role may open.
        assert _nav(response.text) == [
            i.href for i in NAV if i.permission in ROLE_PERMISSIONS[allowed]
        ]
        lacking = next(r for r in ("manager", "support", "ingest") if permission not in
                       ROLE_PERMISSIONS[r])  # fmt: skip
        refused = session(lacking).get(path)
        assert refused.status_code == 403, (path, lacking)
        assert "do not allow" in refused.text
        assert permission.value in refused.text
        assert "Trainee" not in refused.text


def test_the_navigation_shows_only_what_the_role_may_open(region: Web) -> None:
    support = region.session(region.user("sue", "support"))
    links = _nav(support.get("/console/").text)
    assert links == [
        "/console/",
        "/console/tonight",
        "/console/people",
        "/console/attention",
        "/console/rules",
    ]
    manager = region.session(region.user("mo", "manager", scope="programme=North"))
    assert "/console/attention" not in _nav(manager.get("/console/").text)
    assert "/console/reports" in _nav(manager.get("/console/").text)


# --- signing in ------------------------------------------------------------------------


def _form(client: TestClient, next_path: str = "/console/") -> str:
    page = client.get("/console/sign-in", params={"next": next_path})
    assert page.status_code == 200
    token = re.search(r'name="signin_token" value="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


def _sign_in(
    client: TestClient, username: str, password: str, next_path: str = "/console/"
) -> object:
    token = _form(client, next_path)
    return client.post(
        "/console/sign-in",
        data={
            "username": username,
            "password": password,
            "signin_token": token,
            "next": next_path,
        },
        follow_redirects=False,
    )


def test_signing_in_sets_a_session_cookie_and_goes_where_asked(web: Web) -> None:
    web.user("ann", "support")
    client = TestClient(web.app, base_url="http://testserver")
    first = client.get("/console/attention", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/console/sign-in?next=/console/attention"
    response = _sign_in(client, "ann", PASSWORD, "/console/attention")
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/console/attention"  # type: ignore[attr-defined]
    cookies = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    session = next(c for c in cookies if c.startswith(session_cookie_name(web.tidings.config)))
    assert "HttpOnly" in session
    assert "SameSite=lax" in session
    assert "Path=/" in session
    assert "Secure" not in session  # served over http here: see the https test
    assert client.get("/console/attention").status_code == 200
    assert ("user:ann", "signin", "user:ann") in [a[:3] for a in _audit(web)]


def test_a_console_served_over_https_uses_a_secure_host_cookie(
    tmp_path: Path, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    config = web_config(
        f"sqlite:///{tmp_path / 'secure.db'}",
        smtp.port,
        serve={"base_url": "https://tidings.example"},
    )
    tidings = Tidings(config, clock=clock, environ=SECRET_ENV)
    try:
        access = AccessControl(config, tidings.store, clock, hasher=FAST_HASHER)
        access.add_user("ann", PASSWORD, by="test")
        access.grant(role="support", username="ann", by="test")
        client = TestClient(create_app(tidings, access=access, environ=SECRET_ENV),
                            base_url="https://tidings.example")  # fmt: skip
        response = _sign_in(client, "ann", PASSWORD)
        cookies = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
        session = next(c for c in cookies if c.startswith("__Host-tidings="))
        assert "Secure" in session
        assert "HttpOnly" in session
        assert "Path=/" in session
    finally:
        tidings.store.dispose()


def test_a_wrong_password_and_an_unknown_user_are_refused_alike(web: Web) -> None:
    web.user("ann", "support")
    client = TestClient(web.app, base_url="http://testserver")
    wrong = _sign_in(client, "ann", "not the password at all")
    unknown = _sign_in(client, "nobody", "not the password at all")
    for response in (wrong, unknown):
        assert response.status_code == 400  # type: ignore[attr-defined]
        assert "do not match an account" in response.text  # type: ignore[attr-defined]
        assert not any(
            c.startswith(session_cookie_name(web.tidings.config))
            for c in response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
        )
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_repeated_failures_lock_the_account(web: Web) -> None:
    web.user("ann", "support")
    client = TestClient(web.app, base_url="http://testserver")
    for _ in range(web.tidings.config.serve.lockout_after):
        _sign_in(client, "ann", "not the password at all")
    locked = _sign_in(client, "ann", PASSWORD)
    assert locked.status_code == 400  # type: ignore[attr-defined]
    assert "locked" in locked.text  # type: ignore[attr-defined]
    assert client.get("/console/", follow_redirects=False).status_code == 303
    assert "signin.lockout" in [a[1] for a in _audit(web)]


def test_the_sign_in_form_refuses_a_post_without_its_own_token(web: Web) -> None:
    """Login CSRF: another site cannot sign a browser in to an account of its choosing."""
    web.user("ann", "support")
    client = TestClient(web.app, base_url="http://testserver")
    posted = {"username": "ann", "password": PASSWORD, "next": "/console/"}
    bare = client.post("/console/sign-in", data=posted, follow_redirects=False)
    assert bare.status_code == 403
    _form(client)  # a token cookie of this browser, but another token in the form
    forged = client.post(
        "/console/sign-in", data={**posted, "signin_token": "forged"}, follow_redirects=False
    )
    assert forged.status_code == 403
    for response in (bare, forged):
        assert not any(
            c.startswith(session_cookie_name(web.tidings.config))
            for c in response.headers.get_list("set-cookie")
        )
    assert "signin" not in [a[1] for a in _audit(web)]


@pytest.mark.parametrize(
    "asked",
    ["https://evil.example/", "//evil.example/console", "/elsewhere", "/console\\..\\x"],
)
def test_after_signing_in_only_a_console_path_is_followed(web: Web, asked: str) -> None:
    web.user("ann", "support")
    client = TestClient(web.app, base_url="http://testserver")
    response = _sign_in(client, "ann", PASSWORD, asked)
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/console/"  # type: ignore[attr-defined]


def test_signing_out_ends_the_session(web: Web) -> None:
    client = web.session(web.user("ann", "support"))
    assert client.get("/console/").status_code == 200
    out = client.post(
        "/console/sign-out", data={"csrf": client.headers["X-Test-CSRF"]}, follow_redirects=False
    )
    assert out.status_code == 303
    assert out.headers["location"].startswith("/console/sign-in")
    assert client.get("/console/", follow_redirects=False).status_code == 303
    assert ("user:ann", "signout", "user:ann") in [a[:3] for a in _audit(web)]


def test_the_sign_in_page_offers_the_organisations_account_when_oidc_is_set(
    tmp_path: Path, smtp: LocalSmtpServer, clock: FakeClock
) -> None:
    oidc = {"issuer": "https://idp.example", "client_id": "tidings",
            "groups": {"staff-support": {"role": "support"}}}  # fmt: skip
    config = web_config(f"sqlite:///{tmp_path / 'o.db'}", smtp.port)
    data = config.model_dump(by_alias=True)
    data["access"]["oidc"] = oidc
    from tidings.config import parse_config

    tidings = Tidings(parse_config(data), clock=clock, environ=SECRET_ENV)
    try:
        client = TestClient(create_app(tidings, environ=SECRET_ENV), base_url="http://testserver")
        page = client.get("/console/sign-in").text
        assert "Sign in with your organisation's account" in page
        assert 'href="/console/oidc/start?next=/console/"' in page
    finally:
        tidings.store.dispose()


# --- forms and CSRF ---------------------------------------------------------------------


def test_a_form_post_without_the_sessions_csrf_token_is_refused(region: Web) -> None:
    support = region.session(region.user("sue", "support"))
    failed = _notice_of(region, "T2")
    for data in ({"ids": str(failed)}, {"ids": str(failed), "csrf": "forged"}):
        response = support.post("/console/attention/retry", data=data, follow_redirects=False)
        assert response.status_code == 403
        assert "reload the page" in response.text
    assert outbox.notices_of(region.tidings.store, "T2")[-1].status == "failed"
    assert "attention.retry" not in [a[1] for a in _audit(region)]


# --- what the pages show ----------------------------------------------------------------


def test_the_dashboard_shows_the_figures_and_an_accessible_chart(region: Web) -> None:
    html = region.session(region.user("sue", "support")).get("/console/").text
    assert re.search(r'id="pending">2<', html)
    assert 'id="next-close">3 Aug 2025 18:00<' in html
    svg = re.search(r"<svg .*?</svg>", html, re.S)
    assert svg is not None
    assert 'role="img"' in svg.group(0)
    assert '<title id="notices-chart-title">Notices per day by channel and outcome</title>' in (
        svg.group(0)
    )
    table = re.search(r'<table class="table table--small" id="notices-table">.*?</table>', html,
                      re.S)  # fmt: skip
    assert table is not None
    assert "email failed" in table.group(0)
    assert "inbox delivered" in table.group(0)


def test_tonight_renders_the_digests_and_writes_nothing(region: Web) -> None:
    store = region.tidings.store
    with store.read() as tx:
        before = (len(tx.outbox.all()), tx.events.pending_count(), tx.ledger.windows())
    client = region.session(region.user("sue", "support"))
    html = client.get("/console/tonight").text
    # T1's moved start date, in the subject and text the default template writes.
    assert "Update to your placement P1" in html
    assert "10 September 2025" in html
    assert "to t1@nhs.example" in html
    # T2's address bounced: tonight's email to it would be held, with the reason.
    assert "would be held" in html
    assert "address undeliverable" in html
    with store.read() as tx:
        after = (len(tx.outbox.all()), tx.events.pending_count(), tx.ledger.windows())
    assert after == before
    viewed = {a[2] for a in _audit(region) if a[1] == "person.view" and
              a[3] == {"page": "tonight"}}  # fmt: skip
    assert viewed == {"person:T1", "person:T2"}


def test_a_person_page_shows_notices_inbox_preferences_and_what_they_were_told(
    region: Web,
) -> None:
    client = region.session(region.user("sue", "support"))
    html = client.get("/console/people/T2").text
    assert _h1(html) == "Trainee T2 Smith"
    assert "mailbox unavailable" in html  # the failed email's outcome
    assert "Update to your placement P2" in html  # the in-app message
    assert "Personal details" in html  # a category of the preferences
    assert "Placement P2 was added" in html  # told in window 2
    assert ("user:sue", "person.view", "person:T2", {"page": "person"}) in _audit(region)
    assert client.get("/console/people/NOBODY").status_code == 404


def test_a_notice_page_explains_events_rule_template_and_delivery(region: Web) -> None:
    client = region.session(region.user("sue", "support"))
    failed = _notice_of(region, "T2")
    html = client.get(f"/console/notices/{failed}").text
    assert "rule &#39;current-placements&#39; sends it" in html
    assert "default.email.j2" in html
    assert "SMTP 550" in html
    assert "Events folded into this window" in html
    assert "placements.jsonl:2" in html  # where P2's event came from
    assert "Retry this notice" in html
    assert client.get("/console/notices/999999").status_code == 404
    assert len(re.findall(r"<tr><td>", _attempts(html))) == 1

    # Retried by hand and delivered: the page lists both attempts, not just the last.
    outbox.retry(region.tidings.store, [failed], region.clock())
    dispatch(region.tidings)
    rows = re.findall(r"<tr><td>.*?</tr>", _attempts(client.get(f"/console/notices/{failed}").text))
    assert len(rows) == 2
    assert "SMTP 550" in rows[0]
    assert "<td>delivered</td>" in rows[1]


def _attempts(html: str) -> str:
    found = re.search(r'<table class="table table--small" id="attempts">.*?</table>', html, re.S)
    assert found is not None, "the page has no attempts table"
    return found.group(0)


def test_searching_people_finds_by_name_and_by_id(region: Web) -> None:
    client = region.session(region.user("sue", "support"))
    html = client.get("/console/people", params={"q": "trainee t3"}).text
    assert 'href="/console/people/T3"' in html
    assert 'href="/console/people/T1"' not in html
    by_id = client.get("/console/people", params={"q": "T1"}).text
    assert 'href="/console/people/T1"' in by_id


def test_the_rules_page_previews_a_template_on_sample_data(region: Web) -> None:
    client = region.session(region.user("sue", "support"))
    html = client.get("/console/rules").text
    assert "current-placements" in html
    keys = re.findall(r'<option value="([^"]+)"', html)
    contact = next(k for k in keys if k.startswith("changes:contact:email"))
    preview = client.get("/console/rules", params={"template": contact}).text
    assert f"Hello {SAMPLE_RECIPIENT_NAME}" in preview
    assert "records linked to you" in preview


def test_an_error_page_shows_no_persons_data(region: Web) -> None:
    client = region.session(region.user("sue", "support"))
    for path in ("/console/people/T9%3Cscript%3E", "/console/notices/424242", "/console/nope"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "<script>" not in response.text
        assert "T9" not in response.text
        assert "Page not found" in response.text


# --- managers' scope --------------------------------------------------------------------


def test_a_manager_sees_only_the_people_of_their_scope(region: Web) -> None:
    manager = region.session(region.user("mo", "manager", scope="programme=North"))
    assert manager.get("/console/people/T1").status_code == 200
    refused = manager.get("/console/people/T2")
    assert refused.status_code == 404
    assert "T2" not in refused.text
    assert manager.get(f"/console/notices/{_notice_of(region, 'T2')}").status_code == 404
    tonight = manager.get("/console/tonight").text
    assert "Trainee T1 Smith" in tonight
    assert "Trainee T2 Smith" not in tonight
    assert "Update to your placement P4" not in tonight
    found = manager.get("/console/people", params={"q": "trainee"}).text
    assert 'href="/console/people/T1"' in found
    assert 'href="/console/people/T3"' in found
    assert 'href="/console/people/T2"' not in found


def test_a_manager_reads_reports_of_their_scope_only(reporting: Web) -> None:
    web = reporting
    manager = web.session(web.user("mo", "manager", scope="programme=North"))
    html = manager.get("/console/reports/placements", params={"scope": "South"}).text
    rows = re.search(r'id="report-rows">.*?</table>', html, re.S)
    assert rows is not None
    assert "North" in rows.group(0)
    assert "South" not in rows.group(0)
    csv = manager.get("/console/reports/placements/download", params={"format": "csv"})
    assert csv.status_code == 200
    assert csv.headers["content-disposition"] == 'attachment; filename="placements-North.csv"'
    assert "South" not in csv.text
    assert csv.text.count("\r\n") == 3  # the heading, T1's and T3's placements
    refused = manager.get("/console/reports/sites")
    assert refused.status_code == 403
    assert "no scope column" in refused.text
    assert manager.get("/console/reports/sites/download").status_code == 403
    admin = web.session(web.user("ada", "admin"))
    xlsx = admin.get("/console/reports/placements/download", params={"format": "xlsx"})
    assert xlsx.status_code == 200
    assert xlsx.content[:2] == b"PK"  # a zip: the xlsx workbook
    every = admin.get("/console/reports/placements").text
    assert "South" in every
    actions = [(a[1], a[2], a[3].get("scope")) for a in _audit(web)]
    assert ("report.download", "report:placements", "North") in actions
    assert ("report.view", "report:placements", None) in actions


# --- attention actions ------------------------------------------------------------------


def test_retrying_a_failed_notice_sends_it_again(region: Web, smtp: LocalSmtpServer) -> None:
    support = region.session(region.user("sue", "support"))
    failed = _notice_of(region, "T2")
    response = support.post(
        "/console/attention/retry",
        data={"ids": str(failed), "csrf": support.headers["X-Test-CSRF"]},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/attention?done=retried&n=1&m=0"
    page = support.get(response.headers["location"]).text
    assert "1 notice queued to be sent again." in page
    assert ("user:sue", "attention.retry", "notices") in [a[:3] for a in _audit(region)]
    dispatch(region.tidings)
    assert any(BOUNCING in m.envelope_to for m in smtp.messages)
    assert failed not in [n.id for n in outbox.attention(region.tidings.store)]


def test_forgetting_an_address_releases_its_held_notices(region: Web) -> None:
    support = region.session(region.user("sue", "support"))
    csrf = support.headers["X-Test-CSRF"]
    response = support.post("/console/attention/forget", data={"address": BOUNCING, "csrf": csrf})
    assert "The address is no longer marked undeliverable" in response.text
    assert outbox.undeliverable_addresses(region.tidings.store) == []
    forgot = [a for a in _audit(region) if a[1] == "attention.forget"]
    assert forgot
    assert BOUNCING not in str(forgot)  # the audit names the notice, not the address


def test_quarantined_input_is_replayed_or_discarded(region: Web) -> None:
    support = region.session(region.user("sue", "support"))
    csrf = support.headers["X-Test-CSRF"]
    entry = region.tidings.quarantined("open")[0]
    replayed = support.post(
        "/console/attention/quarantine/replay", data={"ids": str(entry.id), "csrf": csrf}
    )
    assert "0 lines accepted; 1 still rejected" in replayed.text
    discarded = support.post(
        "/console/attention/quarantine/discard", data={"ids": str(entry.id), "csrf": csrf}
    )
    assert "1 entry discarded." in discarded.text
    assert region.tidings.quarantined("open") == []
    actions = [a[1] for a in _audit(region)]
    assert "quarantine.replay" in actions
    assert "quarantine.discard" in actions


def test_held_changes_are_replayed_or_dismissed(region: Web) -> None:
    # A placement that names nobody is held back from the close for attention.
    nobody = event(
        "P9-1", "P9", "upsert", 1, "2025-08-03T10:00:00+01:00",
        {"traineeId": None, "site": "Nowhere", "programme": "North"},
    )  # fmt: skip
    region.tidings.ingest_lines(lines(nobody))
    advance(region.clock, FIRST_CLOSE + timedelta(days=1, minutes=30))
    region.tidings.close(FIRST_CLOSE + timedelta(days=1))
    held = region.tidings.held_changes()
    assert [h.key for h in held] == ["P9"]
    support = region.session(region.user("sue", "support"))
    csrf = support.headers["X-Test-CSRF"]
    page = support.get("/console/attention").text
    assert "tcs/Placement/P9" in page
    replayed = support.post(
        "/console/attention/held/replay", data={"ids": str(held[0].id), "csrf": csrf}
    )
    assert "0 held changes replayed; 1 still held" in replayed.text
    dismissed = support.post(
        "/console/attention/held/dismiss", data={"ids": str(held[0].id), "csrf": csrf}
    )
    assert "1 held change dismissed." in dismissed.text
    assert region.tidings.held_changes() == []
    actions = [a[1] for a in _audit(region)]
    assert "held.replay" in actions
    assert "held.dismiss" in actions


def test_an_auditor_sees_attention_but_cannot_act(region: Web) -> None:
    auditor = region.session(region.user("aud", "auditor"))
    html = auditor.get("/console/attention").text
    assert "SMTP 550" in html
    assert "/console/attention/retry" not in html
    response = auditor.post(
        "/console/attention/retry",
        data={"ids": str(_notice_of(region, "T2")), "csrf": auditor.headers["X-Test-CSRF"]},
    )
    assert response.status_code == 403


# --- access -----------------------------------------------------------------------------


def test_the_access_page_explains_each_grant_and_who_can_see_a_person(region: Web) -> None:
    region.user("mo", "manager", scope="programme=North")
    region.user("sol", "manager", scope="programme=South")
    auditor = region.session(region.user("aud", "auditor"))
    html = auditor.get("/console/access").text
    assert "manager in programme=North granted by test" in html
    assert "Add a user" not in html  # managing access is for admins
    assert 'id="audit-log"' in html
    who = auditor.get("/console/access", params={"person": "T1"}).text
    seers = re.search(r'id="seers">.*?</table>', who, re.S)
    assert seers is not None
    assert "mo" in seers.group(0)
    assert "sol" not in seers.group(0)
    assert ("user:aud", "access.who_can_see", "person:T1") in [a[:3] for a in _audit(region)]


def test_an_admin_manages_users_grants_and_keys(region: Web) -> None:
    admin = region.session(region.user("ada", "admin"))
    csrf = admin.headers["X-Test-CSRF"]
    added = admin.post(
        "/console/access/users",
        data={
            "username": "newbie",
            "password": PASSWORD,
            "display_name": "New Bie",
            "csrf": csrf,
        },
    )
    assert "The user was added" in added.text
    unscoped = admin.post(
        "/console/access/grants",
        data={"holder": "user:newbie", "role": "manager", "scope": "", "csrf": csrf},
    )
    assert unscoped.status_code == 400
    assert "needs a scope" in unscoped.text
    granted = admin.post(
        "/console/access/grants",
        data={
            "holder": "user:newbie",
            "role": "manager",
            "scope": "programme=North",
            "csrf": csrf,
        },
    )
    assert "was made" in granted.text
    grant_id = max(g.id for g in region.access.all_grants() if g.role == "manager")
    made = admin.post(
        "/console/access/keys",
        data={"name": "portal", "roles": ["recipient_service"], "csrf": csrf},
    )
    assert made.status_code == 200
    assert made.headers["cache-control"] == "no-store"
    token = re.search(r'value="(tdk_[^"]+)"', made.text)
    assert token is not None
    assert "shown only once" in made.text
    key = region.access.key_principal(token.group(1))
    assert key is not None
    assert token.group(1) not in admin.get("/console/access").text
    admin.post(f"/console/access/keys/{key.id}/revoke", data={"csrf": csrf})
    assert region.access.key_principal(token.group(1)) is None
    admin.post(f"/console/access/grants/{grant_id}/revoke", data={"csrf": csrf})
    page = admin.get("/console/access").text
    assert re.search(r"<del><strong>manager in programme=North granted by user:ada", page)
    newbie = region.session("newbie")
    admin.post("/console/access/users/newbie/disable", data={"csrf": csrf})
    assert newbie.get("/console/", follow_redirects=False).status_code == 303
    actions = [a[1] for a in _audit(region) if a[0] == "user:ada"]
    for action in ("user.add", "grant", "key.create", "key.revoke", "revoke", "user.disable"):
        assert action in actions, action


def test_the_stylesheet_is_served_to_anyone(web: Web) -> None:
    response = TestClient(web.app).get("/console/static/console.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert ".service-nav" in response.text
