"""The SMTP channel against a real local SMTP server (aiosmtpd), plain, STARTTLS and TLS."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from tidings.channels.smtp import SmtpSender, message_id_for
from tidings.config import LinksConfig, SmtpChannel
from tidings.demo.smtp_server import LocalSmtpServer, ReceivedMessage
from tidings.errors import ConfigError
from tidings.links import Links, links_from
from tidings.outbox.channel import (
    Delivered,
    Message,
    Outcome,
    PermanentFailure,
    TransientFailure,
)

T = TypeVar("T")

PASSWORD = "s3cret-Pa55word"
SENDER = "Tidings <noreply@example.org>"


# --- helpers -------------------------------------------------------------------------------


def settings(port: int, **overrides: Any) -> SmtpChannel:
    data: dict[str, Any] = {
        "name": "mail",
        "kind": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": SENDER,
        "timeout": 5,
    }
    data.update(overrides)
    return SmtpChannel.model_validate(data)


def message(n: int = 1, **overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "notice_id": n,
        "idempotency_key": f"person-{n}:mail:2024-03-01",
        "channel": "mail",
        "recipient": f"person-{n}",
        "address": f"person{n}@example.org",
        "subject": f"What changed for you ({n})",
        "text": "Hello,\n\nYour placement at Site A changed.\n",
        "html": "<p>Hello,</p><p>Your placement at <b>Site A</b> changed.</p>",
    }
    fields.update(overrides)
    return Message(**fields)


def run(sender: SmtpSender, body: Callable[[SmtpSender], Awaitable[T]]) -> T:
    """Run ``body`` in a fresh event loop, closing the sender's connections afterwards."""

    async def main() -> T:
        try:
            return await body(sender)
        finally:
            await sender.aclose()

    return asyncio.run(main())


def send_each(sender: SmtpSender, *messages: Message) -> list[Outcome]:
    async def body(s: SmtpSender) -> list[Outcome]:
        return [await s.send(m) for m in messages]

    return run(sender, body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def normalised(text: str) -> str:
    return text.replace("\r\n", "\n")


@dataclass(frozen=True)
class Tls:
    server_context: ssl.SSLContext
    ca_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(context, ca_file)


@pytest.fixture
def server() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as smtp:
        yield smtp


# --- the email -----------------------------------------------------------------------------


def test_delivers_a_mime_email_with_headers_and_both_parts(server: LocalSmtpServer) -> None:
    sender = SmtpSender(settings(server.port, reply_to="Support <help@example.org>"))
    msg = message()
    [outcome] = send_each(sender, msg)

    assert outcome == Delivered(provider_ref=message_id_for(msg.idempotency_key))
    [got] = server.messages
    assert got.envelope_from == "noreply@example.org"
    assert got.envelope_to == ("person1@example.org",)
    assert got["From"] == SENDER
    assert got["To"] == "person1@example.org"
    assert got["Reply-To"] == "Support <help@example.org>"
    assert got["Subject"] == "What changed for you (1)"
    assert got["Message-ID"] == outcome.provider_ref
    assert got["X-Tidings-Idempotency-Key"] == msg.idempotency_key
    assert parsedate_to_datetime(got["Date"]).tzinfo is not None
    assert got.get_content_type() == "multipart/alternative"
    plain, html = _body(got, "plain"), _body(got, "html")
    assert normalised(plain) == msg.text
    assert msg.html is not None
    assert normalised(html).strip() == msg.html


def test_text_only_non_ascii_long_lines_and_leading_dots_survive(
    server: LocalSmtpServer,
) -> None:
    text = "Grüße, café = 3 €\n.a line that starts with a dot\n" + "x" * 1500 + "\n=_tidings\n"
    msg = message(subject="Änderungen — 3 Einträge" + " lang" * 30, text=text, html=None)
    [outcome] = send_each(SmtpSender(settings(server.port)), msg)

    assert isinstance(outcome, Delivered)
    [got] = server.messages
    assert got.get_content_type() == "text/plain"
    assert got["Subject"] == msg.subject
    assert normalised(_body(got, "plain")) == text


@pytest.mark.parametrize(
    "subject",
    ["What changed " * 12, "x" * 1200, "Änderungen — 3 Einträge"],
    ids=["long-words", "one-long-word", "non-ascii"],
)
def test_subjects_are_folded_or_encoded_and_round_trip(
    server: LocalSmtpServer, subject: str
) -> None:
    [outcome] = send_each(SmtpSender(settings(server.port)), message(subject=subject))

    assert isinstance(outcome, Delivered)
    [got] = server.messages
    assert got["Subject"] == subject.strip()
    head = got.as_bytes().split(b"\n\n", 1)[0]
    assert max(len(line) for line in head.splitlines()) <= 998


def test_message_id_is_derived_from_the_idempotency_key(server: LocalSmtpServer) -> None:
    first, again, other = message(1), message(1), message(2)
    outcomes = send_each(SmtpSender(settings(server.port)), first, again, other)

    refs = [o.provider_ref for o in outcomes if isinstance(o, Delivered)]
    assert refs[0] == refs[1] == message_id_for(first.idempotency_key)
    assert refs[2] != refs[0]
    assert [m["Message-ID"] for m in server.messages] == refs
    assert refs[0].startswith("<")
    assert refs[0].endswith("@tidings>")


def test_saves_each_email_as_an_eml_file_named_by_message_id(tmp_path: Path) -> None:
    save_dir = tmp_path / "outbox"
    with LocalSmtpServer(save_dir=save_dir) as smtp:
        outcomes = send_each(SmtpSender(settings(smtp.port)), message(1), message(2))

    files = sorted(p.name for p in save_dir.iterdir())
    refs = sorted(o.provider_ref or "" for o in outcomes if isinstance(o, Delivered))
    assert files == [f"{ref.strip('<>')}.eml" for ref in refs]
    assert b"Subject: What changed for you" in (save_dir / files[0]).read_bytes()


def test_internationalised_address_is_sent_with_smtputf8(server: LocalSmtpServer) -> None:
    [outcome] = send_each(SmtpSender(settings(server.port)), message(address="jürgen@example.de"))

    assert isinstance(outcome, Delivered)
    assert server.messages[0].envelope_to == ("jürgen@example.de",)


def test_malformed_address_is_a_bad_address_without_connecting(server: LocalSmtpServer) -> None:
    [outcome] = send_each(SmtpSender(settings(server.port)), message(address="a@b.org\r\nRSET"))

    assert isinstance(outcome, PermanentFailure)
    assert outcome.bad_address
    assert server.connections == 0


# --- TLS and AUTH --------------------------------------------------------------------------


def test_starttls_with_a_private_ca(tls: Tls) -> None:
    with LocalSmtpServer(starttls_context=tls.server_context) as smtp:
        sender = SmtpSender(settings(smtp.port, security="starttls", ca_file=str(tls.ca_file)))
        [outcome] = send_each(sender, message())

        assert isinstance(outcome, Delivered)
        assert len(smtp.messages) == 1


def test_implicit_tls_with_auth(tls: Tls) -> None:
    with LocalSmtpServer(tls_context=tls.server_context, auth={"tidings": PASSWORD}) as smtp:
        config = settings(
            smtp.port,
            security="tls",
            ca_file=str(tls.ca_file),
            username="tidings",
            password_env="SMTP_PASSWORD",
        )
        sender = SmtpSender(config, environ={"SMTP_PASSWORD": PASSWORD})
        [outcome] = send_each(sender, message())

        assert isinstance(outcome, Delivered)
        assert len(smtp.messages) == 1


def test_untrusted_certificate_is_transient_unless_validation_is_off(tls: Tls) -> None:
    with LocalSmtpServer(starttls_context=tls.server_context) as smtp:
        strict = SmtpSender(settings(smtp.port, security="starttls"))  # system CAs only
        lax = SmtpSender(settings(smtp.port, security="starttls", validate_certs=False))
        [refused] = send_each(strict, message(1))
        [accepted] = send_each(lax, message(2))

    assert isinstance(refused, TransientFailure)
    assert "certificate" in refused.reason.lower()
    assert isinstance(accepted, Delivered)


def test_auth_over_starttls_and_a_wrong_password(tls: Tls) -> None:
    with LocalSmtpServer(starttls_context=tls.server_context, auth={"tidings": PASSWORD}) as smtp:
        config = settings(
            smtp.port,
            security="starttls",
            ca_file=str(tls.ca_file),
            username="tidings",
            password_env="SMTP_PASSWORD",
        )
        good = SmtpSender(config, environ={"SMTP_PASSWORD": PASSWORD})
        bad = SmtpSender(config, environ={"SMTP_PASSWORD": "not-" + PASSWORD})
        [ok] = send_each(good, message(1))
        [refused] = send_each(bad, message(2))

    assert isinstance(ok, Delivered)
    # 535: the relay refused our credentials. That is our configuration, not something a retry
    # fixes, and not the recipient's fault: permanent, bad_address=False.
    assert isinstance(refused, PermanentFailure)
    assert not refused.bad_address
    assert "535" in refused.reason
    assert PASSWORD not in refused.reason


def test_password_never_shows_and_logs_carry_no_personal_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with LocalSmtpServer(auth={"tidings": PASSWORD}) as smtp:
        config = settings(smtp.port, username="tidings", password_env="SMTP_PASSWORD")
        sender = SmtpSender(config, environ={"SMTP_PASSWORD": PASSWORD})
        assert PASSWORD not in repr(sender)
        assert PASSWORD not in str(sender)

        smtp.set_reply("person2@example.org", 550, "no such user")
        with caplog.at_level(logging.DEBUG, logger="tidings"):
            delivered, refused = send_each(sender, message(1), message(2))

    assert isinstance(delivered, Delivered)
    assert isinstance(refused, PermanentFailure)
    assert refused.bad_address
    assert PASSWORD not in repr(refused)
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("tidings"))
    assert ours  # the channel did log (connections), and none of it is personal
    assert PASSWORD not in ours
    assert "example.org" not in ours.replace("noreply@example.org", "")
    assert "Your placement" not in ours


def test_missing_password_variable_names_the_key() -> None:
    config = settings(25, username="tidings", password_env="SMTP_PASSWORD")
    with pytest.raises(ConfigError) as caught:
        SmtpSender(config, environ={})

    assert [key for key, _ in caught.value.problems] == ["channels.mail.password_env"]
    assert "SMTP_PASSWORD" in str(caught.value)


def test_unreadable_ca_file_names_the_key(tmp_path: Path) -> None:
    config = settings(25, security="starttls", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError) as caught:
        SmtpSender(config)

    assert [key for key, _ in caught.value.problems] == ["channels.mail.ca_file"]


# --- outcome mapping -----------------------------------------------------------------------


def test_recipient_and_data_replies_map_to_outcomes(server: LocalSmtpServer) -> None:
    server.set_reply("full@example.org", 452, "4.2.2 mailbox full")
    server.set_reply("gone@example.org", 550, "no such user")
    server.set_reply("blocked@example.org", 550, "5.7.1 relaying denied")
    sender = SmtpSender(settings(server.port), pool_size=1)

    async def body(s: SmtpSender) -> list[Outcome]:
        outcomes = [
            await s.send(message(1, address="full@example.org")),
            await s.send(message(2, address="gone@example.org")),
            await s.send(message(3, address="blocked@example.org")),
        ]
        server.reject_data(554, "5.6.0 message content rejected")
        outcomes.append(await s.send(message(4)))
        server.accept_data()
        outcomes.append(await s.send(message(5)))
        return outcomes

    full, gone, blocked, rejected, fine = run(sender, body)

    assert isinstance(full, TransientFailure)
    assert "452" in full.reason
    assert "mailbox full" in full.reason
    assert gone == PermanentFailure("SMTP 550 on RCPT: no such user", bad_address=True)
    assert isinstance(blocked, PermanentFailure)
    assert not blocked.bad_address
    assert isinstance(rejected, PermanentFailure)
    assert not rejected.bad_address
    assert "554" in rejected.reason
    assert "Your placement" not in rejected.reason
    assert isinstance(fine, Delivered)
    assert server.connections == 1  # refusals are reset (RSET), not reconnected
    assert [m["To"] for m in server.messages] == ["person5@example.org"]


def test_server_not_running_is_transient() -> None:
    [outcome] = send_each(SmtpSender(settings(free_port())), message())

    assert isinstance(outcome, TransientFailure)
    assert "connect" in outcome.reason


def test_server_that_never_greets_times_out_as_transient() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never says 220
        port = silent.getsockname()[1]
        [outcome] = send_each(SmtpSender(settings(port, timeout=0.3)), message())

    assert isinstance(outcome, TransientFailure)
    assert "timed out" in outcome.reason.lower()


# --- connections ---------------------------------------------------------------------------


def test_sequential_sends_reuse_one_connection(server: LocalSmtpServer) -> None:
    outcomes = send_each(SmtpSender(settings(server.port)), *(message(n) for n in range(30)))

    assert all(isinstance(o, Delivered) for o in outcomes)
    assert server.connections == 1
    assert server.received == 30


def test_concurrent_sends_use_separate_pooled_connections(server: LocalSmtpServer) -> None:
    sender = SmtpSender(settings(server.port), pool_size=4)

    async def body(s: SmtpSender) -> list[Outcome]:
        return await asyncio.gather(*(s.send(message(n)) for n in range(40)))

    outcomes = run(sender, body)

    assert all(isinstance(o, Delivered) for o in outcomes)
    assert server.connections == 4
    assert sorted(m["To"] for m in server.messages) == sorted(
        f"person{n}@example.org" for n in range(40)
    )


@pytest.mark.parametrize("notice_first", [True, False], ids=["noticed", "on-first-command"])
def test_reconnects_when_the_server_dropped_the_connection(
    server: LocalSmtpServer, notice_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(s: SmtpSender) -> list[Outcome]:
        first = await s.send(message(1))
        server.drop_connections()  # "421 closing" and close, as a relay's idle timeout does
        if notice_first:
            await asyncio.sleep(0.05)  # the client sees the close before the next send
        return [first, await s.send(message(2))]

    with caplog.at_level(logging.DEBUG, logger="tidings"):
        outcomes = run(SmtpSender(settings(server.port)), body)

    assert all(isinstance(o, Delivered) for o in outcomes)
    assert server.connections == 2
    assert server.received == 2
    # Noticed before use: simply reconnect. Else the first command fails and is retried.
    assert ("pooled connection was closed" in caplog.text) is not notice_first


def test_reconnects_after_the_server_idled_the_connection_out() -> None:
    with LocalSmtpServer(idle_timeout=0.2) as smtp:

        async def body(s: SmtpSender) -> list[Outcome]:
            first = await s.send(message(1))
            await asyncio.sleep(0.5)
            return [first, await s.send(message(2))]

        outcomes = run(SmtpSender(settings(smtp.port)), body)

        assert all(isinstance(o, Delivered) for o in outcomes)
        assert smtp.connections == 2


def test_a_421_on_a_reused_connection_is_retried_once_on_a_new_one(
    server: LocalSmtpServer,
) -> None:
    async def body(s: SmtpSender) -> list[Outcome]:
        outcomes = [await s.send(message(1))]
        server.fail_next_mail(421, "4.3.2 shutting down")
        outcomes.append(await s.send(message(2)))  # retried on a fresh connection
        server.fail_next_mail(421, "4.3.2 shutting down", times=2)
        outcomes.append(await s.send(message(3)))  # the fresh one says 421 too: give up
        return outcomes

    first, retried, refused = run(SmtpSender(settings(server.port)), body)

    assert isinstance(first, Delivered)
    assert isinstance(retried, Delivered)
    assert isinstance(refused, TransientFailure)
    assert "421" in refused.reason
    assert server.received == 2


# --- the dev server on its own -------------------------------------------------------------


def test_devsmtp_runs_as_a_process_and_saves_mail(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tidings.demo.smtp_server", "--port", "0"]
    command += ["--save-dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        [outcome] = send_each(SmtpSender(settings(port)), message())
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)

    assert isinstance(outcome, Delivered)
    assert process.returncode == 0
    assert "received 1 messages" in stderr
    assert [p.suffix for p in tmp_path.iterdir()] == [".eml"]


def _body(email: ReceivedMessage, subtype: str) -> str:
    part = email.get_body(preferencelist=(subtype,))
    assert part is not None
    assert part.get_content_subtype() == subtype
    content = part.get_content()
    assert isinstance(content, str)
    return content


# --- List-Unsubscribe (RFC 2369, RFC 8058) ---------------------------------------------------

LINK_SECRET = "a-link-secret-of-some-length"


def unsubscribe_links(url: str) -> Links:
    links = links_from(LinksConfig(unsubscribe_url=url), {"TIDINGS_LINK_SECRET": LINK_SECRET})
    assert links is not None
    return links


def test_unsubscribe_headers_arrive_with_a_token_signed_for_the_recipient_and_channel(
    tmp_path: Path,
) -> None:
    links = unsubscribe_links("https://prefs.example.org/unsubscribe?token={token}")
    with LocalSmtpServer(save_dir=tmp_path) as smtp:
        sender = SmtpSender(settings(smtp.port), links=links)
        [outcome] = send_each(sender, message(7))
        [got] = smtp.messages

    assert isinstance(outcome, Delivered)
    header = got["List-Unsubscribe"]
    assert header.startswith("<https://prefs.example.org/unsubscribe?token=")
    assert header.endswith(">")
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = header.removesuffix(">").split("token=", 1)[1]
    claim = links.signer.verify(token, "unsubscribe")
    assert (claim.recipient, claim.scope) == ("person-7", "mail")
    # As sent: one unfolded line, no RFC 2047 encoded word (a URI must never be encoded).
    [raw] = [p.read_bytes() for p in tmp_path.iterdir()]
    assert f"\r\nList-Unsubscribe: {header}\r\n".encode() in raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw


def test_an_http_unsubscribe_link_gets_no_one_click_header(server: LocalSmtpServer) -> None:
    links = unsubscribe_links("http://intranet.example/u/{token}/confirm")
    send_each(SmtpSender(settings(server.port), links=links), message(1, recipient="T ü 1"))
    [got] = server.messages

    header = got["List-Unsubscribe"]
    assert header.startswith("<http://intranet.example/u/v1.")
    assert header.endswith("/confirm>")
    assert "List-Unsubscribe-Post" not in got
    token = header.removeprefix("<http://intranet.example/u/").removesuffix("/confirm>")
    assert links.signer.verify(token, "unsubscribe").recipient == "T ü 1"


def test_without_an_unsubscribe_url_there_are_no_list_headers(server: LocalSmtpServer) -> None:
    secret = {"TIDINGS_LINK_SECRET": LINK_SECRET}
    only_preferences = links_from(
        LinksConfig(preferences_url="https://prefs.example.org/?t={token}"), secret
    )
    send_each(SmtpSender(settings(server.port)), message(1))
    send_each(SmtpSender(settings(server.port), links=only_preferences), message(2))

    assert len(server.messages) == 2
    for got in server.messages:
        assert "List-Unsubscribe" not in got
        assert "List-Unsubscribe-Post" not in got


def test_a_link_too_long_for_one_header_line_is_left_out_not_broken(
    server: LocalSmtpServer,
) -> None:
    links = unsubscribe_links("https://prefs.example.org/unsubscribe?token={token}")
    [outcome] = send_each(
        SmtpSender(settings(server.port), links=links), message(1, recipient="x" * 900)
    )
    [got] = server.messages

    assert isinstance(outcome, Delivered)
    assert "List-Unsubscribe" not in got
    assert "List-Unsubscribe-Post" not in got
