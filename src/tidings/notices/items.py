"""A change with its whole records (``NoticeItem``) as JSON, to keep it for later: a weekly
digest's deferred changes, and changes held for attention."""

from __future__ import annotations

from collections.abc import Mapping

from tidings.model import Change, EntityRef, FieldChange, Kind, NoticeItem


def item_to_json(item: NoticeItem) -> dict[str, object]:
    return {**item.change.to_json(), "before": item.before, "after": item.after}


def item_from_json(data: Mapping[str, object]) -> NoticeItem:
    fields = data["fields"]
    assert isinstance(fields, dict)
    change = Change(
        EntityRef(str(data["source"]), str(data["entity"]), str(data["key"])),
        Kind(str(data["kind"])),
        {name: FieldChange(fc["before"], fc["after"]) for name, fc in fields.items()},
    )
    before, after = data.get("before"), data.get("after")
    return NoticeItem(
        change,
        before if isinstance(before, dict) else None,
        after if isinstance(after, dict) else None,
    )
