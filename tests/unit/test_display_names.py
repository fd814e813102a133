"""Records named the way people know them (an entity type's ``display``) and amounts shown
with their declared places and currency, in every message; and the config checks for both."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import pytest

from tests.unit.test_templates import BASE, RECORD, REF, context
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.model import Change, FieldChange, Kind, NoticeItem
from tidings.templates import TemplateSet
from tidings.templates.formatting import amount_text


def _config(**placement: Any) -> Any:
    data = deepcopy(BASE)
    data["entities"]["Placement"].update(placement)
    return parse_config(data)


def _updated(before: dict[str, Any], after: dict[str, Any]) -> NoticeItem:
    fields = {
        k: FieldChange(before.get(k), after.get(k)) for k in after if before.get(k) != after.get(k)
    }
    return NoticeItem(Change(REF, Kind.UPDATED, fields), before, after)


def test_subjects_and_headlines_name_the_record_by_its_display() -> None:
    config = _config(display="placement at {{ site }} from {{ dateFrom }}")
    item = _updated(RECORD, {**RECORD, "dateTo": "2026-03-04"})
    rendered = TemplateSet.load(config).render("default", "email", context(config, [item]))
    assert rendered.subject == (
        "Update to your placement at Leeds General Infirmary from 13 August 2025"
    )
    assert "1632184" not in rendered.subject


def test_without_a_display_or_with_an_empty_one_the_label_and_key_name_it() -> None:
    plain = context(_config(), [_updated(RECORD, {**RECORD, "site": "York"})])
    assert plain.changes[0].name == "placement 1632184"
    blank = _config(display="{% if false %}x{% endif %}")
    assert context(blank, [_updated(RECORD, {**RECORD, "site": "York"})]).changes[0].name == (
        "placement 1632184"
    )


def test_a_field_the_record_lacks_reads_not_set_in_the_name() -> None:
    config = _config(display="placement at {{ site }}")
    record = {k: v for k, v in RECORD.items() if k != "site"}
    item = NoticeItem(Change(REF, Kind.CREATED, {}), None, record)
    assert context(config, [item]).changes[0].name == "placement at not set"


def test_amounts_keep_their_declared_places_and_currency() -> None:
    data = deepcopy(BASE)
    fields = data["entities"]["Placement"]["fields"]
    fields["wte"] = {"type": "decimal", "label": "Whole time equivalent", "places": 2}
    fields["price"] = {"type": "decimal", "label": "Price", "currency": "GBP"}
    config = parse_config(data)
    item = _updated(
        {**RECORD, "wte": "1", "price": "30"}, {**RECORD, "wte": "0.5", "price": "1234.5"}
    )
    sentences = [f.sentence for f in context(config, [item]).changes[0].fields]
    assert "Whole time equivalent changed from 1.00 to 0.50." in sentences
    assert "Price changed from £30.00 to £1,234.50." in sentences
    assert amount_text("-3.1", None, "EUR") == "-€3.10"
    assert amount_text("7", 0, "CHF") == "7 CHF"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"display": "{{ sitee }}"}, "display names 'sitee', not a declared field"),
        ({"display": "{{ site "}, "the display template does not parse"),
    ],
)
def test_a_bad_display_is_a_config_error(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _config(**change)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"type": "string", "places": 2}, "decimal and int fields only"),
        ({"type": "decimal", "currency": "pounds"}, "is not a currency code"),
        ({"type": "decimal", "places": 11}, "less than or equal to 10"),
    ],
)
def test_bad_amount_settings_are_config_errors(spec: dict[str, Any], problem: str) -> None:
    data = deepcopy(BASE)
    data["entities"]["Placement"]["fields"]["price"] = spec
    with pytest.raises(ConfigError, match=problem):
        parse_config(data)


def test_the_headline_says_the_display_name() -> None:
    config = _config(display="placement at {{ site }}")
    built = context(config, [_updated(RECORD, {**RECORD, "site": "York"})])
    assert built.changes[0].headline == "We have updated your placement at York."
