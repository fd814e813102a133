"""Signed links: tokens (round trip, tampering, another secret, another purpose), their
configuration, the preferences link in templates, and the sample's close time in previews."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_templates import TWO_CHANGES, context, make_config, rule, write
from tidings.config import Config, LinksConfig, parse_config
from tidings.errors import ConfigError, LinkError
from tidings.links import LinkClaim, LinkSigner, link_signer, links_from, parse_token
from tidings.templates import TemplateSet, render_preview
from tidings.templates.context import ReportDigestView
from tidings.templates.sample import SAMPLE_RECIPIENT_ID, sample_reminder_context

SECRET = "correct-horse-battery-staple-42"
ENV = {"TIDINGS_LINK_SECRET": SECRET}
PREFS = "https://prefs.example.org/p?token={token}&from=email"
SIGNER = LinkSigner(SECRET.encode())


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


# --- tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim",
    [
        LinkClaim("unsubscribe", "T000123", "email"),
        LinkClaim("preferences", "T000123"),
        LinkClaim("unsubscribe", 'Zoë "O\'Brien" / 名前 . x', "mail.channel"),
    ],
)
def test_a_token_round_trips_and_is_url_safe(claim: LinkClaim) -> None:
    token = SIGNER.sign(claim)

    assert re.fullmatch(r"v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", token)
    assert SIGNER.verify(token, claim.purpose) == claim
    assert SIGNER.sign(claim) == token  # deterministic: the same link in every email


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_a_tampered_token_is_refused() -> None:
    token = SIGNER.sign(LinkClaim("unsubscribe", "T1", "email"))
    other = SIGNER.sign(LinkClaim("unsubscribe", "T2", "email"))
    version, payload, mac = token.split(".")
    tampered = [
        f"{version}.{_flip(payload, 3)}.{mac}",  # someone else's id, say
        f"{version}.{payload}.{_flip(mac, 10)}",
        f"{version}.{payload}.{mac[:-1]}",  # cut short when copied
        f"{version}.{other.split('.')[1]}.{mac}",  # another person's payload, this signature
        f"{version}.{payload}x.{mac}",
        f"v2.{payload}.{mac}",
    ]
    for bad in tampered:
        with pytest.raises(LinkError) as caught:
            SIGNER.verify(bad, "unsubscribe")
        assert payload not in str(caught.value)  # the message never quotes the token


def test_a_token_signed_with_another_secret_is_refused() -> None:
    theirs = LinkSigner(b"another-deployment-secret").sign(LinkClaim("unsubscribe", "T1", "email"))

    with pytest.raises(LinkError, match="signed with another secret"):
        SIGNER.verify(theirs, "unsubscribe")


def test_a_token_made_for_another_purpose_is_refused() -> None:
    preferences = SIGNER.sign(LinkClaim("preferences", "T1"))
    unsubscribe = SIGNER.sign(LinkClaim("unsubscribe", "T1", ""))

    with pytest.raises(LinkError, match="for another purpose"):
        SIGNER.verify(preferences, "unsubscribe")
    with pytest.raises(LinkError):
        SIGNER.verify(unsubscribe, "preferences")


@pytest.mark.parametrize(
    "junk",
    ["", "abc", "v1..", "v1.a.b.c", "v1.a b.c", "v1.YQ.x", "v1.é.abc", "v1." + "A" * 5000 + ".B"],
)
def test_a_malformed_token_is_refused_without_the_key(junk: str) -> None:
    with pytest.raises(LinkError):
        parse_token(junk)
    with pytest.raises(LinkError):
        SIGNER.verify(junk, "unsubscribe")


@given(st.text(max_size=300))
def test_any_text_is_a_link_error_at_worst(text: str) -> None:
    with pytest.raises(LinkError):
        SIGNER.verify(text, "unsubscribe")


# --- the secret and the configuration ----------------------------------------------------


def test_the_secret_comes_from_the_named_variable_and_never_shows() -> None:
    config = LinksConfig(preferences_url=PREFS, secret_env="MY_LINK_KEY")
    links = links_from(config, {"MY_LINK_KEY": SECRET})

    assert links is not None
    assert SECRET not in repr(links)
    assert SECRET not in str(links.signer)
    assert links.signer.verify(
        token_of(links.preferences("T1") or ""), "preferences"
    ).recipient == ("T1")
    assert links.unsubscribe("T1", "email") is None  # no unsubscribe_url configured


@pytest.mark.parametrize(
    "environ", [{}, {"TIDINGS_LINK_SECRET": ""}, {"TIDINGS_LINK_SECRET": "tiny-s3cr3t"}]
)
def test_a_missing_or_weak_secret_is_a_config_error_naming_the_key(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        links_from(LinksConfig(unsubscribe_url=PREFS), environ)

    [(key, reason)] = caught.value.problems
    assert key == "links.secret_env"
    assert "TIDINGS_LINK_SECRET" in reason
    assert "tiny-s3cr3t" not in reason
    with pytest.raises(ConfigError):
        link_signer(LinksConfig(), environ)


def test_without_link_urls_no_secret_is_needed() -> None:
    assert links_from(LinksConfig(), {}) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://prefs.example.org/{token}", "http"),
        ("https://prefs.example.org/p?token=", "{token}"),
        ("https://prefs.example.org/{token}/{token}", "{token}"),
        ("https://prefs.example.org/p ?token={token}", "spaces"),
        ('https://prefs.example.org/"{token}"', "quotes"),
        ("https://prefs.example.org/" + "x" * 500 + "{token}", "500"),
    ],
)
def test_link_urls_are_checked_when_the_config_is_read(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"links": {"preferences_url": url, "unsubscribe_url": url}})

    keys = sorted(key for key, _ in caught.value.problems)
    assert keys == ["links.preferences_url", "links.unsubscribe_url"]
    assert all(why in reason for _, reason in caught.value.problems)


# --- the preferences link in templates ---------------------------------------------------


def with_links(**overrides: Any) -> Config:
    return make_config(links={"preferences_url": PREFS}, **overrides)


def test_the_default_email_footer_links_to_the_recipients_preferences() -> None:
    config = with_links()
    rendered = TemplateSet.load(config, environ=ENV).render(
        "default", "email", context(config, TWO_CHANGES)
    )

    assert rendered.text is not None
    assert rendered.html is not None
    last = rendered.text.splitlines()[-1]
    assert last.startswith("To change which updates you get, or how you get them, update your ")
    url = last.split("notification preferences: ", 1)[1]
    assert url.startswith("https://prefs.example.org/p?token=v1.")
    assert url.endswith("&from=email")
    assert SIGNER.verify(token_of(url), "preferences") == LinkClaim("preferences", "47")
    # The HTML part links the words, its URL escaped as an attribute must be.
    escaped = url.replace("&", "&amp;")
    assert f'<a href="{escaped}">notification preferences</a>.' in rendered.html


def test_without_links_the_footers_keep_todays_wording() -> None:
    config = make_config()
    rendered = TemplateSet.load(config, environ={}).render(
        "default", "email", context(config, TWO_CHANGES)
    )

    assert rendered.text is not None
    assert rendered.html is not None
    assert rendered.text.endswith(
        "To change which updates you get, or how you get them, update your notification "
        "preferences."
    )
    assert "None" not in rendered.text
    assert "None" not in rendered.html
    assert "<a " not in rendered.html


def test_every_built_in_email_carries_the_link_and_is_unchanged_without_it() -> None:
    linked = with_links(rules=[rule("default", ["mail"])])
    plain = make_config(rules=[rule("default", ["mail"])])
    report = ReportDigestView(
        "form-r", "Form R", "Cardiology", None, ("Name",), (("A",),), 1, 0, "x"
    )
    for config, environ in ((linked, ENV), (plain, {})):
        templates = TemplateSet.load(config, environ=environ)
        builder = templates.contexts
        contexts = {
            "default": context(config, TWO_CHANGES),
            "contact": context(config, TWO_CHANGES),
            "reminder": sample_reminder_context(builder, "Placement", "dateFrom", "email"),
            "manager-digest": builder.manager_digest_context(
                recipient_id=SAMPLE_RECIPIENT_ID,
                recipient_name="Pat",
                report=report,
                today=date(2025, 8, 6),
                medium="email",
            ),
        }
        for name, ctx in contexts.items():
            rendered = templates.render(name, "email", ctx)
            assert rendered.text is not None
            assert rendered.html is not None
            if config is linked:
                [url] = re.findall(r"https://prefs\.example\.org/\S+", rendered.text)
                claim = SIGNER.verify(token_of(url), "preferences")
                assert claim.recipient == ctx.recipient.id, name
                assert 'href="https://prefs.example.org/p?token=' in rendered.html, name
            else:
                assert rendered.text.splitlines()[-1] == TODAYS_FOOTER[name]
                assert "None" not in rendered.text + rendered.html, name
                assert "href" not in rendered.html, name


# The last line of each built-in email's text as it read before links existed.
TODAYS_FOOTER = {
    "default": "To change which updates you get, or how you get them, update your notification "
    "preferences.",
    "contact": "You get these updates because you are a contact for these records. To stop "
    "them or change how you get them, contact the team that manages the records.",
    "reminder": "To change which reminders you get, or how you get them, update your "
    "notification preferences.",
    "manager-digest": "You get this because you manage Cardiology. To change how you get it, "
    "update your notification preferences.",
}


def test_a_custom_template_can_use_the_preferences_link(tmp_path: Path) -> None:
    write(tmp_path / "templates", {"short.sms.j2": "Changes. Preferences: {{ preferences_url }}"})
    config = with_links(templates="templates", rules=[rule("short", ["text"])])

    templates = TemplateSet.load(config, tmp_path, environ=ENV)
    rendered = templates.render("short", "sms", context(config, TWO_CHANGES, "sms"))

    assert rendered.text is not None
    url = rendered.text.split("Preferences: ", 1)[1]
    assert SIGNER.verify(token_of(url), "preferences").recipient == "47"


def test_a_configured_link_without_its_secret_fails_at_start_up() -> None:
    config = with_links()

    with pytest.raises(ConfigError) as caught:
        TemplateSet.load(config, environ={})

    assert [key for key, _ in caught.value.problems] == ["links.secret_env"]


# --- the sample's close time in previews -------------------------------------------------


@pytest.mark.parametrize(
    ("window", "zone", "said"),
    [
        ({"cutoff": "18:30"}, "America/New_York", "6 August 2025 at 18:30"),
        ({"cutoff": "07:05"}, "Europe/London", "6 August 2025 at 07:05"),
        ({}, "Europe/London", "6 August 2025 at 17:00"),  # the default cutoff
        ({"quiet": "30m"}, "Asia/Tokyo", "6 August 2025 at 17:00"),
    ],
)
def test_a_preview_closes_at_the_configured_cutoff_in_the_configured_zone(
    window: dict[str, str], zone: str, said: str
) -> None:
    config = make_config(window=window, timezone=zone)

    rendered = render_preview(TemplateSet.load(config), config, "default", "email")

    assert rendered.text is not None
    assert f"to your records, up to {said}." in rendered.text
