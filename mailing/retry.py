"""What a mail error means for the message: retry it, give it up, or stop mailing the
address; and how long to wait before the next try."""

import random
import smtplib

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the server or network may do better later (SMTP 4xx, timeouts,
    an ESP's 429 or 5xx)."""
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        return status is None or status == 429 or status >= 500  # None: no response at all
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError)


def is_permanent_refusal(exc: BaseException) -> bool:
    """The server or ESP will never take mail for this recipient: suppress the address."""
    if isinstance(exc, AnymailRecipientsRefused):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code >= 500 for code, _ in exc.recipients.values())
    return False


def backoff(retries: int, base: float | None = None, cap: float = 3600) -> float:
    """Exponential backoff with full jitter, from PAPERBOY_RETRY_DELAY seconds."""
    base = settings.PAPERBOY_RETRY_DELAY if base is None else base
    return random.uniform(0, min(cap, base * 2**retries))  # noqa: S311 - not security
