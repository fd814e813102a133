"""Form R and ARCP for the synthetic region: each current programme membership's next ARCP
review, its Form R Part A and Part B submissions (drafts, submitted, unsubmitted, deleted;
sometimes a deleted or draft attempt before the submitted one), and a programme manager per
programme (all but one, to show that rows nobody manages are reported, not dropped).

``expected_flagged`` counts, from this bookkeeping alone (never from Tidings), the memberships
the Form R status report must flag on a day. Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from random import Random

from tidings.demo.generate import MEMBERSHIP, SOURCE, Region, Row, load_lines

PART_A = "FormRPartA"
PART_B = "FormRPartB"
ARCP = "Arcp"
MANAGER = "ProgrammeManager"
FORM_ENTITIES = (PART_A, PART_B, ARCP, MANAGER)
STATES = ("SUBMITTED", "DRAFT", "UNSUBMITTED", "DELETED", None)  # None: never started
_STATE_WEIGHTS = (50, 20, 8, 4, 18)
_FORM_BASE = 5_000_000
_ARCP_BASE = 6_000_000
_MANAGER_BASE = 7_000_000


@dataclass(frozen=True)
class Reviews:
    part_a: tuple[Row, ...]
    part_b: tuple[Row, ...]
    arcps: tuple[Row, ...]
    managers: tuple[Row, ...]
    unmanaged: str  # the one programme without a manager

    def records(self, entity: str) -> tuple[Row, ...]:
        by_entity = {
            PART_A: self.part_a,
            PART_B: self.part_b,
            ARCP: self.arcps,
            MANAGER: self.managers,
        }
        return by_entity[entity]


def generate_reviews(region: Region, today: date, seed: int = 7) -> Reviews:
    """An ARCP within four months of ``today`` for each membership still running, and its
    trainee's Form R parts as they stand on ``today``."""
    rng = Random(seed * 7919 + 17)
    ids = iter(range(_FORM_BASE + 1, _ARCP_BASE))
    parts: dict[str, list[Row]] = {PART_A: [], PART_B: []}
    arcps: list[Row] = []
    current = [m for m in region.memberships if (m["endDate"] or "") >= today.isoformat()]
    for number, membership in enumerate(current):
        review = today + timedelta(days=rng.randrange(-10, 120))
        arcps.append(
            {
                "id": str(_ARCP_BASE + number + 1),
                "programmeMembershipId": membership["id"],
                "traineeId": membership["personId"],
                "reviewDate": review.isoformat(),
                "reviewType": rng.choice(("ARCP", "ARCP", "Interim review")),
            }
        )
        for entity in (PART_A, PART_B):
            state = rng.choices(STATES, _STATE_WEIGHTS)[0]
            if state is None:
                continue
            if state == "SUBMITTED" and rng.random() < 0.25:
                # An earlier attempt, abandoned: the submitted one is the one that counts.
                parts[entity].append(
                    _part(str(next(ids)), membership, rng.choice(("DELETED", "DRAFT")), None)
                )
            submitted = None
            if state == "SUBMITTED":
                submitted = min(review - timedelta(days=rng.randrange(7, 90)), today)
            parts[entity].append(_part(str(next(ids)), membership, state, submitted))
    programmes = sorted({m["programmeName"] or "" for m in current})
    unmanaged = programmes[-1] if programmes else ""
    managers: tuple[Row, ...] = tuple(
        {
            "id": str(_MANAGER_BASE + i + 1),
            "programmeName": name,
            "name": f"Programme manager, {name}",
            "email": f"pm{i + 1}@kss.deanery.example",
        }
        for i, name in enumerate(programmes)
        if name != unmanaged
    )
    return Reviews(tuple(parts[PART_A]), tuple(parts[PART_B]), tuple(arcps), managers, unmanaged)


def _part(key: str, membership: Row, state: str, submitted: date | None) -> Row:
    return {
        "id": key,
        "programmeMembershipId": membership["id"],
        "traineeId": membership["personId"],
        "lifecycleState": state,
        "submissionDate": submitted.isoformat() if submitted else None,
    }


def review_lines(reviews: Reviews, at: datetime) -> list[str]:
    """The forms, reviews and managers as native ``load`` events at ``at``."""
    return load_lines(((e, row) for e in FORM_ENTITIES for row in reviews.records(e)), at)


def expected_flagged(
    region: Region,
    reviews: Reviews,
    today: date,
    within: int = 28,
    gone: frozenset[str] = frozenset(),
    moved: Mapping[str, str] | None = None,
) -> int:
    """Memberships with their next ARCP within ``within`` days of ``today`` and Part A or
    Part B not submitted: what the Form R status report must flag. Records ``gone`` (deleted)
    are left out; ``moved`` gives reviews' new dates by key."""
    submitted = {
        entity: {
            p["programmeMembershipId"]
            for p in reviews.records(entity)
            if p["lifecycleState"] == "SUBMITTED"
        }
        for entity in (PART_A, PART_B)
    }
    next_review: dict[str, str] = {}
    for arcp in reviews.arcps:
        if arcp["id"] in gone:
            continue
        day = (moved or {}).get(str(arcp["id"]), arcp["reviewDate"] or "")
        pm = arcp["programmeMembershipId"] or ""
        if day >= today.isoformat() and (pm not in next_review or day < next_review[pm]):
            next_review[pm] = day
    memberships = {m["id"] for m in region.memberships} - gone
    flagged = 0
    for pm, day in next_review.items():
        if pm not in memberships:
            continue
        days = (date.fromisoformat(day) - today).days
        if days <= within and (pm not in submitted[PART_A] or pm not in submitted[PART_B]):
            flagged += 1
    return flagged


__all__ = [
    "ARCP",
    "FORM_ENTITIES",
    "MANAGER",
    "MEMBERSHIP",
    "PART_A",
    "PART_B",
    "SOURCE",
    "Reviews",
    "expected_flagged",
    "generate_reviews",
    "review_lines",
]
