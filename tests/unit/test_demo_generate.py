"""The demo's synthetic region and day of work: deterministic, realistic, messy, honest."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from tidings.config import Config, FieldType, load_config
from tidings.demo import forms
from tidings.demo import generate as g
from tidings.errors import InputError
from tidings.fieldtypes import RecordNormaliser
from tidings.ledger.fold import Step, fold
from tidings.ledger.netchange import changes_by_recipient
from tidings.model import ChangeEvent, EntityRef, Kind, Op, Skip
from tidings.sources import dms, native

LONDON = ZoneInfo("Europe/London")
DAY = date(2025, 10, 14)
BOOTSTRAP_AT = datetime(2025, 10, 13, 18, 0, tzinfo=LONDON)
BOOTSTRAP_SEQ = (BOOTSTRAP_AT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
DMS_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(g.CONFIG_PATH)


@pytest.fixture(scope="module")
def region() -> g.Region:
    return g.generate_region()


@pytest.fixture(scope="module")
def bootstrap(region: g.Region) -> list[str]:
    return g.bootstrap_lines(region, BOOTSTRAP_AT)


@pytest.fixture(scope="module")
def work(region: g.Region) -> g.DayOfWork:
    return g.day_of_work(region, DAY)


def _parse_native(lines: list[str], config: Config) -> tuple[list[ChangeEvent], int, int]:
    """The valid events, and how many lines were not JSON or not valid native events."""
    events: list[ChangeEvent] = []
    non_json = malformed = 0
    for line in lines:
        raw = line.encode()
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            non_json += 1
            continue
        try:
            events.append(native.parse(record, raw, config))
        except InputError:
            malformed += 1
    return events, non_json, malformed


# --- Configuration ----------------------------------------------------------------------------


def test_demo_config_loads_and_agrees_with_the_generator(config: Config) -> None:
    assert config.timezone == "Europe/London"
    assert config.window.cutoff == "18:00"
    assert config.store.url.endswith("/tidings-demo.db")
    assert set(config.entities) == set(g.ENTITIES) | set(forms.FORM_ENTITIES)
    labels = {g.PERSON: "personal details", g.MEMBERSHIP: "programme membership"}
    labels[g.PLACEMENT] = "placement"
    for name in g.ENTITIES:
        etype = config.entities[name]
        assert etype.label == labels[name]
        assert etype.key == "id"
        assert etype.recipient == g.RECIPIENT[name]
        assert etype.ignore == g.IGNORED[name]
        assert etype.fields, name
        for field, spec in etype.fields.items():
            assert spec.label, f"{name}.{field} has no label"
            assert spec.label != field, f"{name}.{field} has no human label"
            is_date = spec.type is FieldType.DATE
            assert is_date == (field in g.DATE_FIELDS), field
            assert (spec.type is FieldType.DECIMAL) == (field in g.DECIMAL_FIELDS), field
    assert config.entities[g.PLACEMENT].label_of("dateFrom") == "Start date"
    assert config.entities[g.PLACEMENT].label_of("wte") == "Whole time equivalent"


# --- The region -------------------------------------------------------------------------------


def test_region_has_every_trainee_with_memberships_and_placements(region: g.Region) -> None:
    assert len(region.people) == 2000
    people = {p["id"] for p in region.people}
    assert len(people) == 2000
    memberships: dict[str | None, int] = defaultdict(int)
    placements: dict[str | None, int] = defaultdict(int)
    for m in region.memberships:
        memberships[m["personId"]] += 1
    for p in region.placements:
        placements[p["traineeId"]] += 1
    assert set(memberships) == set(placements) == people
    assert set(memberships.values()) == {1, 2}
    assert set(placements.values()) == {2, 3, 4}
    for entity in g.ENTITIES:
        ids = [r["id"] for r in region.records(entity)]
        assert len(set(ids)) == len(ids), entity


def test_region_values_look_like_nhs_training_records(region: g.Region) -> None:
    assert {p["wte"] for p in region.placements} <= {"1.0", "0.8", "0.6", "0.5"}
    grades = {p["grade"] for p in region.placements}
    assert {"F1", "F2", "CT1", "ST3"} <= grades
    specialties = {p["specialty"] for p in region.placements}
    assert {"General Practice", "Cardiology", "Paediatrics"} <= specialties
    sites = {p["site"] for p in region.placements}
    assert "Royal Sussex County Hospital" in sites
    assert len(sites) > 20
    for p in region.placements:
        assert date.fromisoformat(str(p["dateFrom"])) < date.fromisoformat(str(p["dateTo"]))
    for m in region.memberships:
        assert date.fromisoformat(str(m["startDate"])) < date.fromisoformat(str(m["endDate"]))
    for person in region.people:
        date.fromisoformat(str(person["dateOfBirth"]))
        assert re.fullmatch(r"\d{7}", str(person["gmcNumber"]))
        assert "@" in str(person["email"])
        assert str(person["mobile"]).startswith("07")


def test_same_seed_same_everything(region: g.Region, bootstrap: list[str]) -> None:
    again = g.generate_region()
    assert again == region
    assert g.bootstrap_lines(again, BOOTSTRAP_AT) == bootstrap
    first, second = g.day_of_work(region, DAY), g.day_of_work(again, DAY)
    assert first.native_lines == second.native_lines
    assert first.dms_lines == second.dms_lines
    assert first.expected == second.expected


def test_other_seeds_and_days_differ(region: g.Region, work: g.DayOfWork) -> None:
    assert g.generate_region(seed=8, trainees=50).people != g.generate_region(trainees=50).people
    assert g.day_of_work(region, DAY, seed=8).native_lines != work.native_lines
    assert g.day_of_work(region, DAY + timedelta(days=1)).native_lines != work.native_lines


def test_small_regions_work_and_tiny_ones_are_refused() -> None:
    small = g.generate_region(trainees=g.MIN_TRAINEES)
    work = g.day_of_work(small, DAY)
    assert len(work.expected.bursts) == 5
    with pytest.raises(ValueError, match="trainees"):
        g.generate_region(trainees=g.MIN_TRAINEES - 1)


# --- The bootstrap ----------------------------------------------------------------------------


def test_bootstrap_loads_every_record(
    region: g.Region, bootstrap: list[str], config: Config
) -> None:
    events, non_json, malformed = _parse_native(bootstrap, config)
    assert (non_json, malformed) == (0, 0)
    total = len(region.people) + len(region.memberships) + len(region.placements)
    assert len(events) == len(bootstrap) == total
    assert {e.op for e in events} == {Op.LOAD}
    assert {e.source for e in events} == {"tcs"}
    assert {e.seq for e in events} == {BOOTSTRAP_SEQ}
    assert {e.at for e in events} == {BOOTSTRAP_AT}
    assert len({e.id for e in events}) == total
    assert len({e.ref for e in events}) == total
    for event in events:
        assert event.data is not None
        assert event.data["id"] == event.key
        RecordNormaliser(config.entities[event.entity], config.tz)(event.data)


def test_bootstrap_needs_an_aware_time(region: g.Region) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        g.bootstrap_lines(region, datetime(2025, 10, 13, 18, 0))


# --- The day of work: native lines ------------------------------------------------------------


def test_exactly_one_non_json_and_one_malformed_line_in_the_middle(
    work: g.DayOfWork, config: Config
) -> None:
    expected = work.expected
    assert len(work.native_lines) == expected.native_lines
    assert (expected.non_json_lines, expected.malformed_lines, expected.bad_lines) == (1, 1, 2)
    events, non_json, malformed = _parse_native(work.native_lines, config)
    assert (non_json, malformed) == (1, 1)
    assert len(events) == expected.native_lines - 2
    bad = [i for i, line in enumerate(work.native_lines) if '"seq"' not in line]
    bad += [i for i, line in enumerate(work.native_lines) if not line.endswith("}")]
    assert len(bad) == 2
    for index in bad:
        assert 0.3 < index / len(work.native_lines) < 0.7


def test_native_events_fall_in_the_working_day_after_the_bootstrap(
    work: g.DayOfWork, config: Config
) -> None:
    events, _, _ = _parse_native(work.native_lines, config)
    opens = datetime.combine(DAY, time(8, 0), tzinfo=LONDON)
    closes = datetime.combine(DAY, time(17, 30), tzinfo=LONDON)
    assert len({e.id for e in events}) == len(events)
    for event in events:
        assert event.seq > BOOTSTRAP_SEQ
        assert opens <= event.at <= closes
        assert event.at.utcoffset() == timedelta(hours=1)  # BST on 14 October
        assert event.source == "tcs"
        assert event.entity in config.entities
        if event.data is not None:
            RecordNormaliser(config.entities[event.entity], config.tz)(event.data)


def test_seqs_increase_with_time_per_entity_and_some_arrive_out_of_order(
    work: g.DayOfWork, config: Config
) -> None:
    events, _, _ = _parse_native(work.native_lines, config)
    by_ref: dict[EntityRef, list[ChangeEvent]] = defaultdict(list)
    for event in events:
        by_ref[event.ref].append(event)
    out_of_order = set()
    for ref, arrived in by_ref.items():
        in_time = sorted(arrived, key=lambda e: e.at)
        seqs = [e.seq for e in in_time]
        assert all(a < b for a, b in itertools.pairwise(seqs)), ref
        if [e.seq for e in arrived] != seqs:
            out_of_order.add((ref.entity, ref.key))
    assert out_of_order == work.expected.out_of_order
    assert len(out_of_order) >= 5
    assert {(g.PLACEMENT, k) for k in work.expected.bursts} & out_of_order


# --- The day of work: the cases ---------------------------------------------------------------


def test_every_messy_case_is_present_a_handful_of_times(work: g.DayOfWork) -> None:
    e = work.expected
    sizes = {
        "bursts": len(e.bursts),
        "reverted": len(e.reverted),
        "created_and_deleted": len(e.created_and_deleted),
        "ignored_only": len(e.ignored_only),
        "representation_only": len(e.representation_only),
        "moved": len(e.moved),
        "created": len(e.created),
        "deleted": len(e.deleted),
        "mixed_format": len(e.mixed_format),
    }
    for case, size in sizes.items():
        assert 5 <= size <= 40, case
    assert 24 <= len(e.dms) <= 48  # a few dozen
    assert 250 <= len(e.ordinary) <= 350
    assert len(e.rejected) == 2
    for cases in (e.reverted, e.ignored_only, e.representation_only):
        assert {entity for entity, _ in cases} == set(g.ENTITIES)
    assert e.unchanged == {
        *e.reverted,
        *e.ignored_only,
        *e.representation_only,
        *((g.PLACEMENT, k) for k in e.created_and_deleted),
    }
    assert all(old != new for old, new in e.moved.values())
    assert e.mixed_format <= e.dms


def test_cases_never_share_a_record(work: g.DayOfWork) -> None:
    e = work.expected
    groups: list[set[tuple[str, str]]] = [
        {(g.PLACEMENT, k) for k in e.bursts},
        set(e.reverted),
        {(g.PLACEMENT, k) for k in e.created_and_deleted},
        set(e.ignored_only),
        set(e.representation_only),
        {(g.PLACEMENT, k) for k in e.moved},
        {(g.PLACEMENT, k) for k in e.created},
        {(g.PLACEMENT, k) for k in e.deleted},
        set(e.rejected),
        {(g.PLACEMENT, k) for k in e.dms},
        set(e.ordinary),
    ]
    seen: set[tuple[str, str]] = set()
    for group in groups:
        assert not seen & group
        seen |= group


def test_bursts_have_four_to_six_edits_with_a_field_touched_twice(
    work: g.DayOfWork, config: Config
) -> None:
    events, _, _ = _parse_native(work.native_lines, config)
    by_key: dict[str, list[ChangeEvent]] = defaultdict(list)
    for event in events:
        if event.entity == g.PLACEMENT and event.key in work.expected.bursts:
            by_key[event.key].append(event)
    assert set(by_key) == work.expected.bursts
    for key, burst in by_key.items():
        assert 4 <= len(burst) <= 6
        assert {e.op for e in burst} == {Op.PATCH}
        touched = [f for e in burst for f in (e.data or {}) if f not in g.IGNORED[g.PLACEMENT]]
        assert len(touched) > len(set(touched)), key
        assert work.expected.updated[(g.PLACEMENT, key)]


def test_representation_only_edits_really_respell(work: g.DayOfWork, config: Config) -> None:
    events, _, _ = _parse_native(work.native_lines, config)
    respelt = [e for e in events if (e.entity, e.key) in work.expected.representation_only]
    assert respelt
    for event in respelt:
        assert event.data is not None
        spellings = [event.data.get(f) for f in ("wte", "dateFrom", "dateTo", "dateOfBirth")]
        spellings += [event.data.get("startDate"), event.data.get("endDate")]
        assert any(
            isinstance(v, str) and ("T00:00:00" in v or re.fullmatch(r"\d\.\d{2,3}|\d", v))
            for v in spellings
        ), event


# --- DMS --------------------------------------------------------------------------------------


def test_dms_records_are_well_formed_and_hit_bootstrapped_placements(
    work: g.DayOfWork, region: g.Region, config: Config
) -> None:
    placements = {p["id"] for p in region.placements}
    opens = datetime.combine(DAY, time(8, 0), tzinfo=LONDON)
    closes = datetime.combine(DAY, time(17, 30), tzinfo=LONDON)
    control = data = 0
    keys = set()
    for line in work.dms_lines:
        record: dict[str, Any] = orjson.loads(line)
        metadata = record["metadata"]
        assert DMS_TIMESTAMP.fullmatch(metadata["timestamp"])
        moment = datetime.fromisoformat(metadata["timestamp"])
        assert opens <= moment <= closes
        assert (metadata["schema-name"], metadata["table-name"]) == ("tcs", "Placement")
        if metadata["record-type"] == "control":
            control += 1
            assert dms.parse(record, line.encode(), config) is Skip.CONTROL
            continue
        data += 1
        assert metadata["record-type"] == "data"
        assert metadata["operation"] == "update"
        assert "transaction-id" in metadata
        row = record["data"]
        assert all(isinstance(v, str) for v in row.values())
        assert set(row) == set(region.placements[0])  # the whole row
        assert row["id"] in placements
        keys.add(row["id"])
        event = dms.parse(record, line.encode(), config)
        assert event is not None
        # An update carries the columns DMS sent; those left out (NULLs) keep their value.
        assert event.op is Op.PATCH
        assert (event.source, event.entity, event.key) == ("tcs", "Placement", row["id"])
        assert event.seq > BOOTSTRAP_SEQ
        RecordNormaliser(config.entities[g.PLACEMENT], config.tz)(row)
    assert (control, data) == (1, work.expected.dms_data_records)
    assert data >= len(work.expected.dms)
    assert keys == work.expected.dms


# --- The expectations agree with the ledger's net change -------------------------------------


def _steps(events: list[ChangeEvent], config: Config) -> dict[EntityRef, list[Step]]:
    out: dict[EntityRef, list[Step]] = defaultdict(list)
    for event in events:
        data = event.data
        if data is not None:
            data = RecordNormaliser(config.entities[event.entity], config.tz)(data)
        out[event.ref].append(Step(event.id, event.seq, event.op.value, data))
    return out


def test_expected_agrees_with_folding_every_event(
    work: g.DayOfWork, bootstrap: list[str], config: Config
) -> None:
    loads, _, _ = _parse_native(bootstrap, config)
    edits, _, _ = _parse_native(work.native_lines, config)
    from_dms = [dms.parse(orjson.loads(line), line.encode(), config) for line in work.dms_lines]
    day_events = edits + [e for e in from_dms if isinstance(e, ChangeEvent)]
    baseline = _steps(loads, config)
    touched = _steps(day_events, config)

    changes: dict[tuple[str, str], list[tuple[str | None, Any]]] = {}
    for ref, steps in touched.items():
        folded = fold(None, None, baseline.get(ref, []) + steps)
        addressed, _ = changes_by_recipient(
            config.entities[ref.entity], ref, folded.baseline, folded.current
        )
        changes[(ref.entity, ref.key)] = addressed

    e = work.expected
    assert {k for k, v in changes.items() if not v} == e.unchanged
    for ek, fields in e.updated.items():
        [(recipient, change)] = changes[ek]
        assert recipient in e.recipients
        assert change.kind is Kind.UPDATED
        assert {n: (fc.before, fc.after) for n, fc in change.fields.items()} == fields
    for key, (old, new) in e.moved.items():
        kinds = {(r, c.kind) for r, c in changes[(g.PLACEMENT, key)]}
        assert kinds == {(old, Kind.REMOVED), (new, Kind.ADDED)}
    for key, trainee in e.created.items():
        assert [(r, c.kind) for r, c in changes[(g.PLACEMENT, key)]] == [(trainee, Kind.CREATED)]
    for key, trainee in e.deleted.items():
        assert [(r, c.kind) for r, c in changes[(g.PLACEMENT, key)]] == [(trainee, Kind.DELETED)]
    assert not set(e.rejected) & set(changes)
    assert sum(len(v) for v in changes.values()) == e.changes
    assert {r for v in changes.values() for r, _ in v} == e.recipients


def test_write_day(work: g.DayOfWork, tmp_path: Path) -> None:
    edits, dms_path = g.write_day(work, tmp_path / "out")
    assert (edits.name, dms_path.name) == ("edits.jsonl", "dms.jsonl")
    assert edits.read_text(encoding="utf-8").splitlines() == work.native_lines
    assert dms_path.read_text(encoding="utf-8").splitlines() == work.dms_lines


# --- Form R and ARCP --------------------------------------------------------------------------


def test_reviews_cover_every_form_state_and_are_repeatable(region: g.Region) -> None:
    today = date(2025, 8, 6)
    reviews = forms.generate_reviews(region, today, 7)
    assert reviews == forms.generate_reviews(region, today, 7)
    states = {p["lifecycleState"] for p in (*reviews.part_a, *reviews.part_b)}
    assert states == {"SUBMITTED", "DRAFT", "UNSUBMITTED", "DELETED"}
    current = {m["id"] for m in region.memberships if (m["endDate"] or "") >= today.isoformat()}
    assert {a["programmeMembershipId"] for a in reviews.arcps} == current
    managed = {m["programmeName"] for m in reviews.managers}
    assert reviews.unmanaged not in managed
    flagged = forms.expected_flagged(region, reviews, today)
    assert 0 < flagged < len(current)
    # A flagged membership deleted, or its review moved beyond the due period, is not flagged.
    soon = next(
        a
        for a in reviews.arcps
        if today.isoformat() <= (a["reviewDate"] or "") <= "2025-08-20"
        and not any(
            p["lifecycleState"] == "SUBMITTED"
            and p["programmeMembershipId"] == a["programmeMembershipId"]
            for p in reviews.part_a
        )
    )
    pm = frozenset({str(soon["programmeMembershipId"])})
    assert forms.expected_flagged(region, reviews, today, gone=pm) == flagged - 1
    later = {str(soon["id"]): "2025-12-01"}
    assert forms.expected_flagged(region, reviews, today, moved=later) == flagged - 1
