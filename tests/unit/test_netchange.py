"""Net change: diff(baseline, current) over non-ignored fields, addressed to recipients."""

from __future__ import annotations

from tests.conftest import PLACEMENT_CONFIG
from tidings.config import EntityType, parse_config
from tidings.ledger.fold import Step, fold
from tidings.ledger.netchange import changes_by_recipient, diff, recipient_of
from tidings.model import Change, Digest, EntityRef, FieldChange, Kind, digests_of

CONFIG = parse_config(PLACEMENT_CONFIG)
PLACEMENT = CONFIG.entities["Placement"]  # recipient traineeId; ignores updatedAt, amendedBy
PERSON = CONFIG.entities["Person"]  # recipient is the key field "id"
REF = EntityRef("tis", "Placement", "P1")
PERSON_REF = EntityRef("tis", "Person", "T9")


# --- diff -------------------------------------------------------------------------------------


def test_absent_to_absent_is_nothing() -> None:
    assert diff(PLACEMENT, None, None) is None


def test_created_lists_every_non_ignored_field_with_before_null_sorted_by_name() -> None:
    after = {"site": "Leeds", "updatedAt": "x", "dateFrom": "2025-08-06", "traineeId": "A"}

    kind, fields = diff(PLACEMENT, None, after) or (None, {})

    assert kind is Kind.CREATED
    assert list(fields) == ["dateFrom", "site", "traineeId"]
    assert fields["site"] == FieldChange(None, "Leeds")
    assert all(fc.before is None for fc in fields.values())


def test_deleted_lists_every_non_ignored_field_with_after_null_sorted_by_name() -> None:
    before = {"wte": "1", "amendedBy": "admin", "site": "Leeds", "dateTo": "2026-08-05"}

    kind, fields = diff(PLACEMENT, before, None) or (None, {})

    assert kind is Kind.DELETED
    assert list(fields) == ["dateTo", "site", "wte"]
    assert fields["wte"] == FieldChange("1", None)
    assert all(fc.after is None for fc in fields.values())


def test_updated_lists_only_the_fields_that_differ_sorted_by_name() -> None:
    before = {"site": "Leeds", "grade": "F1", "wte": "1", "dateFrom": "2025-08-06"}
    after = {"site": "York", "grade": "F1", "wte": "0.5", "dateFrom": "2025-08-06"}

    assert diff(PLACEMENT, before, after) == (
        Kind.UPDATED,
        {"site": FieldChange("Leeds", "York"), "wte": FieldChange("1", "0.5")},
    )


def test_updated_fields_come_out_sorted_whatever_the_record_order() -> None:
    before = {"z": 1, "m": 1, "a": 1}
    after = {"a": 2, "z": 2, "m": 2}

    _, fields = diff(PLACEMENT, before, after) or (None, {})

    assert list(fields) == ["a", "m", "z"]


def test_a_missing_field_equals_a_null_field() -> None:
    assert diff(PLACEMENT, {"site": "A", "grade": None}, {"site": "A"}) is None
    assert diff(PLACEMENT, {"site": "A"}, {"site": "A", "grade": None}) is None


def test_a_field_added_or_removed_with_a_value_is_an_update_from_or_to_null() -> None:
    assert diff(PLACEMENT, {"site": "A"}, {"site": "A", "grade": "F1"}) == (
        Kind.UPDATED,
        {"grade": FieldChange(None, "F1")},
    )
    assert diff(PLACEMENT, {"site": "A", "grade": "F1"}, {"site": "A"}) == (
        Kind.UPDATED,
        {"grade": FieldChange("F1", None)},
    )


def test_edits_to_ignored_fields_only_are_nothing() -> None:
    before = {"site": "A", "updatedAt": "2025-08-06T09:00:00+00:00", "amendedBy": "x"}
    after = {"site": "A", "updatedAt": "2025-08-07T09:00:00+00:00"}

    assert diff(PLACEMENT, before, after) is None


def test_ignored_fields_are_left_out_of_an_update_that_has_real_changes() -> None:
    before = {"site": "A", "updatedAt": "t1"}
    after = {"site": "B", "updatedAt": "t2"}

    assert diff(PLACEMENT, before, after) == (Kind.UPDATED, {"site": FieldChange("A", "B")})


def test_a_reverted_edit_is_nothing() -> None:
    before = {"site": "A", "grade": "F1"}
    steps = [Step("e2", 2, "patch", {"site": "B"}), Step("e3", 3, "patch", {"site": "A"})]

    folded = fold(before, 1, steps)

    assert diff(PLACEMENT, folded.baseline, folded.current) is None


def test_created_then_deleted_is_nothing() -> None:
    steps = [Step("e1", 1, "upsert", {"site": "A"}), Step("e2", 2, "delete", None)]

    folded = fold(None, None, steps)

    assert diff(PLACEMENT, folded.baseline, folded.current) is None


def test_a_load_is_nobody_s_news() -> None:
    folded = fold(None, None, [Step("e1", 1, "load", {"traineeId": "A", "site": "Leeds"})])

    assert diff(PLACEMENT, folded.baseline, folded.current) is None


def test_present_to_empty_record_is_an_update_not_a_delete() -> None:
    assert diff(PLACEMENT, {"site": "A"}, {}) == (Kind.UPDATED, {"site": FieldChange("A", None)})


def test_created_with_only_ignored_fields_is_still_created_with_no_fields() -> None:
    assert diff(PLACEMENT, None, {"updatedAt": "t"}) == (Kind.CREATED, {})


# --- recipients -------------------------------------------------------------------------------


def test_recipient_is_the_recipient_field_as_text() -> None:
    assert recipient_of(PLACEMENT, REF, {"traineeId": "A"}) == "A"
    assert recipient_of(PLACEMENT, REF, {"traineeId": 42}) == "42"


def test_no_recipient_when_absent_null_or_not_configured() -> None:
    assert recipient_of(PLACEMENT, REF, None) is None
    assert recipient_of(PLACEMENT, REF, {"site": "A"}) is None
    assert recipient_of(PLACEMENT, REF, {"traineeId": None}) is None
    assert recipient_of(EntityType(name="X"), REF, {"traineeId": "A"}) is None


def test_recipient_equal_to_the_key_field_falls_back_to_the_entity_key() -> None:
    assert recipient_of(PERSON, PERSON_REF, {"email": "a@example.org"}) == "T9"
    assert recipient_of(PERSON, PERSON_REF, {"id": None, "email": "a@example.org"}) == "T9"
    assert recipient_of(PERSON, PERSON_REF, {"id": "T9"}) == "T9"


def test_address_tells_the_recipient_of_an_update() -> None:
    before = {"traineeId": "A", "site": "Leeds"}
    after = {"traineeId": "A", "site": "York"}

    changes, changed = changes_by_recipient(PLACEMENT, REF, before, after)

    assert changed is True
    assert changes == [
        ("A", Change(REF, Kind.UPDATED, {"site": FieldChange("Leeds", "York")})),
    ]


def test_address_of_no_net_change_is_empty_and_unchanged() -> None:
    record = {"traineeId": "A", "site": "Leeds"}

    assert changes_by_recipient(PLACEMENT, REF, record, {**record, "updatedAt": "t"}) == ([], False)
    assert changes_by_recipient(PLACEMENT, REF, None, None) == ([], False)


def test_address_of_created_goes_to_the_new_recipient() -> None:
    after = {"traineeId": "B", "site": "York"}

    changes, changed = changes_by_recipient(PLACEMENT, REF, None, after)

    assert changed is True
    assert [(r, c.kind) for r, c in changes] == [("B", Kind.CREATED)]


def test_address_of_deleted_goes_to_the_old_recipient() -> None:
    before = {"traineeId": "A", "site": "Leeds"}

    changes, _ = changes_by_recipient(PLACEMENT, REF, before, None)

    assert [(r, c.kind) for r, c in changes] == [("A", Kind.DELETED)]
    assert changes[0][1].fields == {
        "site": FieldChange("Leeds", None),
        "traineeId": FieldChange("A", None),
    }


def test_address_of_a_record_naming_nobody_has_recipient_none() -> None:
    changes, changed = changes_by_recipient(PLACEMENT, REF, None, {"site": "York"})

    assert changed is True
    assert [(r, c.kind) for r, c in changes] == [(None, Kind.CREATED)]


def test_recipient_change_tells_the_old_one_removed_and_the_new_one_added() -> None:
    before = {"traineeId": "A", "site": "Leeds", "updatedAt": "t1"}
    after = {"traineeId": "B", "site": "Leeds", "grade": "F2", "updatedAt": "t2"}

    changes, changed = changes_by_recipient(PLACEMENT, REF, before, after)

    assert changed is True
    assert changes == [
        (
            "A",
            Change(
                REF,
                Kind.REMOVED,
                {"site": FieldChange("Leeds", None), "traineeId": FieldChange("A", None)},
            ),
        ),
        (
            "B",
            Change(
                REF,
                Kind.ADDED,
                {
                    "grade": FieldChange(None, "F2"),
                    "site": FieldChange(None, "Leeds"),
                    "traineeId": FieldChange(None, "B"),
                },
            ),
        ),
    ]
    assert list(changes[1][1].fields) == ["grade", "site", "traineeId"]


def test_recipient_null_before_gives_only_added() -> None:
    before = {"traineeId": None, "site": "Leeds"}
    after = {"traineeId": "B", "site": "Leeds"}

    changes, changed = changes_by_recipient(PLACEMENT, REF, before, after)

    assert changed is True
    assert changes == [
        (
            "B",
            Change(
                REF,
                Kind.ADDED,
                {"site": FieldChange(None, "Leeds"), "traineeId": FieldChange(None, "B")},
            ),
        )
    ]


def test_recipient_null_after_gives_only_removed() -> None:
    before = {"traineeId": "A", "site": "Leeds"}
    after = {"site": "Leeds"}

    changes, _ = changes_by_recipient(PLACEMENT, REF, before, after)

    assert [(r, c.kind) for r, c in changes] == [("A", Kind.REMOVED)]


def test_recipient_is_the_key_when_the_key_field_is_the_recipient() -> None:
    changes, _ = changes_by_recipient(PERSON, PERSON_REF, {"email": "a@x"}, {"email": "b@x"})

    assert changes == [
        ("T9", Change(PERSON_REF, Kind.UPDATED, {"email": FieldChange("a@x", "b@x")})),
    ]


# --- digests ----------------------------------------------------------------------------------


def _change(source: str, entity: str, key: str, kind: Kind = Kind.UPDATED) -> Change:
    return Change(EntityRef(source, entity, key), kind, {"f": FieldChange(1, 2)})


def test_digests_group_by_recipient_sorted_by_recipient() -> None:
    result = digests_of(
        [
            ("carol", _change("tis", "Placement", "1")),
            ("alice", _change("tis", "Placement", "2")),
            ("bob", _change("tis", "Placement", "3")),
            ("alice", _change("tis", "Placement", "4")),
        ]
    )

    assert [d.recipient for d in result] == ["alice", "bob", "carol"]
    assert [c.ref.key for c in result[0].changes] == ["2", "4"]
    assert all(isinstance(d, Digest) for d in result)


def test_digest_changes_sort_by_source_then_entity_then_key() -> None:
    addressed = [
        ("a", _change("tis", "Placement", "2")),
        ("a", _change("hr", "Person", "9")),
        ("a", _change("tis", "Person", "5")),
        ("a", _change("tis", "Placement", "10")),
        ("a", _change("hr", "Placement", "1")),
    ]

    (digest,) = digests_of(addressed)

    assert [(c.ref.source, c.ref.entity, c.ref.key) for c in digest.changes] == [
        ("hr", "Person", "9"),
        ("hr", "Placement", "1"),
        ("tis", "Person", "5"),
        ("tis", "Placement", "10"),  # keys are text: "10" sorts before "2"
        ("tis", "Placement", "2"),
    ]


def test_digest_order_does_not_depend_on_input_order() -> None:
    addressed = [
        ("b", _change("tis", "Placement", "2")),
        ("a", _change("tis", "Placement", "1")),
        ("b", _change("tis", "Person", "1")),
    ]

    assert digests_of(addressed) == digests_of(list(reversed(addressed)))


def test_no_addressed_changes_give_no_digests() -> None:
    assert digests_of([]) == ()


def test_digest_to_json_is_plain_data() -> None:
    (digest,) = digests_of([("a", _change("tis", "Placement", "1", Kind.CREATED))])

    assert digest.to_json() == {
        "recipient": "a",
        "changes": [
            {
                "source": "tis",
                "entity": "Placement",
                "key": "1",
                "kind": "created",
                "fields": {"f": {"before": 1, "after": 2}},
            }
        ],
    }
