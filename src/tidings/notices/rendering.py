"""Rendering digests for the outbox with the configured templates (``tidings.templates``).

``Renderer`` is what the composer needs; ``TemplateRenderer`` is the one it gets: one context
builder per config, templates compiled once. A large close renders part of its digests in a
worker process, which builds its renderer once, as it starts, from a module-level factory (so
it can be named across the process boundary) and the config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from tidings.config import Config, Medium
from tidings.errors import TidingsError
from tidings.model import NoticeItem
from tidings.notices.people import Person
from tidings.templates import TemplateSet
from tidings.templates.context import ContextBuilder, TemplateContext
from tidings.templates.template_set import Rendered


@dataclass(frozen=True, slots=True)
class Parts:
    """A rendered digest: email subject/text/html, SMS text, or in-app title (subject)/body."""

    subject: str | None
    text: str
    html: str | None = None


class Renderer(Protocol):
    def render(
        self,
        template: str,
        medium: Medium,
        *,
        recipient: Person,
        items: Sequence[NoticeItem],
        closes_at: datetime,
        today: date,
    ) -> Parts: ...


class TemplateRenderer:
    """The composer's ``Renderer``: one context builder per config, templates compiled once."""

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
        return parts_of(self._templates.render(template, medium, context), medium)


def parts_of(rendered: Rendered, medium: Medium) -> Parts:
    """A rendered template as the outbox stores it, per medium."""
    if medium == "inapp":
        return Parts(rendered.title, rendered.body or "")
    if medium == "sms":
        return Parts(None, rendered.text or "")
    return Parts(rendered.subject, rendered.text or "", rendered.html)


def rendered_parts(
    templates: TemplateSet, template: str, medium: Medium, context: Callable[[], TemplateContext]
) -> Parts | str:
    """A notice outside a window (a day's reminders, a managers' digest) rendered: its parts,
    or why it could not be (the notice is then written held, with the reason)."""
    try:
        return parts_of(templates.render(template, medium, context()), medium)
    except TidingsError as exc:
        return str(exc)


def template_renderer(config: Config) -> TemplateRenderer:
    """A renderer built from the config alone (in a worker process that renders a share)."""
    return TemplateRenderer(TemplateSet.load(config), config)


Job = tuple[str, Medium, Person, Sequence[NoticeItem]]  # template, medium, recipient, items


def render_jobs(
    renderer: Renderer, jobs: Sequence[Job], closes_at: datetime, today: date
) -> list[Parts | str]:
    """Each digest rendered, or the reason its template failed."""
    out: list[Parts | str] = []
    for template, medium, person, items in jobs:
        try:
            out.append(
                renderer.render(
                    template,
                    medium,
                    recipient=person,
                    items=items,
                    closes_at=closes_at,
                    today=today,
                )
            )
        except TidingsError as exc:
            out.append(str(exc))
    return out


_worker_renderer: Renderer | None = None


def prepare_worker(factory: Callable[[Config], Renderer], config: Config) -> None:
    """Runs in the worker as soon as it starts: templates loaded while the close routes."""
    global _worker_renderer
    _worker_renderer = factory(config)


def render_in_worker(jobs: Sequence[Job], closes_at: datetime, today: date) -> list[Parts | str]:
    assert _worker_renderer is not None
    return render_jobs(_worker_renderer, jobs, closes_at, today)
