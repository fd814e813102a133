"""The console in a real browser (Chromium through Playwright) against a real server: signing
in, the dashboard, tonight's digests, a notice's explanation, resolving an attention item, and
a manager refused outside their scope. Each page visited is saved as a screenshot."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.harness import Console, in_thread, screenshot, sign_in
from tests.browser.region import BOUNCING
from tests.notify_setup import dispatch
from tidings.outbox import attention as outbox

pytestmark = pytest.mark.slow


def test_signing_in_takes_a_user_to_the_page_they_asked_for(page: Any, console: Console) -> None:
    page.goto(console.at("/console/attention"))
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next=/console/attention$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the staff console")
    screenshot(page, "sign-in")
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match an account")
    screenshot(page, "sign-in-refused")
    sign_in(page, console, "sam", next_path="/console/attention")
    expect(page).to_have_url(console.at("/console/attention"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Attention")
    # Signing out ends the session: the console asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert")).to_contain_text("You have signed out")
    page.goto(console.at("/console/"))
    expect(page).to_have_url(re.compile(r"/console/sign-in"))


def test_the_dashboard_shows_the_figures_and_a_chart(page: Any, console: Console) -> None:
    sign_in(page, console, "ada")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    # P1's new start date and P4 wait for tonight; the broken line is in quarantine.
    expect(page.locator("#pending")).to_have_text("2")
    expect(page.locator("#next-close")).to_have_text("3 Aug 2025 18:00")
    chart = page.get_by_role("img", name=re.compile("Notices per day by channel and outcome"))
    expect(chart).to_be_visible()
    expect(page.locator("#notices-table")).to_contain_text("email failed")
    # Every page the admin may open is in the navigation.
    nav = page.get_by_role("navigation", name="Console pages")
    for label in ("Dashboard", "Tonight", "People", "Attention", "Reports", "Access"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    screenshot(page, "dashboard")


def test_tonight_shows_each_persons_messages_as_they_will_be_sent(
    page: Any, console: Console
) -> None:
    sign_in(page, console, "ada", next_path="/console/tonight")
    expect(page.get_by_role("heading", level=1)).to_have_text("What tonight's close would send")
    t1 = page.get_by_role("region", name=re.compile("Trainee T1 Smith"))
    expect(t1).to_contain_text("Start date")
    expect(t1).to_contain_text("10 September 2025")
    expect(t1.locator(".message--email")).to_contain_text("to t1@nhs.example")
    expect(t1.locator(".message--inapp")).to_be_visible()
    # T2's address bounced yesterday: tonight's email to it would be held.
    t2 = page.get_by_role("region", name=re.compile("Trainee T2 Smith"))
    expect(t2.locator(".message--email")).to_contain_text("would be held")
    screenshot(page, "tonight")


def test_a_notice_explains_its_events_rule_template_and_delivery(
    page: Any, console: Console
) -> None:
    sign_in(page, console, "ada", next_path="/console/people?q=T2")
    page.get_by_role("link", name="Trainee T2 Smith").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Trainee T2 Smith")
    screenshot(page, "person")
    page.locator("#notices").get_by_role("row", name=re.compile("email")).first.get_by_role(
        "link"
    ).click()
    expect(page.locator("#delivery")).to_contain_text("failed")
    expect(page.locator("#delivery")).to_contain_text("mailbox unavailable")
    expect(page.get_by_text("rule 'current-placements'").first).to_be_visible()
    expect(page.get_by_text("default.email.j2")).to_be_visible()
    expect(page.get_by_role("table", name="Events folded into this window")).to_contain_text(
        "upsert"
    )
    screenshot(page, "notice-explain")


def test_support_resolves_attention_items(page: Any, console: Console) -> None:
    failed = [n for n in outbox.attention(console.tidings.store) if n.address == BOUNCING]
    assert failed, "the region should have a bounced notice"
    sign_in(page, console, "sam", next_path="/console/attention")
    screenshot(page, "attention")
    page.get_by_role("button", name=f"Retry notice {failed[0].id}").click()
    expect(page.get_by_role("alert")).to_contain_text("1 notice queued to be sent again")
    screenshot(page, "attention-retried")
    stats = in_thread(lambda: dispatch(console.tidings))
    assert stats.delivered >= 1
    assert any(BOUNCING in m.envelope_to for m in console.smtp.messages)
    # The quarantined line is discarded from the same page.
    entry = console.tidings.quarantined("open")[0]
    page.get_by_role("button", name=f"Discard quarantined line {entry.id}").click()
    expect(page.get_by_role("alert")).to_contain_text("1 entry discarded")
    assert console.tidings.quarantined("open") == []
    audit = [a.action for a in console.access.audit_log(50)]
    assert "attention.retry" in audit
    assert "quarantine.discard" in audit


def test_a_manager_is_refused_outside_their_scope(page: Any, console: Console) -> None:
    sign_in(page, console, "mo", next_path="/console/tonight")
    expect(page.get_by_role("region", name=re.compile("Trainee T1 Smith"))).to_be_visible()
    expect(page.get_by_text("Trainee T2 Smith")).to_have_count(0)
    nav = page.get_by_role("navigation", name="Console pages")
    expect(nav.get_by_role("link", name="Attention")).to_have_count(0)
    screenshot(page, "tonight-manager")
    response = page.goto(console.at("/console/people/T2"))
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.locator("main")).not_to_contain_text("T2")
    screenshot(page, "manager-refused")
    response = page.goto(console.at("/console/attention"))
    assert response is not None
    assert response.status == 403
    screenshot(page, "manager-forbidden")


def test_every_other_page_renders(page: Any, console: Console) -> None:
    sign_in(page, console, "ada", next_path="/console/reports")
    expect(page.get_by_role("table", name="Configured reports")).to_be_visible()
    screenshot(page, "reports")
    page.get_by_role("link", name="Placements by programme").click()
    expect(page.locator("#report-rows")).to_contain_text("Leeds General Infirmary")
    screenshot(page, "report")
    page.goto(console.at("/console/rules"))
    expect(page.locator("#rules-table")).to_contain_text("current-placements")
    page.get_by_label("Template to preview").select_option(index=1)
    page.get_by_role("button", name="Preview").click()
    expect(page.locator(".message").first).to_be_visible()
    screenshot(page, "rules")
    page.goto(console.at("/console/people?q=trainee"))
    expect(page.locator("#people-results")).to_contain_text("Trainee T3 Smith")
    screenshot(page, "people")
    page.goto(console.at("/console/access?person=T1"))
    expect(page.locator("#seers")).to_contain_text("mo")
    screenshot(page, "access")
    page.get_by_label("Name", exact=True).fill("trainee portal")
    page.get_by_label("recipient_service").check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("alert")).to_contain_text("shown only once")
    token = page.get_by_label("Token").input_value()
    assert token.startswith("tdk_")
    assert console.access.key_principal(token) is not None
    screenshot(page, "key-created")
