"""A synthetic NHS training region and a messy day of admin edits to it.

``generate_region`` makes trainees (``Person``), their programme memberships and placements, as
the TCS database would hold them; ``bootstrap_lines`` loads every record as a native ``load``
event; ``day_of_work`` simulates one working day of edits, in the native format and as AWS DMS
records, including every case a net-change engine must get right, and says in ``Expected`` what
a correct engine finds. The expectations come from the generator's own bookkeeping, never from
running Tidings. Everything is deterministic for a seed (``faker`` and ``random.Random`` are
seeded; the global ``random`` is never used).

Each day is simulated against the region as generated (the bootstrap state), so a day's
``Expected`` holds for ``bootstrap_lines`` followed by that one day.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import TypeAlias
from zoneinfo import ZoneInfo

import orjson
from faker import Faker

Row: TypeAlias = dict[str, str | None]
"""One record as TCS holds it: column name to text (dates ISO 8601) or ``None``."""

EntityKey: TypeAlias = tuple[str, str]
"""``(entity type, key)``; every entity of the demo comes from the source ``tcs``."""

FieldDiff: TypeAlias = tuple[str | None, str | None]
"""``(before, after)`` of one field, in canonical form (``"1"`` not ``"1.0"``)."""

SOURCE = "tcs"
PERSON = "Person"
MEMBERSHIP = "ProgrammeMembership"
PLACEMENT = "Placement"
ENTITIES = (PERSON, MEMBERSHIP, PLACEMENT)
TIMEZONE = ZoneInfo("Europe/London")
CONFIG_PATH = Path(__file__).with_name("demo.toml")

# The same facts as demo.toml (the tests check they agree).
RECIPIENT = {PERSON: "id", MEMBERSHIP: "personId", PLACEMENT: "traineeId"}
IGNORED = {
    PERSON: frozenset({"updatedAt", "updatedBy"}),
    MEMBERSHIP: frozenset({"updatedAt"}),
    PLACEMENT: frozenset({"updatedAt", "amendedBy"}),
}
DATE_FIELDS = frozenset({"dateOfBirth", "startDate", "endDate", "dateFrom", "dateTo"})
DECIMAL_FIELDS = frozenset({"wte"})

MIN_TRAINEES = 20
MAX_TRAINEES = 200_000
WORK_STARTS = time(8, 0)
WORK_ENDS = time(17, 30)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PERSON_BASE = 1_000_000
_MEMBERSHIP_BASE = 2_000_000
_PLACEMENT_BASE = 3_000_000
_REFERENCE_YEAR = 2025  # the training year the placements are built around starts in August
_DEANERY = "KSS"

# --- Reference data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Programme:
    name: str
    code: str | None  # specialty code in the national training number; None: no number
    years: int
    rotation_months: int
    grades: tuple[str, ...]  # by year in the programme
    specialties: tuple[str, ...]
    previous: str | None  # the programme trainees usually come from
    weight: int


_FOUNDATION = "Foundation Programme"
_IMT = "Internal Medicine Training"
_PROGRAMMES = (
    _Programme(
        _FOUNDATION, None, 2, 4, ("F1", "F2"),
        ("General (Internal) Medicine", "General Surgery", "Emergency Medicine",
         "General Psychiatry", "Paediatrics", "General Practice", "Trauma and Orthopaedic Surgery",
         "Geriatric Medicine", "Obstetrics and Gynaecology", "Acute Internal Medicine",
         "Anaesthetics"),
        None, 30,
    ),
    _Programme(
        "General Practice", "GPR", 3, 6, ("ST1", "ST2", "ST3"),
        ("General Practice", "General Practice", "Emergency Medicine", "Paediatrics",
         "General Psychiatry", "Obstetrics and Gynaecology", "Geriatric Medicine"),
        _FOUNDATION, 20,
    ),
    _Programme(
        _IMT, "IMT", 3, 4, ("IMT1", "IMT2", "IMT3"),
        ("General (Internal) Medicine", "Acute Internal Medicine", "Geriatric Medicine",
         "Respiratory Medicine", "Cardiology", "Gastroenterology", "Intensive Care Medicine"),
        _FOUNDATION, 12,
    ),
    _Programme(
        "Core Surgical Training", "CST", 2, 6, ("CT1", "CT2"),
        ("General Surgery", "Trauma and Orthopaedic Surgery", "Urology", "Vascular Surgery",
         "Plastic Surgery", "Otolaryngology"),
        _FOUNDATION, 8,
    ),
    _Programme(
        "Core Psychiatry Training", "CPT", 3, 6, ("CT1", "CT2", "CT3"),
        ("General Psychiatry", "Old Age Psychiatry", "Child and Adolescent Psychiatry",
         "Forensic Psychiatry"),
        _FOUNDATION, 8,
    ),
    _Programme(
        "Anaesthetics", "ANA", 7, 6, ("CT1", "CT2", "CT3", "ST4", "ST5", "ST6", "ST7"),
        ("Anaesthetics", "Anaesthetics", "Intensive Care Medicine"),
        _FOUNDATION, 5,
    ),
    _Programme(
        "Cardiology", "CAR", 5, 12, ("ST3", "ST4", "ST5", "ST6", "ST7"),
        ("Cardiology",), _IMT, 4,
    ),
    _Programme(
        "Respiratory Medicine", "RES", 5, 12, ("ST3", "ST4", "ST5", "ST6", "ST7"),
        ("Respiratory Medicine", "Respiratory Medicine", "General (Internal) Medicine"), _IMT, 3,
    ),
    _Programme(
        "Paediatrics", "PAE", 8, 6, ("ST1", "ST2", "ST3", "ST4", "ST5", "ST6", "ST7", "ST8"),
        ("Paediatrics", "Paediatrics", "Neonatal Medicine"), _FOUNDATION, 5,
    ),
    _Programme(
        "Obstetrics and Gynaecology", "OBG", 7, 12,
        ("ST1", "ST2", "ST3", "ST4", "ST5", "ST6", "ST7"),
        ("Obstetrics and Gynaecology",), _FOUNDATION, 3,
    ),
    _Programme(
        "Emergency Medicine", "EME", 6, 6, ("ST1", "ST2", "ST3", "ST4", "ST5", "ST6"),
        ("Emergency Medicine", "Emergency Medicine", "Acute Internal Medicine", "Anaesthetics",
         "Intensive Care Medicine"),
        _FOUNDATION, 2,
    ),
)  # fmt: skip
_PROGRAMME_BY_NAME = {p.name: p for p in _PROGRAMMES}
_PROGRAMME_WEIGHTS = [p.weight for p in _PROGRAMMES]

_HOSPITALS = {
    "Brighton and Hove": (
        "Royal Sussex County Hospital", "Princess Royal Hospital",
        "Royal Alexandra Children's Hospital",
    ),
    "West Sussex": ("Worthing Hospital", "St Richard's Hospital", "Southlands Hospital"),
    "East Sussex": ("Conquest Hospital", "Eastbourne District General Hospital"),
    "Kent": (
        "William Harvey Hospital", "Kent and Canterbury Hospital",
        "Queen Elizabeth The Queen Mother Hospital", "Maidstone Hospital",
        "Tunbridge Wells Hospital", "Darent Valley Hospital",
    ),
    "Medway": ("Medway Maritime Hospital",),
    "Surrey": (
        "Royal Surrey County Hospital", "Frimley Park Hospital", "East Surrey Hospital",
        "St Peter's Hospital", "Epsom Hospital",
    ),
}  # fmt: skip
_LOCALITIES = tuple(_HOSPITALS)
_ALL_HOSPITALS = tuple(site for sites in _HOSPITALS.values() for site in sites)
_GP_PRACTICES = (
    "Park Lane Surgery", "Brookside Medical Centre", "The Avenue Surgery",
    "Church Street Practice", "Riverside Health Centre", "Station Road Surgery",
    "Hollybank Medical Practice", "Meadowcroft Surgery", "Harbour View Medical Centre",
    "Oakwood Family Practice", "Castle Hill Surgery", "Downs Valley Health Centre",
)  # fmt: skip
_MENTAL_HEALTH_SITES = (
    "Mill View Hospital", "Langley Green Hospital", "Little Brook Hospital",
    "Farnham Road Hospital", "Woodlands Centre for Acute Care", "Priory Gate Unit",
)  # fmt: skip
_ALL_SITES = _ALL_HOSPITALS + _GP_PRACTICES + _MENTAL_HEALTH_SITES
_ALL_SPECIALTIES = tuple(sorted({s for p in _PROGRAMMES for s in p.specialties}))
_ALL_GRADES = (
    "F1", "F2", "CT1", "CT2", "CT3", "IMT1", "IMT2", "IMT3",
    "ST1", "ST2", "ST3", "ST4", "ST5", "ST6", "ST7", "ST8",
)  # fmt: skip
_PLACEMENT_TYPES = ("In Post", "In Post - Acting Up", "In Post - Extension", "Parental Leave")
_PLACEMENT_TYPE_WEIGHTS = (90, 3, 3, 4)
_WTES = ("1.0", "0.8", "0.6", "0.5")
_WTE_WEIGHTS = (80, 12, 6, 2)
_EMAIL_DOMAINS = ("nhs.net", "nhs.net", "nhs.net", "gmail.com", "outlook.com", "yahoo.co.uk")
_ADMINS = (
    "a.okafor", "b.hughes", "c.patel", "d.mcallister", "e.nowak", "f.rahman",
    "g.thompson", "h.osei", "tis-sync", "esr-interface",
)  # fmt: skip

# Fields an admin edits, per entity type (never the key or the recipient).
_EDITABLE = {
    PERSON: ("email", "mobile", "surname", "forenames"),
    MEMBERSHIP: ("endDate", "trainingNumber", "programmeName"),
    PLACEMENT: ("grade", "site", "specialty", "dateFrom", "dateTo", "wte", "placementType"),
}
_EDIT_WEIGHTS = {
    PERSON: (5, 3, 1, 1),
    MEMBERSHIP: (4, 2, 1),
    PLACEMENT: (5, 5, 2, 4, 4, 2, 1),
}
_DMS_FIELDS = ("grade", "site", "specialty", "dateTo", "wte", "placementType")


# --- The region -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """The records of a synthetic training region, as they stand before the day's work."""

    seed: int
    people: tuple[Row, ...]
    memberships: tuple[Row, ...]
    placements: tuple[Row, ...]

    def records(self, entity: str) -> tuple[Row, ...]:
        """The records of one entity type (``Person``, ``ProgrammeMembership``, ``Placement``)."""
        by_entity = {PERSON: self.people, MEMBERSHIP: self.memberships, PLACEMENT: self.placements}
        return by_entity[entity]


def _changeover(year: int) -> date:
    """Rotation changeover day: the first Wednesday of August."""
    first = date(year, 8, 1)
    return first + timedelta(days=(2 - first.weekday()) % 7)


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _email(rng: Random, forenames: str, surname: str) -> str:
    first = re.sub(r"[^a-z]", "", forenames.split()[0].lower())
    last = re.sub(r"[^a-z-]", "", surname.lower())
    suffix = str(rng.randrange(1, 100)) if rng.random() < 0.3 else ""
    return f"{first}.{last}{suffix}@{rng.choice(_EMAIL_DOMAINS)}"


def _mobile(rng: Random) -> str:
    return f"07{rng.choice('3456789')}{rng.randrange(10, 100)} {rng.randrange(1_000_000):06d}"


def _training_number(rng: Random, programme: _Programme) -> str | None:
    if programme.code is None:
        return None
    kind = "C" if rng.random() < 0.9 else "N"
    return f"{_DEANERY}/{programme.code}/{rng.randrange(1, 1000):03d}/{kind}"


def _site(rng: Random, specialty: str, locality: str) -> str:
    if specialty == "General Practice":
        return rng.choice(_GP_PRACTICES)
    if "Psychiatry" in specialty:
        return rng.choice(_MENTAL_HEALTH_SITES)
    if rng.random() < 0.85:
        return rng.choice(_HOSPITALS[locality])
    return rng.choice(_ALL_HOSPITALS)


class _Ids:
    def __init__(self, base: int) -> None:
        self.next = base + 1

    def __call__(self) -> str:
        value = self.next
        self.next += 1
        return str(value)


def generate_region(seed: int = 7, trainees: int = 2000) -> Region:
    """``trainees`` people, each with 1–2 programme memberships and 2–4 placements."""
    if not MIN_TRAINEES <= trainees <= MAX_TRAINEES:
        raise ValueError(f"trainees must be between {MIN_TRAINEES} and {MAX_TRAINEES}")
    rng = Random(seed)
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    gmc_numbers = rng.sample(range(6_000_000, 7_600_000), trainees)
    last_edit = datetime(_REFERENCE_YEAR, 7, 31, 17, 0, tzinfo=UTC)
    edit_span = int((last_edit - datetime(_REFERENCE_YEAR - 1, 9, 1, tzinfo=UTC)).total_seconds())

    def updated_at() -> str:
        return _utc_text(last_edit - timedelta(seconds=rng.randrange(edit_span)))

    membership_id, placement_id = _Ids(_MEMBERSHIP_BASE), _Ids(_PLACEMENT_BASE)
    people: list[Row] = []
    memberships: list[Row] = []
    placements: list[Row] = []
    for index in range(trainees):
        person_id = str(_PERSON_BASE + index + 1)
        programme = rng.choices(_PROGRAMMES, _PROGRAMME_WEIGHTS)[0]
        locality = rng.choice(_LOCALITIES)
        year_in = rng.randrange(programme.years)
        start = _changeover(_REFERENCE_YEAR - year_in)
        end = _changeover(start.year + programme.years) - timedelta(days=1)

        first = str(fake.first_name())
        forenames = f"{first} {fake.first_name()}" if rng.random() < 0.3 else first
        surname = str(fake.last_name())
        age = rng.randrange(23, 30) if programme.name == _FOUNDATION else rng.randrange(25, 46)
        born = date(_REFERENCE_YEAR - age, 1, 1) + timedelta(days=rng.randrange(365))
        people.append(
            {
                "id": person_id,
                "forenames": forenames,
                "surname": surname,
                "email": _email(rng, forenames, surname),
                "mobile": _mobile(rng),
                "gmcNumber": str(gmc_numbers[index]),
                "dateOfBirth": born.isoformat(),
                "updatedAt": updated_at(),
                "updatedBy": rng.choice(_ADMINS),
            }
        )

        if programme.previous is not None and rng.random() < 0.45:
            previous = _PROGRAMME_BY_NAME[programme.previous]
            memberships.append(
                {
                    "id": membership_id(),
                    "personId": person_id,
                    "programmeName": f"{previous.name} ({rng.choice(_LOCALITIES)})",
                    "trainingNumber": _training_number(rng, previous),
                    "startDate": _changeover(start.year - previous.years).isoformat(),
                    "endDate": (start - timedelta(days=1)).isoformat(),
                    "updatedAt": updated_at(),
                }
            )
        memberships.append(
            {
                "id": membership_id(),
                "personId": person_id,
                "programmeName": f"{programme.name} ({locality})",
                "trainingNumber": _training_number(rng, programme),
                "startDate": start.isoformat(),
                "endDate": end.isoformat(),
                "updatedAt": updated_at(),
            }
        )

        # Consecutive rotations of the current programme, around the current one.
        rotation = programme.rotation_months
        rotations = programme.years * 12 // rotation
        now = year_in * 12 // rotation
        count = rng.randint(2, 4)
        first_rotation = max(0, min(now - rng.randrange(count), rotations - count))
        specialties = (
            rng.sample(programme.specialties, count)
            if len(programme.specialties) >= count
            else [rng.choice(programme.specialties) for _ in range(count)]
        )
        wte = rng.choices(_WTES, _WTE_WEIGHTS)[0]
        for offset, specialty in enumerate(specialties):
            number = first_rotation + offset
            date_from = _add_months(start, number * rotation)
            date_to = _add_months(start, (number + 1) * rotation) - timedelta(days=1)
            grade = programme.grades[min(number * rotation // 12, len(programme.grades) - 1)]
            placements.append(
                {
                    "id": placement_id(),
                    "traineeId": person_id,
                    "site": _site(rng, specialty, locality),
                    "specialty": specialty,
                    "grade": grade,
                    "placementType": rng.choices(_PLACEMENT_TYPES, _PLACEMENT_TYPE_WEIGHTS)[0],
                    "dateFrom": date_from.isoformat(),
                    "dateTo": date_to.isoformat(),
                    "wte": wte,
                    "updatedAt": updated_at(),
                    "amendedBy": rng.choice(_ADMINS),
                }
            )
    return Region(seed, tuple(people), tuple(memberships), tuple(placements))


def _seq(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _native_line(
    event_id: str, entity: str, key: str, op: str, seq: int | None, at: str, data: Row | None
) -> str:
    record: dict[str, object] = {
        "id": event_id,
        "source": SOURCE,
        "entity": entity,
        "key": key,
        "op": op,
    }
    if seq is not None:
        record["seq"] = seq
    record["at"] = at
    if data is not None:
        record["data"] = data
    return orjson.dumps(record).decode()


def bootstrap_lines(region: Region, at: datetime) -> list[str]:
    """Every record of the region as a native ``load`` event at ``at`` (seq: its microseconds).

    ``at`` must be timezone-aware and before 08:00 of any day passed to ``day_of_work``.
    """
    return load_lines(((e, row) for e in ENTITIES for row in region.records(e)), at)


def load_lines(records: Iterable[tuple[str, Row]], at: datetime) -> list[str]:
    """``(entity type, row)`` records as native ``load`` events at ``at`` (seq: its
    microseconds)."""
    if at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    seq = _seq(at)
    at_text = at.isoformat(timespec="microseconds")
    return [
        _native_line(f"load-{seq}-{entity}-{row['id']}", entity, str(row["id"]), "load", seq,
                     at_text, row)
        for entity, row in records
    ]  # fmt: skip


# --- A day of work ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What a correct net-change engine finds after the bootstrap and this day, and why.

    Entity keys are ``(entity type, key)``; placement keys alone where only placements apply.
    Field values in ``updated`` are canonical (decimals without trailing zeros, plain dates).
    """

    native_lines: int  # lines in edits.jsonl, the two bad ones included
    malformed_lines: int  # JSON lines that are not valid native events (no seq)
    non_json_lines: int  # lines that are not JSON at all
    dms_data_records: int  # DMS "data" records (Placement updates)
    dms_control_records: int  # DMS "control" records (not events)
    bursts: frozenset[str]  # (a) placements edited 4-6 times; net: the final differing values
    reverted: frozenset[EntityKey]  # (b) a field changed and changed back
    created_and_deleted: frozenset[str]  # (c) placements created and deleted the same day
    ignored_only: frozenset[EntityKey]  # (d) only ignored fields edited
    representation_only: frozenset[EntityKey]  # (e) the same values written differently
    unchanged: frozenset[EntityKey]  # (b)-(e): events but no net change, nobody told
    moved: Mapping[str, tuple[str, str]]  # (f) placement -> (old trainee, new trainee)
    created: Mapping[str, str]  # (g) new placement -> its trainee
    deleted: Mapping[str, str]  # (g) deleted placement -> the trainee it named
    rejected: frozenset[EntityKey]  # (h) targets of the two bad lines: no valid events
    dms: frozenset[str]  # (i) placements updated through DMS records
    mixed_format: frozenset[str]  # (i) of those, also patched by a native event earlier
    ordinary: frozenset[EntityKey]  # single-field edits of random records
    out_of_order: frozenset[EntityKey]  # arrival order in edits.jsonl differs from seq order
    updated: Mapping[EntityKey, Mapping[str, FieldDiff]]  # net updates: (a), (i), ordinary
    recipients: frozenset[str]  # everyone who gets a digest
    changes: int  # (recipient, change) pairs: updated + created + deleted + 2 per move

    @property
    def bad_lines(self) -> int:
        return self.malformed_lines + self.non_json_lines


@dataclass(frozen=True)
class DayOfWork:
    day: date
    native_lines: list[str]
    dms_lines: list[str]
    expected: Expected


@dataclass
class _Event:
    entity: str
    key: str
    op: str
    offset: int  # microseconds after 08:00
    data: Row | None
    id: str
    dms: bool = False


def _canonical(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if name in DECIMAL_FIELDS:
        number = Decimal(value)
        return "0" if number == 0 else format(number.normalize(), "f")
    if name in DATE_FIELDS:
        return value[:10]  # the generator's other spellings only add a midnight time
    return value


def _net(entity: str, before: Row, after: Row) -> dict[str, FieldDiff]:
    ignore = IGNORED[entity]
    out: dict[str, FieldDiff] = {}
    for name in sorted(before.keys() | after.keys()):
        if name in ignore:
            continue
        old, new = _canonical(name, before.get(name)), _canonical(name, after.get(name))
        if old != new:
            out[name] = (old, new)
    return out


def _scale(trainees: int, per: int, low: int, high: int) -> int:
    return max(low, min(high, trainees // per))


def _shift(value: str | None, rng: Random, low: int, high: int) -> str:
    base = date.fromisoformat((value or f"{_REFERENCE_YEAR}-08-06")[:10])
    days = rng.randint(low, high) * rng.choice((-1, 1))
    return (base + timedelta(days=days)).isoformat()


class _Simulation:
    """Emits the day's events and keeps each touched record's state, to know the net change."""

    def __init__(self, region: Region, day: date, rng: Random) -> None:
        self.region = region
        self.rng = rng
        self.start = datetime.combine(day, WORK_STARTS, tzinfo=TIMEZONE)
        self.window = (datetime.combine(day, WORK_ENDS, tzinfo=TIMEZONE) - self.start) // (
            _MICROSECOND
        )
        self.baseline: dict[EntityKey, Row] = {
            (entity, str(row["id"])): row for entity in ENTITIES for row in region.records(entity)
        }
        self.state: dict[EntityKey, Row | None] = {}
        self.events: list[_Event] = []
        self.person_ids = [str(row["id"]) for row in region.people]
        self.surnames = [str(row["surname"]) for row in region.people]
        self.forenames = [str(row["forenames"]) for row in region.people]
        self.next_placement = 1 + max(int(str(row["id"])) for row in region.placements)
        self.pools: dict[str, list[str]] = {}
        for entity in ENTITIES:
            keys = [str(row["id"]) for row in region.records(entity)]
            rng.shuffle(keys)
            self.pools[entity] = keys

    # -- bookkeeping

    def take(self, entity: str, count: int) -> list[str]:
        pool = self.pools[entity]
        if count > len(pool):
            raise ValueError("the region is too small for this day of work; use more trainees")
        taken, self.pools[entity] = pool[:count], pool[count:]
        return taken

    def current(self, ek: EntityKey) -> Row | None:
        if ek in self.state:
            return self.state[ek]
        return self.baseline.get(ek)

    def row(self, ek: EntityKey) -> Row:
        row = self.current(ek)
        if row is None:
            raise AssertionError(f"{ek} is absent")
        return dict(row)

    def new_id(self) -> str:
        self.next_placement += 1
        return str(self.next_placement - 1)

    def times(self, count: int, low: int = 20, high: int = 1500) -> list[int]:
        """``count`` increasing offsets (microseconds after 08:00), ``low``-``high`` s apart."""
        gaps = [self.rng.randint(low * 1_000_000, high * 1_000_000) for _ in range(count - 1)]
        start = self.rng.randrange(self.window - sum(gaps))
        out = [start]
        for gap in gaps:
            out.append(out[-1] + gap)
        return out

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(
        self, entity: str, key: str, op: str, offset: int, data: Row | None, *, dms: bool = False
    ) -> None:
        ek = (entity, key)
        before = self.current(ek)
        if op == "patch":
            after: Row | None = {**(before or {}), **(data or {})}
        elif op == "delete":
            after = None
        else:
            after = dict(data or {})
        self.state[ek] = after
        self.events.append(_Event(entity, key, op, offset, data, self.event_id(), dms))

    def stamp(self, entity: str, offset: int, *, admin: bool = True) -> Row:
        """The ignored bookkeeping columns TCS sets on every write."""
        at = _utc_text(self.start + offset * _MICROSECOND)
        out: Row = {"updatedAt": at}
        if admin and entity == PERSON:
            out["updatedBy"] = self.rng.choice(_ADMINS)
        if admin and entity == PLACEMENT and self.rng.random() < 0.5:
            out["amendedBy"] = self.rng.choice(_ADMINS)
        return out

    def patch(self, entity: str, key: str, offset: int, changes: Row) -> None:
        self.emit(entity, key, "patch", offset, {**changes, **self.stamp(entity, offset)})

    def upsert(self, entity: str, key: str, offset: int, row: Row) -> None:
        self.emit(entity, key, "upsert", offset, {**row, **self.stamp(entity, offset)})

    # -- values

    def pick_field(self, entity: str, exclude: Sequence[str] = ()) -> str:
        names = [n for n in _EDITABLE[entity] if n not in exclude]
        weights = [w for n, w in zip(_EDITABLE[entity], _EDIT_WEIGHTS[entity], strict=True)
                   if n not in exclude]  # fmt: skip
        return self.rng.choices(names, weights)[0]

    def new_value(self, name: str, row: Row) -> str | None:
        """A value for ``name`` that differs from the record's, canonically."""
        rng = self.rng
        old = row.get(name)
        choosers: dict[str, Callable[[], str | None]] = {
            "grade": lambda: rng.choice(_ALL_GRADES),
            "site": lambda: rng.choice(_ALL_SITES),
            "specialty": lambda: rng.choice(_ALL_SPECIALTIES),
            "placementType": lambda: rng.choice(_PLACEMENT_TYPES),
            "wte": lambda: rng.choice(_WTES),
            "dateFrom": lambda: _shift(old, rng, 1, 28),
            "dateTo": lambda: _shift(old, rng, 7, 120),
            "endDate": lambda: _shift(old, rng, 30, 365),
            "email": lambda: _email(rng, str(row.get("forenames")), str(row.get("surname"))),
            "mobile": lambda: _mobile(rng),
            "surname": lambda: rng.choice(self.surnames),
            "forenames": lambda: rng.choice(self.forenames),
            "trainingNumber": lambda: (
                f"{_DEANERY}/{rng.choice([p.code for p in _PROGRAMMES if p.code])}/"
                f"{rng.randrange(1, 1000):03d}/{rng.choice('CN')}"
            ),
            "programmeName": lambda: f"{rng.choice(_PROGRAMMES).name} ({rng.choice(_LOCALITIES)})",
        }
        for _ in range(100):
            value = choosers[name]()
            if _canonical(name, value) != _canonical(name, old):
                return value
        raise AssertionError(f"no new value for {name}")  # pragma: no cover

    def respell(self, name: str, value: str | None) -> str:
        """The same value written differently."""
        if value is None:
            raise AssertionError(f"{name} is null")
        if name in DECIMAL_FIELDS:
            canonical = _canonical(name, value) or "0"
            options = [canonical, f"{Decimal(value):.2f}", f"{Decimal(value):.3f}"]
        else:
            options = [f"{value[:10]}T00:00:00", f"{value[:10]}T00:00:00Z",
                       f"{value[:10]}T00:00:00+00:00"]  # fmt: skip
        return self.rng.choice([o for o in options if o != value])

    def new_placement(self) -> Row:
        rng = self.rng
        specialty = rng.choice(_ALL_SPECIALTIES)
        start = _changeover(_REFERENCE_YEAR) + timedelta(days=7 * rng.randrange(0, 26))
        return {
            "id": self.new_id(),
            "traineeId": rng.choice(self.person_ids),
            "site": _site(rng, specialty, rng.choice(_LOCALITIES)),
            "specialty": specialty,
            "grade": rng.choice(_ALL_GRADES),
            "placementType": "In Post",
            "dateFrom": start.isoformat(),
            "dateTo": (_add_months(start, rng.choice((4, 6, 12))) - timedelta(days=1)).isoformat(),
            "wte": rng.choices(_WTES, _WTE_WEIGHTS)[0],
            "amendedBy": rng.choice(_ADMINS),
        }


def _split(count: int) -> dict[str, int]:
    """``count`` cases spread over the entity types, placements first."""
    persons = max(1, count // 4)
    memberships = max(1, count // 4)
    return {PLACEMENT: count - persons - memberships, PERSON: persons, MEMBERSHIP: memberships}


def day_of_work(region: Region, day: date, seed: int = 7) -> DayOfWork:
    """One working day (08:00-17:30 Europe/London) of admin edits, messy cases included."""
    rng = Random(seed * 1_000_003 + day.toordinal())
    sim = _Simulation(region, day, rng)
    trainees = len(region.people)
    cases = _scale(trainees, 100, 5, 40)

    # (a) bursts: 4-6 patches to one placement, at least one field touched twice.
    bursts = sim.take(PLACEMENT, cases)
    for key in bursts:
        count = rng.randint(4, 6)
        names = rng.sample(_EDITABLE[PLACEMENT], count - 1)
        again = rng.randrange(count - 2)
        names.insert(rng.randint(again + 1, count - 1), names[again])
        original = sim.row((PLACEMENT, key))
        seen: set[str] = set()
        for name, offset in zip(names, sim.times(count, 20, 600), strict=True):
            row = sim.row((PLACEMENT, key))
            if name in seen and rng.random() < 0.3:
                changes: Row = {name: original.get(name)}  # back to where it started
            else:
                changes = {name: sim.new_value(name, row)}
            seen.add(name)
            if rng.random() < 0.25:
                other = sim.pick_field(PLACEMENT, exclude=names)
                changes[other] = sim.new_value(other, row)
            sim.patch(PLACEMENT, key, offset, changes)

    # (b) reverted: a field changed (perhaps twice), then changed back.
    reverted: list[EntityKey] = []
    for entity, count in _split(cases).items():
        for key in sim.take(entity, count):
            ek = (entity, key)
            reverted.append(ek)
            original = sim.row(ek)
            name = sim.pick_field(entity)
            steps = 3 if rng.random() < 0.4 else 2
            offsets = sim.times(steps, 60, 3600)
            for offset in offsets[:-1]:
                sim.patch(entity, key, offset, {name: sim.new_value(name, sim.row(ek))})
            if rng.random() < 0.25:
                sim.upsert(entity, key, offsets[-1], original)  # "restore previous version"
            else:
                sim.patch(entity, key, offsets[-1], {name: original.get(name)})

    # (c) placements created and deleted the same day.
    created_and_deleted: list[str] = []
    for _ in range(cases):
        row = sim.new_placement()
        key = str(row["id"])
        created_and_deleted.append(key)
        steps = 3 if rng.random() < 0.5 else 2
        offsets = sim.times(steps, 60, 3600)
        sim.upsert(PLACEMENT, key, offsets[0], row)
        if steps == 3:
            sim.patch(PLACEMENT, key, offsets[1], {"wte": sim.new_value("wte", row)})
        sim.emit(PLACEMENT, key, "delete", offsets[-1], None)

    # (d) only ignored fields edited.
    ignored_only: list[EntityKey] = []
    for entity, count in _split(cases).items():
        for key in sim.take(entity, count):
            ignored_only.append((entity, key))
            for offset in sim.times(rng.randint(1, 3), 30, 1800):
                sim.emit(entity, key, "patch", offset, sim.stamp(entity, offset))

    # (e) representation only: "1.0" -> "1.00", "2025-08-06" -> "2025-08-06T00:00:00".
    representation_only: list[EntityKey] = []
    respellable = {
        PLACEMENT: ("wte", "dateFrom", "dateTo"),
        PERSON: ("dateOfBirth",),
        MEMBERSHIP: ("startDate", "endDate"),
    }
    for entity, count in _split(cases).items():
        for key in sim.take(entity, count):
            ek = (entity, key)
            representation_only.append(ek)
            row = sim.row(ek)
            names = rng.sample(respellable[entity], rng.randint(1, len(respellable[entity])))
            respelt: Row = {name: sim.respell(name, row.get(name)) for name in names}
            offset = sim.times(1)[0]
            if rng.random() < 0.3:
                sim.upsert(entity, key, offset, {**row, **respelt})
            else:
                sim.patch(entity, key, offset, respelt)

    # (f) placements moved to another trainee.
    moved: dict[str, tuple[str, str]] = {}
    for key in sim.take(PLACEMENT, cases):
        row = sim.row((PLACEMENT, key))
        old = str(row["traineeId"])
        new = rng.choice([p for p in rng.sample(sim.person_ids, 3) if p != old])
        moved[key] = (old, new)
        offset = sim.times(1)[0]
        if rng.random() < 0.25:
            sim.upsert(PLACEMENT, key, offset, {**row, "traineeId": new})
        else:
            sim.patch(PLACEMENT, key, offset, {"traineeId": new})

    # (g) new placements, and deleted ones.
    created: dict[str, str] = {}
    for _ in range(cases):
        row = sim.new_placement()
        key = str(row["id"])
        created[key] = str(row["traineeId"])
        offsets = sim.times(2, 60, 3600)
        sim.upsert(PLACEMENT, key, offsets[0], row)
        if rng.random() < 0.3:
            sim.patch(PLACEMENT, key, offsets[1], {"dateTo": sim.new_value("dateTo", row)})
    deleted: dict[str, str] = {}
    for key in sim.take(PLACEMENT, max(5, cases // 2)):
        row = sim.row((PLACEMENT, key))
        deleted[key] = str(row["traineeId"])
        offsets = sim.times(2, 60, 3600)
        if rng.random() < 0.3:
            sim.patch(PLACEMENT, key, offsets[0], {"placementType": "In Post - Extension"})
        sim.emit(PLACEMENT, key, "delete", offsets[1], None)

    # (h) the targets of the malformed line and the non-JSON line.
    malformed_key, broken_key = sim.take(PLACEMENT, 2)

    # (i) DMS updates (whole rows), some after a native patch of the same placement.
    dms_keys = sim.take(PLACEMENT, _scale(trainees, 50, 5, 48))
    mixed: list[str] = []
    for key in dms_keys:
        ek = (PLACEMENT, key)
        native_first = rng.random() < 0.25
        updates = 2 if rng.random() < 0.2 else 1
        offsets = sim.times(updates + native_first, 120, 7200)
        used: list[str] = []
        if native_first:
            mixed.append(key)
            name = sim.pick_field(PLACEMENT, exclude=("specialty",))
            used.append(name)
            sim.patch(PLACEMENT, key, offsets.pop(0), {name: sim.new_value(name, sim.row(ek))})
        for offset in offsets:
            row = sim.row(ek)
            names = rng.sample([n for n in _DMS_FIELDS if n not in used], rng.randint(1, 2))
            used.extend(names)
            row.update({name: sim.new_value(name, row) for name in names})
            row["updatedAt"] = (
                (sim.start + offset * _MICROSECOND).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            )
            row["amendedBy"] = rng.choice(_ADMINS)
            # Postgres numeric(3,2) as DMS writes it: "1.00" where the native feed says "1.0".
            row["wte"] = f"{Decimal(str(row['wte'])):.2f}"
            sim.emit(PLACEMENT, key, "upsert", offset, row, dms=True)

    # Ordinary single-field edits of records no case above has touched.
    ordinary: list[EntityKey] = []
    total = max(10, trainees * 3 // 20)
    share = {PERSON: total // 4, MEMBERSHIP: total * 3 // 20}
    share[PLACEMENT] = total - share[PERSON] - share[MEMBERSHIP]
    for entity, count in share.items():
        for key in sim.take(entity, count):
            ek = (entity, key)
            ordinary.append(ek)
            row = sim.row(ek)
            name = sim.pick_field(entity)
            value = sim.new_value(name, row)
            offset = sim.times(1)[0]
            if rng.random() < 0.2:
                sim.upsert(entity, key, offset, {**row, name: value})
            else:
                sim.patch(entity, key, offset, {name: value})

    return _finish(
        sim,
        day,
        bursts=bursts,
        reverted=reverted,
        created_and_deleted=created_and_deleted,
        ignored_only=ignored_only,
        representation_only=representation_only,
        moved=moved,
        created=created,
        deleted=deleted,
        rejected=(malformed_key, broken_key),
        dms_keys=dms_keys,
        mixed=mixed,
        ordinary=ordinary,
    )


def _finish(
    sim: _Simulation,
    day: date,
    *,
    bursts: list[str],
    reverted: list[EntityKey],
    created_and_deleted: list[str],
    ignored_only: list[EntityKey],
    representation_only: list[EntityKey],
    moved: dict[str, tuple[str, str]],
    created: dict[str, str],
    deleted: dict[str, str],
    rejected: tuple[str, str],
    dms_keys: list[str],
    mixed: list[str],
    ordinary: list[EntityKey],
) -> DayOfWork:
    rng = sim.rng
    base_seq = _seq(sim.start)

    def at_text(offset: int) -> str:
        return (sim.start + offset * _MICROSECOND).isoformat(timespec="microseconds")

    # Native lines in time order, then a little shuffling within some entities' bursts.
    native = sorted((e for e in sim.events if not e.dms), key=lambda e: e.offset)
    positions: dict[EntityKey, list[int]] = {}
    for index, event in enumerate(native):
        positions.setdefault((event.entity, event.key), []).append(index)
    candidates = [(PLACEMENT, k) for k in bursts[::2]]
    candidates += [ek for ek in reverted[::3] if len(positions[ek]) > 1]
    out_of_order: list[EntityKey] = []
    for ek in candidates:
        spots = positions[ek]
        j = rng.randrange(len(spots) - 1)
        first, second = spots[j], spots[j + 1]
        native[first], native[second] = native[second], native[first]
        out_of_order.append(ek)
    lines = [
        _native_line(e.id, e.entity, e.key, e.op, base_seq + e.offset, at_text(e.offset), e.data)
        for e in native
    ]

    # (h) one line without a seq, one truncated line, both in the middle of the file.
    offset = sim.times(1)[0]
    bad_patch: Row = {"dateFrom": _shift(sim.row((PLACEMENT, rejected[0]))["dateFrom"], rng, 1, 9)}
    malformed = _native_line(
        sim.event_id(), PLACEMENT, rejected[0], "patch", None, at_text(offset), bad_patch
    )
    whole = _native_line(
        sim.event_id(), PLACEMENT, rejected[1], "patch", base_seq + offset, at_text(offset),
        {"grade": "ST4"},
    )  # fmt: skip
    middle = len(lines) // 2
    lines.insert(middle, malformed)
    lines.insert(middle + rng.randint(1, 40), whole[: len(whole) * 2 // 3])

    # (i) DMS: a control record as the task starts, then the updates in commit order.
    dms_events = [e for e in sim.events if e.dms]
    dms_lines = [
        orjson.dumps(
            {
                "control": {"table-def": {"columns": {}}},
                "metadata": {
                    "timestamp": _dms_timestamp(sim.start),
                    "record-type": "control",
                    "operation": "create-table",
                    "partition-key-type": "task-id",
                    "schema-name": SOURCE,
                    "table-name": PLACEMENT,
                },
            }
        ).decode()
    ]
    for event in sorted(dms_events, key=lambda e: e.offset):
        data = {name: str(value) for name, value in (event.data or {}).items()}
        assert None not in (event.data or {}).values(), "DMS rows here have no nulls"
        dms_lines.append(
            orjson.dumps(
                {
                    "data": data,
                    "metadata": {
                        "timestamp": _dms_timestamp(sim.start + event.offset * _MICROSECOND),
                        "record-type": "data",
                        "operation": "update",
                        "partition-key-type": "schema-table",
                        "schema-name": SOURCE,
                        "table-name": PLACEMENT,
                        "transaction-id": rng.randrange(10**10, 10**11),
                    },
                }
            ).decode()
        )

    # The net change of every touched record, from the simulation's own states.
    updated: dict[EntityKey, dict[str, FieldDiff]] = {}
    unchanged: set[EntityKey] = set()
    found_moved: dict[str, tuple[str, str]] = {}
    found_created: dict[str, str] = {}
    found_deleted: dict[str, str] = {}
    recipients: set[str] = set()
    for ek, after in sim.state.items():
        entity, key = ek
        before = sim.baseline.get(ek)
        recipient = RECIPIENT[entity]
        if before is None and after is None:
            unchanged.add(ek)
        elif before is None and after is not None:
            found_created[key] = str(after[recipient])
            recipients.add(str(after[recipient]))
        elif after is None and before is not None:
            found_deleted[key] = str(before[recipient])
            recipients.add(str(before[recipient]))
        elif before is not None and after is not None:
            fields = _net(entity, before, after)
            if not fields:
                unchanged.add(ek)
            elif before[recipient] != after[recipient]:
                found_moved[key] = (str(before[recipient]), str(after[recipient]))
                recipients.update(found_moved[key])
            else:
                updated[ek] = fields
                recipients.add(str(after[recipient]))

    # The bookkeeping must agree with what each case meant to do.
    cases_unchanged = {
        *reverted, *ignored_only, *representation_only,
        *((PLACEMENT, k) for k in created_and_deleted),
    }  # fmt: skip
    assert unchanged == cases_unchanged, unchanged ^ cases_unchanged
    meant_updated = {*((PLACEMENT, k) for k in (*bursts, *dms_keys)), *ordinary}
    assert set(updated) == meant_updated, set(updated) ^ meant_updated
    assert found_moved == moved
    assert found_created == created
    assert found_deleted == deleted
    assert not any((PLACEMENT, k) in sim.state for k in rejected)

    expected = Expected(
        native_lines=len(lines),
        malformed_lines=1,
        non_json_lines=1,
        dms_data_records=len(dms_lines) - 1,
        dms_control_records=1,
        bursts=frozenset(bursts),
        reverted=frozenset(reverted),
        created_and_deleted=frozenset(created_and_deleted),
        ignored_only=frozenset(ignored_only),
        representation_only=frozenset(representation_only),
        unchanged=frozenset(unchanged),
        moved=moved,
        created=created,
        deleted=deleted,
        rejected=frozenset((PLACEMENT, k) for k in rejected),
        dms=frozenset(dms_keys),
        mixed_format=frozenset(mixed),
        ordinary=frozenset(ordinary),
        out_of_order=frozenset(out_of_order),
        updated=updated,
        recipients=frozenset(recipients),
        changes=len(updated) + len(created) + len(deleted) + 2 * len(moved),
    )
    return DayOfWork(day, lines, dms_lines, expected)


def _dms_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_day(day: DayOfWork, directory: Path) -> tuple[Path, Path]:
    """Write ``edits.jsonl`` (native) and ``dms.jsonl`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    edits, dms = directory / "edits.jsonl", directory / "dms.jsonl"
    edits.write_text("".join(f"{line}\n" for line in day.native_lines), encoding="utf-8")
    dms.write_text("".join(f"{line}\n" for line in day.dms_lines), encoding="utf-8")
    return edits, dms
