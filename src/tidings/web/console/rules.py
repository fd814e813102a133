"""Rules and templates, read-only: the rules in the order they are tried, the channels (without
their secrets: a secret is named by the environment variable holding it, and that name is all
that is shown), categories, reminders, and each template the configuration sends with, with a
live preview on made-up sample data (as ``tidings render`` shows it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from tidings.access.roles import Permission, Principal
from tidings.config import Config, Medium
from tidings.errors import TidingsError
from tidings.notices.rendering import Parts, parts_of
from tidings.templates.sample import (
    preview_entity,
    sample_context,
    sample_manager_digest_context,
    sample_reminder_context,
)
from tidings.templates.template_set import Rendered, media_of
from tidings.web.console.render import page
from tidings.web.context import context
from tidings.web.guard import ConsoleRequires

router = APIRouter()


@dataclass(frozen=True, slots=True)
class Use:
    """A template the configuration sends with, for one medium, and what it is tried on."""

    template: str
    medium: Medium
    kind: str  # "changes", "reminder" or "report"
    entity: str
    detail: str  # the reminder's date field, or the report's name
    used_by: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.template}:{self.medium}:{self.entity}:{self.detail}"


def template_uses(config: Config) -> list[Use]:
    """Every (template, medium) a rule, a rule's contacts, a reminder or a report's digest
    sends with, once each, in the order of the configuration."""
    found: dict[str, Use] = {}

    def add(use: Use) -> None:
        found.setdefault(use.key, use)

    for rule in config.rules:
        if rule.exclude:
            continue
        template = rule.template or "default"
        for medium in media_of(config, rule.channels):
            add(Use(template, medium, "changes", rule.entity, "", f"rule {rule.name}"))
        if rule.contacts is not None:
            channels = rule.contacts.channels or tuple(
                n for n in rule.channels if n in config.channels
                and config.channels[n].medium == "email"
            )  # fmt: skip
            for medium in media_of(config, channels):
                add(
                    Use(
                        rule.contacts.template,
                        medium,
                        "changes",
                        rule.entity,
                        "",
                        f"rule {rule.name} (contacts)",
                    )
                )
    for reminder in config.reminders:
        for medium in media_of(config, reminder.channels):
            add(
                Use(
                    reminder.template,
                    medium,
                    "reminder",
                    reminder.entity,
                    reminder.field,
                    f"reminder {reminder.name}",
                )
            )
    for report in config.reports:
        if report.digest is not None:
            for medium in media_of(config, report.digest.channels):
                add(
                    Use(
                        report.digest.template,
                        medium,
                        "report",
                        report.entity,
                        report.name,
                        f"report {report.name} digest",
                    )
                )
    return list(found.values())


@dataclass(frozen=True, slots=True)
class Preview:
    use: Use
    parts: Parts | None
    rendered: Rendered | None
    problem: str | None


def _preview(request: Request, use: Use) -> Preview:
    ctx = context(request)
    delivery = ctx.tidings.require_delivery()
    templates = delivery.templates
    try:
        if use.kind == "reminder":
            reminder_context = sample_reminder_context(
                templates.contexts, use.entity, use.detail, use.medium
            )
            rendered = templates.render(use.template, use.medium, reminder_context)
        elif use.kind == "report":
            digest_context = sample_manager_digest_context(
                templates.contexts, use.detail, use.medium
            )
            rendered = templates.render(use.template, use.medium, digest_context)
        else:
            entity = use.entity or preview_entity(ctx.config, use.template)
            changes_context = sample_context(templates.contexts, entity, use.medium)
            rendered = templates.render(use.template, use.medium, changes_context)
    except TidingsError as exc:
        return Preview(use, None, None, str(exc))
    return Preview(use, parts_of(rendered, use.medium), rendered, None)


@router.get("/rules", response_class=HTMLResponse)
def rules(
    request: Request,
    principal: Annotated[Principal, Depends(ConsoleRequires(Permission.CONFIG_READ))],
    template: str | None = Query(None, max_length=300),
) -> HTMLResponse:
    ctx = context(request)
    config = ctx.config
    uses = template_uses(config) if ctx.tidings.delivery is not None else []
    chosen = next((u for u in uses if u.key == template), uses[0] if uses else None)
    preview = _preview(request, chosen) if chosen is not None else None
    channels = [
        (name, channel.kind, channel.medium, _channel_detail(channel.model_dump()))
        for name, channel in sorted(config.channels.items())
    ]
    return page(
        request,
        "rules.html",
        principal,
        title="Rules and templates",
        current="rules",
        rules=config.rules,
        channels=channels,
        categories=sorted(config.categories.items()),
        reminders=config.reminders,
        uses=uses,
        chosen=chosen,
        preview=preview,
        window=config.window,
        timezone=config.timezone,
    )


# Shown for each channel: where it goes and how fast, never a credential. Secrets are read
# from environment variables; the variable's name is harmless, its value is never read here.
_SHOWN = (
    "host",
    "port",
    "security",
    "from",
    "sender",
    "url",
    "base_url",
    "rate_per_second",
    "max_attempts",
    "backoff",
)


def _channel_detail(settings: dict[str, object]) -> list[tuple[str, str]]:
    shown = []
    for key in _SHOWN:
        value = settings.get(key)
        if value in (None, ""):
            continue
        if key in ("url", "base_url"):
            # A webhook's path or query may carry a token: the host is enough to say where.
            parts = urlsplit(str(value))
            value = f"{parts.scheme}://{parts.hostname or ''}" + (
                f":{parts.port}" if parts.port else ""
            )
        shown.append((key, str(value)))
    return shown
