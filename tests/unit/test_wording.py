"""Net changes in plain words, with the labels and field types from the config."""

from __future__ import annotations

import pytest

from tests.conftest import PLACEMENT_CONFIG
from tidings.config import parse_config
from tidings.model import Change, Digest, EntityRef, FieldChange, Kind
from tidings.wording import describe, describe_digest, format_value

CONFIG = parse_config(PLACEMENT_CONFIG)
PLACEMENT = CONFIG.entities["Placement"]
REF = EntityRef("tis", "Placement", "1632184")


def change(kind: Kind, **fields: tuple[object, object]) -> Change:
    return Change(REF, kind, {k: FieldChange(*v) for k, v in fields.items()})


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("dateFrom", "2025-08-06", "6 August 2025"),
        ("dateFrom", "2025-12-25", "25 December 2025"),
        ("updatedAt", "2025-08-06T08:30:00+00:00", "6 August 2025 at 09:30"),  # BST
        ("updatedAt", "2025-01-06T08:30:00+00:00", "6 January 2025 at 08:30"),  # GMT
        ("onCall", True, "Yes"),
        ("onCall", False, "No"),
        ("wte", "0.5", "0.5"),
        ("hours", 40, "40"),
        ("site", "Leeds", "Leeds"),
        ("site", None, "not set"),
        ("site", "", "not set"),
        ("undeclared", "2025-08-06", "2025-08-06"),
    ],
)
def test_format_value_by_field_type(field: str, value: object, words: str) -> None:
    assert format_value(PLACEMENT, field, value, CONFIG) == words


# --- describe ---------------------------------------------------------------------------------


def test_updated_says_what_each_field_is_now_and_was_with_labels_and_dates() -> None:
    lines = describe(
        change(
            Kind.UPDATED,
            dateFrom=("2025-08-06", "2025-08-13"),
            site=("Leeds", None),
            wte=("1", "0.5"),
        ),
        CONFIG,
    )

    assert lines == [
        "Placement 1632184 has changed:",
        "  Start date is now 13 August 2025 (was 6 August 2025).",
        "  Site is now not set (was Leeds).",
        "  Whole time equivalent is now 0.5 (was 1).",
    ]


def test_a_field_without_a_label_is_named_by_its_field_name() -> None:
    lines = describe(change(Kind.UPDATED, traineeId=("A", "B")), CONFIG)

    assert lines[1] == "  traineeId is now B (was A)."


def test_created_lists_fields_that_have_values() -> None:
    lines = describe(
        change(
            Kind.CREATED, dateFrom=(None, "2025-08-06"), grade=(None, None), site=(None, "York")
        ),
        CONFIG,
    )

    assert lines == [
        "Placement 1632184 was added.",
        "  Start date: 6 August 2025",
        "  Site: York",
    ]


def test_added_tells_the_new_recipient_it_is_theirs_with_its_fields() -> None:
    lines = describe(change(Kind.ADDED, site=(None, "York")), CONFIG)

    assert lines == ["Placement 1632184 is now yours.", "  Site: York"]


def test_deleted_and_removed_are_a_single_headline() -> None:
    fields = {"site": ("Leeds", None), "dateFrom": ("2025-08-06", None)}

    assert describe(change(Kind.DELETED, **fields), CONFIG) == ["Placement 1632184 was removed."]
    assert describe(change(Kind.REMOVED, **fields), CONFIG) == [
        "Placement 1632184 is no longer yours."
    ]


def test_an_entity_type_not_in_the_config_is_named_by_its_type() -> None:
    other = Change(EntityRef("hr", "Vacancy", "9"), Kind.UPDATED, {"x": FieldChange(1, 2)})

    assert describe(other, CONFIG) == ["Vacancy 9 has changed:", "  x is now 2 (was 1)."]


def test_headline_keeps_the_capitals_of_the_label() -> None:
    config = parse_config({"entities": {"FormR": {"label": "ARCP form"}}})
    form = Change(EntityRef("tis", "FormR", "7"), Kind.DELETED, {})

    assert describe(form, config) == ["ARCP form 7 was removed."]


def test_digest_in_words_names_the_recipient_and_indents_each_change() -> None:
    digest = Digest(
        "trainee-A",
        (
            change(Kind.UPDATED, dateFrom=("2025-08-06", "2025-08-13")),
            Change(EntityRef("tis", "Person", "A"), Kind.UPDATED, {"email": FieldChange("a", "b")}),
        ),
    )

    assert describe_digest(digest, CONFIG) == "\n".join(
        [
            "What changed for trainee-A:",
            "  Placement 1632184 has changed:",
            "    Start date is now 13 August 2025 (was 6 August 2025).",
            "  Person A has changed:",
            "    email is now b (was a).",
        ]
    )
