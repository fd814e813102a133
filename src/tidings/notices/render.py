"""Rendering a digest for the outbox with the configured templates (see ``tidings.templates``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from tidings.config import Config, Medium
from tidings.model import NoticeItem
from tidings.notices.people import Person
from tidings.notices.rendering import Parts
from tidings.templates import TemplateSet
from tidings.templates.context import ContextBuilder


class TemplateRenderer:
    """The planner's ``Renderer``: one context builder per config, templates compiled once."""

    def __init__(self, templates: TemplateSet, config: Config) -> None:
        self._templates = templates
        self._builder = ContextBuilder(config)

    def render(
        self,
        template: str,
        medium: Medium,
        *,
        recipient: Person,
        items: Sequence[NoticeItem],
        closes_at: datetime,
        today: date,
    ) -> Parts:
        if medium == "webhook":
            # A webhook carries the digest itself as JSON; the text is only a summary line.
            count = len(items)
            return Parts(None, f"{count} change{'s' if count != 1 else ''}")
        context = self._builder.build(
            recipient_id=recipient.id,
            recipient_name=recipient.name,
            items=items,
            closes_at=closes_at,
            today=today,
            medium=medium,
        )
        rendered = self._templates.render(template, medium, context)
        if medium == "inapp":
            return Parts(rendered.title, rendered.body or "")
        if medium == "sms":
            return Parts(None, rendered.text or "")
        return Parts(rendered.subject, rendered.text or "", rendered.html)


def template_renderer(config: Config) -> TemplateRenderer:
    """A renderer built from the config alone (in a worker process that renders a share)."""
    return TemplateRenderer(TemplateSet.load(config), config)
