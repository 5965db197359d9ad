"""A real SMTP server on loopback (aiosmtpd), with fault injection.

Fixtures:

- ``smtp_server``: a running server; see :class:`SMTPServer` for what it offers.
- ``smtp_mailer``: the same server, made Django's default mailer for the test.

Every test gets its own server on its own port, so recorded messages and injected
faults never leak from one test to the next.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
_STATUS = re.compile(r"^[45]\d\d[ -]")


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted, exactly as it came over the wire."""

    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]

    @property
    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


def _checked_status(status: str) -> str:
    if not _STATUS.match(status):
        raise ValueError(f"expected an SMTP error reply such as '421 4.3.0 ...', got {status!r}")
    return status


@dataclass
class _Handler:
    """aiosmtpd handler; its hooks run on the controller's event-loop thread."""

    condition: threading.Condition = field(default_factory=threading.Condition)
    messages: list[ReceivedMessage] = field(default_factory=list)
    # One status per message still to be refused at DATA, oldest first.
    data_failures: deque[str] = field(default_factory=deque)
    # Recipient (case-folded) -> status answered to its RCPT TO.
    refused_recipients: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.condition:
            status = self.refused_recipients.get(address.casefold())
        if status is not None:
            return status
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.condition:
            if self.data_failures:
                return self.data_failures.popleft()
            raw = envelope.original_content or envelope.content
            if isinstance(raw, str):
                raw = raw.encode("utf-8", "surrogateescape")
            self.messages.append(
                ReceivedMessage(
                    raw=bytes(raw),
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                )
            )
            self.condition.notify_all()
        return "250 Message accepted for delivery"


class SMTPServer:
    """A running SMTP server; the fixture's value.

    ``host``/``port`` say where it listens; ``messages`` is a snapshot of the accepted
    messages (``ReceivedMessage``: ``.raw``, ``.mail_from``, ``.rcpt_tos``, ``.parsed``).
    """

    def __init__(self, host: str, port: int, handler: _Handler):
        self.host = host
        self.port = port
        self._handler = handler

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._handler.condition:
            return list(self._handler.messages)

    def fail_next(self, n: int, status: str) -> None:
        """Answer ``status`` (e.g. "421 4.3.0 Try again later") to the DATA of the next
        ``n`` messages; those messages are not recorded."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        status = _checked_status(status)
        with self._handler.condition:
            self._handler.data_failures.extend([status] * n)

    def refuse_recipient(self, address: str, status: str) -> None:
        """Answer ``status`` (e.g. "550 5.1.1 No such user") to every RCPT TO for
        ``address`` (compared ignoring case), for as long as this server runs."""
        status = _checked_status(status)
        with self._handler.condition:
            self._handler.refused_recipients[address.casefold()] = status

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages have arrived; return them all."""
        with self._handler.condition:
            arrived = self._handler.condition.wait_for(
                lambda: len(self._handler.messages) >= count, timeout=timeout
            )
            messages = list(self._handler.messages)
        if not arrived:
            got = [(m.mail_from, list(m.rcpt_tos), m.parsed["Subject"]) for m in messages]
            raise AssertionError(
                f"expected at least {count} message(s) at smtp://{self.host}:{self.port} "
                f"within {timeout}s, {len(messages)} arrived: {got}"
            )
        return messages

    def mailer_settings(self) -> dict:
        """One entry of Django's MAILERS setting that delivers to this server."""
        return {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": self.host,
                "port": self.port,
                "use_tls": False,
                "use_ssl": False,
                "timeout": 10,
            },
        }

    def __repr__(self) -> str:
        return f"<SMTPServer smtp://{self.host}:{self.port}>"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback that records what it accepts."""
    handler = _Handler()
    # aiosmtpd logs every command at INFO; keep its warnings and errors only.
    log = logging.getLogger("mail.log")
    level = log.level
    log.setLevel(logging.WARNING)
    # server_hostname: without it aiosmtpd asks socket.getfqdn(), a DNS look-up.
    controller = Controller(handler, hostname=HOST, port=_free_port(), server_hostname="localhost")
    controller.start()
    try:
        yield SMTPServer(HOST, controller.port, handler)
    finally:
        controller.stop()
        log.setLevel(level)


@pytest.fixture
def smtp_mailer(settings, smtp_server):
    """``smtp_server``, made Django's default mailer for this test."""
    settings.MAILERS = {"default": smtp_server.mailer_settings()}
    return smtp_server
