"""``tidings unsubscribe TOKEN``: honour an email's unsubscribe link by hand.

Until an HTTP endpoint receives the one-click POST (RFC 8058), the token of the link in an
email's ``List-Unsubscribe`` header is given to this command: it checks the signature, then
opts the recipient out of that channel in every category that is not critical.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tidings.cli.common import ConfigOption, json_option, open_app, print_json
from tidings.links import link_signer, parse_token
from tidings.notices import preferences
from tidings.notices.preferences import ChannelOptOut
from tidings.terminal import literal, out


def register(app: typer.Typer) -> None:
    app.command()(unsubscribe)


def unsubscribe(
    token: Annotated[
        str, typer.Argument(help="The token of an unsubscribe link (after token= in its URL).")
    ],
    as_json: Annotated[
        bool, json_option('{"recipient", "channel", "opted_out", "already", "critical"}')
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Opt the person an unsubscribe link was sent to out of its channel, for every category
    that is not critical. Refuses (exit 2) a token that is altered or not ours; running it
    again changes nothing."""
    parse_token(token)  # a mangled token is refused before the config is even read
    with open_app(config) as tidings:
        tidings.require_delivery()
        signer = link_signer(tidings.config.links, os.environ)
        claim = signer.verify(token, "unsubscribe")
        done = preferences.opt_out_of_channel(
            tidings.store, tidings.config, claim.recipient, claim.scope, now=tidings.clock()
        )
        labels = {name: spec.label or name for name, spec in tidings.config.categories.items()}
    if as_json:
        print_json(done.to_json())
        return
    _print(done, labels)


def _print(done: ChannelOptOut, labels: dict[str, str]) -> None:
    def named(categories: tuple[str, ...]) -> str:
        return ", ".join(labels.get(c, c) for c in categories)

    who = literal(done.recipient)
    channel = literal(done.channel)
    if done.opted_out:
        out.print(f"Unsubscribed {who} from {channel}: {literal(named(done.opted_out))}.")
    elif done.already:
        out.print(f"Nothing to change: {who} was already unsubscribed from {channel}.")
    else:
        out.print(f"Nothing to change: no category sent by {channel} can be opted out of.")
    if done.opted_out and done.already:
        out.print(f"Already unsubscribed before: {literal(named(done.already))}.")
    if done.critical:
        out.print(
            f"Still sent, being critical: {literal(named(done.critical))} "
            "(critical categories cannot be opted out of)."
        )
