"""The default mailer for a batch: one connection, and each message handed over in two
steps around the caller's commit that records it as going out: ``stage`` before it,
``release`` after.

Over SMTP a message goes as bytes (mailing.mime), and ``stage`` sends all of it but
the final dot (mailing.smtp). Other mailers (ESPs, the .eml outbox, tests' locmem) get
Django's message object, all of it in ``release``; an ESP's error that does not prove
the message stayed behind becomes ``OutcomeUnknown``.
"""

import ssl
from collections.abc import Callable

import requests
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.core import mail
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from urllib3.exceptions import NewConnectionError

from mailing import smtp
from mailing.message import Outgoing
from mailing.smtp import OutcomeUnknown

__all__ = ["Outbox", "OutcomeUnknown"]


class Outbox:
    def __init__(self):
        self.mailer = mail.mailers.default
        self.raw = isinstance(self.mailer, SMTPBackend)
        self.in_data = False

    def stage(self, message: Outgoing) -> None:
        """Everything short of the point of no return: over SMTP, the envelope and the
        message without its final dot; for other mailers, nothing."""
        if not self.raw:
            return
        if self.mailer.connection is None:
            self.mailer.open()
        self.in_data = True
        connection = self.mailer.connection
        smtp.send_all_but_the_dot(connection, message.sender, message.recipient, message.raw)

    def release(self, message: Outgoing, handed_over: Callable[[], None] | None = None) -> str:
        """Hand the message over (the dot, or the ESP request); the message id the
        ESP's webhooks will report. ``OutcomeUnknown`` when it may have been delivered
        without a word back. ``handed_over`` is called at the point of no return: once
        the dot is written, before the verdict; an ESP request is one step, so before it.
        """
        if not self.raw:
            if handed_over is not None:
                handed_over()
            try:
                self.mailer.send_messages([message.email])
            except AnymailRecipientsRefused:
                raise  # the ESP answered: it will not send to them
            except Exception as exc:
                if never_reached_esp(exc):
                    raise
                raise OutcomeUnknown(f"{type(exc).__name__}: {exc}") from exc
            return message_id(message.email)
        self.in_data = False
        smtp.end_data(self.mailer.connection, handed_over)
        return message.message_id

    def close(self) -> None:
        if self.in_data and self.mailer.connection is not None:
            # Inside DATA a QUIT would be read as part of the message: drop the
            # connection instead, and the server discards what it has of it.
            self.mailer.connection.close()
            self.mailer.connection = None
        self.in_data = False
        self.mailer.close()


def send_now(message: mail.EmailMessage) -> None:
    """One message through the default mailer, on a connection of its own."""
    connection = mail.mailers.default
    try:
        connection.send_messages([message])
    finally:
        connection.close()


def message_id(message: mail.EmailMessage) -> str:
    """The id the ESP's webhooks will report: anymail's, else our Message-ID header."""
    status = getattr(message, "anymail_status", None)
    esp_id = getattr(status, "message_id", None)
    return esp_id if isinstance(esp_id, str) else message.extra_headers["Message-ID"]


# Failed before the request could leave: no connection (refused, DNS, a connect
# timeout, the proxy), or a request that could not be made at all.
_BEFORE_SENDING = (
    NewConnectionError,
    requests.exceptions.ConnectTimeout,
    requests.exceptions.ProxyError,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    # A certificate that fails verification fails the handshake; other TLS errors may
    # come while the answer is read, after the request went out.
    ssl.SSLCertVerificationError,
)


def never_reached_esp(exc: Exception) -> bool:
    """Whether an ESP call certainly did not send the message: the ESP refused it (4xx,
    429 included), or the request never left. Anything else (a 5xx, no answer, an
    answer anymail could not read, an error of another kind) may have been accepted,
    and the message is "unknown" rather than sent twice."""
    if not isinstance(exc, AnymailError):
        return False
    if not isinstance(exc, AnymailAPIError):
        # Raised by anymail itself before any call: an address it cannot send to, a
        # feature the ESP lacks, a payload it cannot serialize, its configuration.
        return True
    if exc.status_code is not None:
        return 400 <= exc.status_code < 500
    return _caused_by(exc, _BEFORE_SENDING)


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or what it wraps (requests' ConnectionError wraps urllib3's
    MaxRetryError, whose ``reason`` is the error itself) is one of ``kinds``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, kinds):
            return True
        reason = getattr(error, "reason", None)
        wrapped = [reason, error.__cause__, error.__context__, *error.args]
        todo.extend(item for item in wrapped if isinstance(item, BaseException))
    return False
