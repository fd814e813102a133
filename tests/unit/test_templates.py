"""Templates: sandboxed Jinja2 per medium, values in words from the config, every broken
template reported with its file and line when the set is loaded."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError

from tidings.config import Config, Medium, parse_config
from tidings.errors import ConfigError
from tidings.model import Change, EntityRef, FieldChange, Kind, NoticeItem
from tidings.templates import (
    DigestContext,
    TemplateRenderError,
    TemplateSet,
    digest_context,
    render_preview,
    sample_items,
)

BASE: dict[str, Any] = {
    "timezone": "Europe/London",
    "entities": {
        "Placement": {
            "label": "placement",
            "key": "id",
            "recipient": "traineeId",
            "ignore": ["updatedAt"],
            "fields": {
                "traineeId": {"type": "string", "label": "Trainee"},
                "site": {"type": "string", "label": "Site"},
                "dateFrom": {"type": "date", "label": "Start date"},
                "dateTo": {"type": "date", "label": "End date"},
                "wte": {"type": "decimal", "label": "Whole time equivalent"},
                "hours": "int",
                "onCall": {"type": "bool", "label": "On call"},
                "confirmedAt": {"type": "datetime", "label": "Confirmed"},
                "updatedAt": "datetime",
            },
        },
        "Person": {"key": "id", "recipient": "id", "fields": {"email": "string"}},
        "Contact": {"key": "id", "fields": {"organisationId": "string", "email": "string"}},
    },
    "channels": {
        "mail": {"kind": "smtp", "from": "noreply@example.org"},
        "text": {"kind": "notify_sms", "template_id": "t-1"},
        "app": {"kind": "inapp"},
        "hook": {"kind": "webhook", "url": "https://example.org/hook", "secret_env": "HOOK"},
    },
    "rules": [
        {
            "name": "placements",
            "entity": "Placement",
            "channels": ["mail", "text", "app", "hook"],
            "template": "default",
        }
    ],
}

REF = EntityRef("tcs", "Placement", "1632184")
CLOSES_AT = datetime(2025, 8, 6, 17, 0, tzinfo=UTC)
TODAY = date(2025, 8, 6)
RECORD: dict[str, Any] = {
    "id": "1632184",
    "traineeId": "47",
    "site": "Leeds General Infirmary",
    "dateFrom": "2025-08-13",
    "dateTo": "2026-02-04",
    "wte": "0.5",
}


def make_config(**overrides: Any) -> Config:
    return parse_config({**BASE, **overrides})


def rule(template: str, channels: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"rule-{template}-{len(channels)}-{len(extra)}",
        "entity": "Placement",
        "channels": channels,
        "template": template,
        **extra,
    }


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def user_templates(tmp_path: Path, files: dict[str, str], rules: list[dict[str, Any]]) -> Config:
    write(tmp_path / "templates", files)
    return make_config(templates="templates", rules=rules)


def problems_of(config: Config, base_dir: Path | None = None) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as caught:
        TemplateSet.load(config, base_dir)
    out: dict[str, list[str]] = {}
    for key, reason in caught.value.problems:
        out.setdefault(key, []).append(reason)
    return out


def updated(fields: dict[str, tuple[Any, Any]], before: dict[str, Any] | None = None) -> NoticeItem:
    after = {**RECORD, **{k: v[1] for k, v in fields.items()}}
    old = before or {**RECORD, **{k: v[0] for k, v in fields.items()}}
    change = Change(REF, Kind.UPDATED, {k: FieldChange(*v) for k, v in fields.items()})
    return NoticeItem(change, old, after)


def whole(kind: Kind, record: dict[str, Any], key: str = "1632190") -> NoticeItem:
    ref = EntityRef("tcs", "Placement", key)
    as_before = kind in (Kind.DELETED, Kind.REMOVED)
    fields = {
        k: FieldChange(v, None) if as_before else FieldChange(None, v)
        for k, v in sorted(record.items())
    }
    before, after = (record, None) if as_before else (None, record)
    return NoticeItem(Change(ref, kind, fields), before, after)


def context(config: Config, items: list[NoticeItem], medium: Medium = "email") -> DigestContext:
    return digest_context(
        config,
        recipient_id="47",
        recipient_name="Tom Jones",
        items=items,
        closes_at=CLOSES_AT,
        today=TODAY,
        channel_medium=medium,
    )


TWO_CHANGES = [
    updated({"dateFrom": ("2025-08-06", "2025-08-13"), "site": ("St James's", RECORD["site"])}),
    whole(Kind.CREATED, {**RECORD, "id": "1632190"}),
]


# --- values in words, by field type, with labels from the config -----------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("dateFrom", "2025-08-06", "6 August 2025"),
        ("dateFrom", "2025-12-25", "25 December 2025"),
        ("confirmedAt", "2025-08-06T13:30:00+00:00", "6 August 2025 at 14:30"),  # BST
        ("confirmedAt", "2025-01-06T08:05:00Z", "6 January 2025 at 08:05"),  # GMT
        ("wte", "0.5", "0.5"),
        ("wte", "12.75", "12.75"),
        ("onCall", True, "Yes"),
        ("onCall", False, "No"),
        ("hours", 40, "40"),
        ("site", "Leeds", "Leeds"),
        ("site", None, "not set"),
        ("site", "", "not set"),
        ("dateFrom", None, "not set"),
        ("undeclared", "2025-08-06", "2025-08-06"),
    ],
)
def test_values_are_formatted_by_their_declared_type(field: str, value: Any, words: str) -> None:
    config = make_config()
    ctx = context(config, [updated({field: ("sentinel", value)})])

    (view,) = ctx.changes[0].fields
    assert view.after == words


def test_labels_and_plain_sentences_come_from_the_config() -> None:
    config = make_config()
    ctx = context(
        config,
        [
            updated(
                {
                    "wte": ("1", "0.5"),
                    "dateFrom": ("2025-08-06", "2025-08-13"),
                    "site": (None, "Leeds"),
                    "dateTo": ("2026-02-04", None),
                    "hours": (37, 40),
                }
            )
        ],
    )

    change = ctx.changes[0]
    assert change.headline == "We have updated your placement 1632184."
    assert change.summary == "We have updated placement 1632184."
    # In the order the config declares the fields, whatever order the change lists them in.
    assert [(f.name, f.label) for f in change.fields] == [
        ("site", "Site"),
        ("dateFrom", "Start date"),
        ("dateTo", "End date"),
        ("wte", "Whole time equivalent"),
        ("hours", "hours"),
    ]
    assert [f.sentence for f in change.fields] == [
        "Site set to Leeds.",
        "Start date changed from 6 August 2025 to 13 August 2025.",
        "End date removed (it was 4 February 2026).",
        "Whole time equivalent changed from 1 to 0.5.",
        "Hours changed from 37 to 40.",
    ]
    assert change.labels["dateFrom"] == "Start date"


@pytest.mark.parametrize(
    ("kind", "headline", "summary"),
    [
        (Kind.CREATED, "We have added placement 9 to your records.", "We have added placement 9."),
        (Kind.DELETED, "We have deleted your placement 9.", "We have deleted placement 9."),
        (
            Kind.ADDED,
            "We have moved placement 9 to your records.",
            "We have changed who placement 9 is for.",
        ),
        (
            Kind.REMOVED,
            "We have removed placement 9 from your records.",
            "We have changed who placement 9 is for.",
        ),
    ],
)
def test_whole_record_changes_are_phrased_by_kind_and_list_what_the_record_holds(
    kind: Kind, headline: str, summary: str
) -> None:
    record = {"id": "9", "traineeId": "47", "site": "Leeds", "dateFrom": "2025-08-13", "wte": None}
    ctx = context(make_config(), [whole(kind, record, key="9")])

    change = ctx.changes[0]
    assert (change.kind, change.headline, change.summary) == (kind.value, headline, summary)
    # The key is in the headline, and a field with no value says nothing.
    assert [f.sentence for f in change.fields] == [
        "Trainee: 47.",
        "Site: Leeds.",
        "Start date: 13 August 2025.",
    ]
    assert [f.is_recipient for f in change.fields] == [True, False, False]


def test_the_whole_record_is_available_in_words() -> None:
    config = make_config()
    item = updated({"site": ("St James's", "Leeds")})
    view = context(config, [item]).changes[0].record

    assert view["dateFrom"] == "13 August 2025"
    assert view["site"] == "Leeds"
    assert view["onCall"] == "not set"  # declared, absent from this record
    with pytest.raises(KeyError):
        view["sitee"]
    assert list(view)[:3] == ["traineeId", "site", "dateFrom"]
    assert "id" in view


def test_closes_at_and_today_are_in_words_in_the_configured_timezone() -> None:
    ctx = context(make_config(), TWO_CHANGES)

    assert ctx.closes_at == "6 August 2025 at 18:00"
    assert ctx.today == "6 August 2025"
    assert (ctx.recipient.id, ctx.recipient.name) == ("47", "Tom Jones")


def test_filters_format_raw_values_like_fields(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {
            "filters.sms.j2": (
                '{{ "2025-08-06"|date }} / {{ "2025-08-06T13:30:00Z"|datetime }} / '
                '{{ "2025-08-06T23:30:00Z"|date }} / {{ true|value }} / {{ none|value }} / '
                '{{ "2025-12-25"|value("date") }}'
            )
        },
        [rule("filters", ["text"])],
    )
    templates = TemplateSet.load(config, tmp_path)

    rendered = templates.render("filters", "sms", context(config, TWO_CHANGES, "sms"))
    assert rendered.text == (
        "6 August 2025 / 6 August 2025 at 14:30 / 7 August 2025 / Yes / not set / 25 December 2025"
    )


# --- the built-in templates --------------------------------------------------------------------


def test_the_default_email_says_what_changed_in_plain_words() -> None:
    config = make_config()
    templates = TemplateSet.load(config)

    rendered = templates.render("default", "email", context(config, TWO_CHANGES))

    assert rendered.subject == "2 updates to your records"
    assert rendered.text is not None
    assert rendered.text.startswith("Hello Tom Jones,\n\nThere have been 2 changes")
    assert "up to 6 August 2025 at 18:00." in rendered.text
    assert "We have updated your placement 1632184.\n" in rendered.text
    assert "- Start date changed from 6 August 2025 to 13 August 2025." in rendered.text
    assert "- Site changed from St James's to Leeds General Infirmary." in rendered.text
    assert "We have added placement 1632190 to your records." in rendered.text
    assert "- End date: 4 February 2026." in rendered.text
    assert "Trainee: 47" not in rendered.text  # a person is not told their own id
    assert "notification preferences" in rendered.text
    assert "\n\n\n" not in rendered.text


def test_a_single_change_is_named_in_the_subject() -> None:
    config = make_config()
    rendered = TemplateSet.load(config).render("default", "email", context(config, TWO_CHANGES[:1]))

    assert rendered.subject == "Update to your placement 1632184"
    assert rendered.text is not None
    assert "There has been 1 change" in rendered.text


def test_the_default_email_html_has_a_plain_accessible_layout() -> None:
    config = make_config()
    html = TemplateSet.load(config).render("default", "email", context(config, TWO_CHANGES)).html

    assert html is not None
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in html
    assert "<title>2 updates to your records</title>" in html
    assert html.count("<h1") == 1
    assert "<h2" in html
    assert "We have updated your placement 1632184." in html
    assert '<th scope="col">Was</th><th scope="col">Now</th>' in html
    assert (
        '<tr><th scope="row">Start date</th><td>6 August 2025</td><td>13 August 2025</td></tr>'
        in html
    )
    assert "<img" not in html
    assert "<footer" in html
    assert "notification preferences" in html
    assert "St James&#39;s" in html  # escaped, as everything in the HTML part is


def test_the_contact_template_tells_a_third_party() -> None:
    config = make_config()
    rendered = TemplateSet.load(config).render("contact", "email", context(config, TWO_CHANGES))

    assert rendered.subject == "2 updates to records linked to you"
    assert rendered.text is not None
    assert "We have updated placement 1632184." in rendered.text
    assert "- Trainee: 47." in rendered.text  # the employer needs to know whose placement
    assert rendered.html is not None
    assert "We have added placement 1632190." in rendered.html


def test_the_default_sms_and_inapp_are_short_and_plain() -> None:
    config = make_config()
    templates = TemplateSet.load(config)

    sms = templates.render("default", "sms", context(config, TWO_CHANGES, "sms"))
    assert sms.text == (
        "Hello Tom Jones. 2 updates to your records:\n"
        "We have updated your placement 1632184.\n"
        "We have added placement 1632190 to your records."
    )
    assert sms.sms is not None
    assert (sms.sms.encoding, sms.sms.segments) == ("GSM-7", 1)
    assert (sms.subject, sms.html, sms.title, sms.body) == (None, None, None, None)

    inapp = templates.render("default", "inapp", context(config, TWO_CHANGES, "inapp"))
    assert inapp.title == "2 updates to your records"
    assert inapp.body is not None
    assert inapp.body.startswith("We have updated your placement 1632184.\n- Site changed")
    assert (inapp.subject, inapp.text, inapp.html, inapp.sms) == (None, None, None, None)


# --- escaping ----------------------------------------------------------------------------------


def test_html_is_autoescaped_and_tags_from_data_are_dropped_everywhere(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {
            "echo.email.j2": (
                "{% block subject %}{{ changes[0].record.site }}{% endblock %}\n"
                "{% block text %}{{ changes[0].record.site }}{% endblock %}\n"
                "{% block html %}<title>{{ subject }}</title>"
                "<p>{{ changes[0].record.site }}</p>{% endblock %}\n"
            ),
            "echo.inapp.j2": (
                "{% block title %}{{ changes[0].record.site }}{% endblock %}"
                "{% block body %}{{ changes[0].record.site }}{% endblock %}"
            ),
            "echo.sms.j2": "{{ changes[0].record.site }}",
        },
        [rule("echo", ["mail", "text", "app"])],
    )
    templates = TemplateSet.load(config, tmp_path)
    # A tag from data is dropped (its text stays); a line break from data becomes a space;
    # what is left is escaped in HTML and shown as it is in plain text.
    items = [updated({"site": ("Leeds", "<b>Tom & Jerry</b>\r\n<3")})]
    shown = "Tom & Jerry <3"

    email = templates.render("echo", "email", context(config, items))
    assert email.subject == shown
    assert email.text == shown
    assert email.html == "<title>Tom &amp; Jerry &lt;3</title><p>Tom &amp; Jerry &lt;3</p>"
    assert templates.render("echo", "sms", context(config, items, "sms")).text == shown
    inapp = templates.render("echo", "inapp", context(config, items, "inapp"))
    assert (inapp.title, inapp.body) == (shown, shown)


def test_the_default_templates_escape_values_and_drop_markup_from_data() -> None:
    config = make_config()
    hostile = "<script>alert(1)</script>Tom & Jerry <3\u001b[2J\nSubject: x"
    items = [updated({"site": ("Leeds", hostile)})]
    templates = TemplateSet.load(config)
    email = templates.render("default", "email", context(config, items))

    assert email.html is not None
    assert "<script" not in email.html
    assert "Tom &amp; Jerry &lt;3" in email.html
    assert email.text is not None
    assert "Site changed from Leeds to alert(1)Tom & Jerry <3 [2J Subject: x." in email.text
    assert "\x1b" not in email.text
    inapp = templates.render("default", "inapp", context(config, items, "inapp"))
    assert "<script" not in (inapp.body or "")
    assert "\r" not in (inapp.body or "")


def test_a_subject_is_one_line(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {
            "lines.email.j2": (
                "{% block subject %}\nTwo\n  lines\r\n{% endblock %}"
                "{% block text %}x{% endblock %}{% block html %}x{% endblock %}"
            )
        },
        [rule("lines", ["mail"])],
    )
    rendered = TemplateSet.load(config, tmp_path).render(
        "lines", "email", context(config, TWO_CHANGES)
    )

    assert rendered.subject == "Two lines"


# --- problems found at load, each with its file and line ----------------------------------------

GOOD_EMAIL = (
    "{% block subject %}Subject{% endblock %}\n"
    "{% block text %}Text{% endblock %}\n"
    "{% block html %}<p>Html</p>{% endblock %}\n"
)


def test_an_undefined_name_is_reported_with_file_and_line(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {
            "placement.email.j2": (
                "{% block subject %}Your placement{% endblock %}\n"
                "{% block text %}\n"
                "Hello {{ recipient.name }},\n"
                "{{ recipient.nmae }}\n"
                "{% endblock %}\n"
                "{% block html %}<p>Hello</p>{% endblock %}\n"
            )
        },
        [rule("placement", ["mail"])],
    )

    problems = problems_of(config, tmp_path)

    assert list(problems) == ["rules.0.template"]
    (reason,) = problems["rules.0.template"]
    assert reason.startswith("placement.email.j2 line 4: ")
    assert "nmae" in reason


def test_a_syntax_error_is_reported_with_file_and_line(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {"placement.sms.j2": "Hello\n{{ recipient.name }\n"},
        [rule("placement", ["text"])],
    )

    (reason,) = problems_of(config, tmp_path)["rules.0.template"]

    assert reason.startswith("placement.sms.j2 line 2: unexpected '}'")


def test_an_error_in_an_included_template_names_that_file(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {
            "placement.sms.j2": "Hello\n{% include 'part.j2' %}\n",
            "part.j2": "one\ntwo {{ nothing.here }}\n",
        },
        [rule("placement", ["text"])],
    )

    (reason,) = problems_of(config, tmp_path)["rules.0.template"]

    assert reason.startswith("part.j2 line 2: ")
    assert "nothing" in reason


def test_a_missing_template_for_a_channels_medium_is_reported(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path, {"placement.email.j2": GOOD_EMAIL}, [rule("placement", ["mail", "text", "hook"])]
    )

    problems = problems_of(config, tmp_path)

    (reason,) = problems["rules.0.template"]
    assert reason.startswith("there is no template placement.sms.j2 (looked in ")
    assert "the built-in templates" in reason


def test_a_webhook_channel_needs_no_template() -> None:
    config = make_config(rules=[rule("nowhere", ["hook"])])

    TemplateSet.load(config)


def test_a_missing_block_is_reported(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {"placement.inapp.j2": "{% block title %}Title{% endblock %}"},
        [rule("placement", ["app"])],
    )

    (reason,) = problems_of(config, tmp_path)["rules.0.template"]

    assert reason == "placement.inapp.j2 has no {% block body %}; a inapp template needs one"


def test_statements_outside_blocks_are_reported_because_they_would_never_run(
    tmp_path: Path,
) -> None:
    config = user_templates(
        tmp_path,
        {"placement.email.j2": "{% set greeting = 'Hi' %}\n" + GOOD_EMAIL},
        [rule("placement", ["mail"])],
    )

    (reason,) = problems_of(config, tmp_path)["rules.0.template"]

    assert reason.startswith("placement.email.j2 line 1: only blocks may stand at the top level")


def test_a_missing_templates_directory_is_reported(tmp_path: Path) -> None:
    config = make_config(templates="nowhere")

    problems = problems_of(config, tmp_path)

    assert problems["templates"] == [f"{tmp_path / 'nowhere'} is not a directory of templates"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {
            "broken.email.j2": "{% block subject %}{% if %}{% endblock %}",
            "typo.inapp.j2": (
                "{% block title %}T{% endblock %}\n{% block body %}{{ chnages }}{% endblock %}"
            ),
            "typo.sms.j2": "{{ recipient.id }}",
        },
        [
            rule("broken", ["mail"]),
            rule("typo", ["app", "text"]),
            rule(
                "default",
                ["mail"],
                contacts={
                    "entity": "Contact",
                    "via": "employerId",
                    "match": "organisationId",
                    "template": "employer",
                },
            ),
        ],
    )

    problems = problems_of(config, tmp_path)

    assert sorted(problems) == ["rules.0.template", "rules.1.template", "rules.2.contacts.template"]
    assert problems["rules.0.template"][0].startswith("broken.email.j2 line 1: ")
    assert problems["rules.1.template"] == ["typo.inapp.j2 line 2: 'chnages' is undefined"]
    assert problems["rules.2.contacts.template"][0].startswith(
        "there is no template employer.email.j2"
    )


def test_the_built_in_templates_load_for_every_medium_and_contacts() -> None:
    contacts = {"entity": "Contact", "via": "employerId", "match": "organisationId"}
    config = make_config(
        rules=[
            rule("default", ["mail", "text", "app"], contacts={**contacts, "template": "contact"}),
            {**rule("contact", ["mail", "text", "app"]), "entity": "Person"},
        ]
    )

    TemplateSet.load(config)


# --- the sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "recipient.__class__.__init__.__globals__",
        "changes[0].record._record",
        "(changes|list).append(1)",
        "dict(a=1).update(b=2)",
        "changes[0].fields[0]._asdict()",
    ],
)
def test_the_sandbox_blocks_attribute_tricks_at_load(tmp_path: Path, expression: str) -> None:
    config = user_templates(
        tmp_path, {"evil.sms.j2": f"Hi\n{{{{ {expression} }}}}"}, [rule("evil", ["text"])]
    )

    (reason,) = problems_of(config, tmp_path)["rules.0.template"]

    assert reason.startswith("evil.sms.j2 line 2: ")
    assert "unsafe" in reason or "not safely callable" in reason


def test_the_sandbox_blocks_attribute_tricks_at_render(tmp_path: Path) -> None:
    # A template no rule uses is compiled on first use, and not tried at load.
    write(tmp_path / "templates", {"evil.sms.j2": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    config = make_config(templates="templates")
    templates = TemplateSet.load(config, tmp_path)

    with pytest.raises(TemplateRenderError) as caught:
        templates.render("evil", "sms", context(config, TWO_CHANGES, "sms"))

    assert isinstance(caught.value.__cause__, SecurityError)
    assert str(caught.value).startswith("evil.sms.j2 line 1: ")


def test_a_failure_on_real_data_names_the_file_and_line(tmp_path: Path) -> None:
    # Sample data has five changes, so the branch for one is not tried at load.
    config = user_templates(
        tmp_path,
        {
            "one.sms.j2": (
                "Hi\n{% if changes|length == 1 %}\n{{ changes[0].record.sitee }}{% endif %}"
            )
        },
        [rule("one", ["text"])],
    )
    templates = TemplateSet.load(config, tmp_path)

    with pytest.raises(TemplateRenderError, match=r"^one\.sms\.j2 line 3: "):
        templates.render("one", "sms", context(config, TWO_CHANGES[:1], "sms"))


# --- the template directory ---------------------------------------------------------------------


def test_a_user_template_overrides_the_built_in_one(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {"default.sms.j2": "{{ changes|length }} changes for {{ recipient.name }}"},
        [rule("default", ["mail", "text"])],
    )
    templates = TemplateSet.load(config, tmp_path)

    assert templates.render("default", "sms", context(config, TWO_CHANGES, "sms")).text == (
        "2 changes for Tom Jones"
    )
    # The media the directory does not override still come from the built-ins.
    assert templates.render("default", "email", context(config, TWO_CHANGES)).subject == (
        "2 updates to your records"
    )


def test_a_template_can_extend_a_built_in_one_and_override_a_block(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {
            "placement.email.j2": (
                '{% extends "default.email.j2" %}\n'
                "{% block subject %}Placement news: {{ super() }}{% endblock %}\n"
            )
        },
        [rule("placement", ["mail"])],
    )

    rendered = TemplateSet.load(config, tmp_path).render(
        "placement", "email", context(config, TWO_CHANGES)
    )

    assert rendered.subject == "Placement news: 2 updates to your records"
    assert rendered.text is not None
    assert rendered.text.startswith("Hello Tom Jones,")
    assert rendered.html is not None
    assert "<title>Placement news: 2 updates to your records</title>" in rendered.html


def test_an_absolute_templates_directory_needs_no_base(tmp_path: Path) -> None:
    folder = write(tmp_path / "abs", {"x.sms.j2": "X"})
    config = make_config(templates=str(folder), rules=[rule("x", ["text"])])

    assert TemplateSet.load(config).render("x", "sms", context(config, TWO_CHANGES)).text == "X"


# --- SMS length ------------------------------------------------------------------------------


def test_an_sms_over_three_segments_carries_a_warning(tmp_path: Path) -> None:
    config = user_templates(
        tmp_path,
        {"long.sms.j2": "{% for c in changes %}{{ c.headline }} {{ c.headline }}\n{% endfor %}"},
        [rule("long", ["text"])],
    )
    templates = TemplateSet.load(config, tmp_path)
    items = [whole(Kind.CREATED, {**RECORD, "id": str(n)}, key=str(n)) for n in range(6)]

    rendered = templates.render("long", "sms", context(config, items, "sms"))

    assert rendered.sms is not None
    assert rendered.sms.segments > 3
    assert rendered.warnings == (rendered.sms.warning,)
    short = templates.render("long", "sms", context(config, items[:1], "sms"))
    assert short.warnings == ()


# --- sample data and previews ------------------------------------------------------------------


def test_sample_items_cover_every_kind_with_declared_fields_deterministically() -> None:
    config = make_config()

    items = sample_items(config, "Placement")

    assert [i.change.kind for i in items] == [
        Kind.CREATED,
        Kind.UPDATED,
        Kind.DELETED,
        Kind.ADDED,
        Kind.REMOVED,
    ]
    assert items == sample_items(config, "Placement")
    created = items[0].after
    assert created is not None
    assert created["dateFrom"] == "2025-08-13"
    assert created["onCall"] is True
    assert "updatedAt" not in created  # ignored fields are never told
    assert list(items[1].change.fields) == ["site", "dateFrom", "dateTo"]
    assert items[1].change.fields["dateTo"].before is None
    assert items[3].before is not None
    assert items[3].before["traineeId"] != items[3].change.fields["traineeId"].after


def test_sample_items_work_for_an_entity_without_declared_fields() -> None:
    items = sample_items(make_config(), "Unknown")

    assert items[1].change.fields == {"status": FieldChange("Active", "Closed")}


@pytest.mark.parametrize("medium", ["email", "sms", "inapp"])
@pytest.mark.parametrize("name", ["default", "contact"])
def test_render_preview_renders_every_built_in_on_sample_data(name: str, medium: Medium) -> None:
    config = make_config()
    templates = TemplateSet.load(config)

    rendered = render_preview(templates, config, name, medium)

    if medium == "email":
        assert rendered.subject
        assert "\n" not in rendered.subject
        assert rendered.text
        assert rendered.text.startswith("Hello Sam Taylor,")
        assert "6 August 2025" in rendered.text
        assert rendered.html
        assert "Sam Taylor" in rendered.html
    elif medium == "sms":
        assert rendered.text
        assert rendered.text.startswith("Hello Sam Taylor.")
        assert rendered.sms is not None
        assert rendered.sms.encoding == "GSM-7"
        assert rendered.sms.segments <= 3
    else:
        assert rendered.title
        assert rendered.body
        assert "placement 1002" in rendered.body


def test_render_preview_of_a_missing_template_is_a_config_error() -> None:
    config = make_config()

    with pytest.raises(ConfigError, match=r"there is no template nothing\.sms\.j2"):
        render_preview(TemplateSet.load(config), config, "nothing", "sms")


def test_render_preview_uses_the_entity_of_the_rule_using_the_template() -> None:
    config = make_config(rules=[{**rule("default", ["app"]), "entity": "Person"}])

    rendered = render_preview(TemplateSet.load(config), config, "default", "inapp")

    assert rendered.body is not None
    assert "personal details" not in rendered.body  # Person has no label: its name is used
    assert "We have updated your person 1002." in rendered.body


def test_webhook_has_no_template_to_render() -> None:
    config = make_config()

    with pytest.raises(ConfigError, match="webhook"):
        TemplateSet.load(config).render("default", "webhook", context(config, TWO_CHANGES))
