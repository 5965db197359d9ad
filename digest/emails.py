"""Every email Paperboy sends is composed and sent here.

Each email is three templates: emails/<name>-subject.txt, -body.txt and -body.html.
"""

import random
import smtplib

from django.conf import settings
from django.core import mail
from django.template.loader import render_to_string

from subscriptions import links


def render(name: str, context: dict) -> tuple[str, str, str]:
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    text = render_to_string(f"emails/{name}-body.txt", context)
    html = render_to_string(f"emails/{name}-body.html", context)
    return subject, text, html


def build(name: str, to: str, context: dict, *, from_email=None, headers=None):
    subject, text, html = render(name, context)
    message = mail.EmailMultiAlternatives(
        subject, text, from_email or settings.DEFAULT_FROM_EMAIL, [to], headers=headers or {}
    )
    message.attach_alternative(html, "text/html")
    return message


def _subscriber_context(subscriber) -> dict:
    return {
        "subscriber": subscriber,
        "manage_url": links.manage_url(subscriber),
        "site_url": settings.SITE_URL,
    }


def send_confirmation(subscriber) -> None:
    context = _subscriber_context(subscriber) | {"confirm_url": links.confirm_url(subscriber)}
    build("confirm", subscriber.email, context).send()


def send_manage_link(subscriber) -> None:
    context = _subscriber_context(subscriber) | {
        "unsubscribe_url": links.unsubscribe_url(subscriber)
    }
    build("manage", subscriber.email, context).send()


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the server or network may do better later (SMTP 4xx, timeouts)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError)


def backoff(retries: int, base: float = 30, cap: float = 3600) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**retries))  # noqa: S311 - not security
