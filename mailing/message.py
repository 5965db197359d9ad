"""Templates into a message, and a message into what a mailer takes.

Each email is three templates: emails/<name>-subject.txt, -body.txt and -body.html.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core import mail
from django.template.loader import render_to_string

from mailing import mime


def render(name: str, context: dict) -> tuple[str, str, str]:
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    text = render_to_string(f"emails/{name}-body.txt", context)
    html = render_to_string(f"emails/{name}-body.html", context)
    return subject, text, html


def build(name: str, to: str, context: dict, *, from_email=None, headers=None):
    """An email from its templates, as Django's message object."""
    subject, text, html = render(name, context)
    return email(from_email or settings.DEFAULT_FROM_EMAIL, to, subject, text, html, headers or {})


def email(
    sender: str, to: str, subject: str, text: str, html: str, headers: dict[str, str]
) -> mail.EmailMultiAlternatives:
    """Text and HTML as Django's message object, for any mailer (ESPs among them)."""
    message = mail.EmailMultiAlternatives(subject, text, sender, [to], headers=headers)
    message.attach_alternative(html, "text/html")
    return message


def site_domain() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"


@dataclass(frozen=True)
class Outgoing:
    """A message ready for the mailer: the raw bytes an SMTP server receives (built by
    mailing.mime, for speed), or, for any other mailer, Django's message object."""

    message_id: str
    raw: bytes | None = None
    email: mail.EmailMultiAlternatives | None = None
    # The envelope, as MAIL FROM and RCPT TO take it (SMTP only).
    sender: str = ""
    recipient: str = ""


def outgoing(
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    headers: dict[str, str],
    *,
    raw: bool,
) -> Outgoing:
    """The message as bytes (``raw``) or as Django's message object; ``headers`` carries
    its Message-ID."""
    if raw:
        data = mime.multipart_alternative(
            from_email=sender, to=to, subject=subject, headers=headers, text=text, html=html
        )
        envelope = mime.address(sender)[1], mime.address(to)[1]
        return Outgoing(headers["Message-ID"], raw=data, sender=envelope[0], recipient=envelope[1])
    return Outgoing(headers["Message-ID"], email=email(sender, to, subject, text, html, headers))
