"""Channels: one module each behind ``base.Channel``, registered explicitly below."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime

from tidings.config import (
    ChannelConfig,
    Config,
    InAppChannel,
    NotifyChannel,
    SmtpChannel,
    WebhookChannel,
)
from tidings.links import Links, links_from
from tidings.outbox.channel import Channel
from tidings.store import Store


def build_channel(
    settings: ChannelConfig,
    *,
    store: Store,
    clock: Callable[[], datetime],
    environ: Mapping[str, str],
    concurrency: int = 10,
    links: Links | None = None,
) -> Channel:
    """The channel for one ``[channels.NAME]`` table (imports only what the kind needs);
    ``links`` gives SMTP emails their ``List-Unsubscribe`` headers."""
    if isinstance(settings, SmtpChannel):
        from tidings.channels.smtp import SmtpSender

        # One connection per send the dispatcher runs at once on this channel.
        return SmtpSender(settings, environ=environ, pool_size=concurrency, links=links)
    if isinstance(settings, NotifyChannel):
        from tidings.channels.notify import NotifySender

        return NotifySender(settings, environ=environ)
    if isinstance(settings, WebhookChannel):
        from tidings.channels.webhook import WebhookSender

        return WebhookSender(settings, environ=environ)
    if isinstance(settings, InAppChannel):
        from tidings.channels.inapp import InAppInbox

        return InAppInbox(settings.name, store, clock)
    raise AssertionError(f"unregistered channel kind {settings!r}")


def build_channels(
    config: Config,
    *,
    store: Store,
    clock: Callable[[], datetime],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Channel]:
    env = os.environ if environ is None else environ
    links = links_from(config.links, env)
    return {
        name: build_channel(
            settings,
            store=store,
            clock=clock,
            environ=env,
            concurrency=config.delivery.concurrency,
            links=links,
        )
        for name, settings in config.channels.items()
    }
