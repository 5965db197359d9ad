"""Every email Paperboy sends is composed and sent here.

Each email is three templates: emails/<name>-subject.txt, -body.txt and -body.html.
"""

import random
import smtplib
from functools import cache
from urllib.parse import urlsplit

import css_inline
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core import mail
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import Truncator

from digest import links as digest_links
from digest.compose import Pick
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


@cache
def _inliner() -> css_inline.CSSInliner:
    # Keep the <style> block too: clients that support media queries (dark mode,
    # narrow screens) use it, the others use the inlined styles.
    return css_inline.CSSInliner(keep_style_tags=True)


def site_domain() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def digest_context(digest, picks, reasons: list[str] | None = None) -> dict:
    """Everything the digest templates show, evaluated up front: templates never query.

    ``reasons`` replaces each pick's reason, for a digest shown again from its ledger.
    """
    subscriber = digest.subscriber
    reasons = reasons or [pick.reason for pick in picks]
    papers = [
        {
            "title": pick.paper.title,
            "url": pick.paper.url,
            "authors": Truncator(", ".join(pick.paper.authors)).chars(160),
            "snippet": Truncator(pick.paper.abstract).words(60),
            "reason": reason,
            "upvotes": pick.paper.upvotes,
            "featured": pick.paper.featured,
            "up_url": digest_links.feedback_url(subscriber, pick.paper, 1),
            "down_url": digest_links.feedback_url(subscriber, pick.paper, -1),
        }
        for pick, reason in zip(picks, reasons, strict=True)
    ]
    local_date = timezone.localtime(digest.scheduled_for, subscriber.zoneinfo).date()
    return {
        "papers": papers,
        "date": local_date,
        "weekly": subscriber.frequency == "weekly",
        "view_url": digest_links.view_url(digest),
        "manage_url": links.manage_url(subscriber),
        "unsubscribe_url": links.unsubscribe_url(subscriber),
        "site_url": settings.SITE_URL,
    }


def render_digest(digest, picks, reasons: list[str] | None = None) -> tuple[str, str, str]:
    subject, text, html = render("digest", digest_context(digest, picks, reasons))
    return subject, text, _inliner().inline(html)


def render_sent_digest(digest) -> tuple[str, str, str] | None:
    """A digest as it was mailed: the papers and reasons it was sent with, from the
    ledger, not recomposed today. None when it carried no papers (skipped, failed)."""
    items = list(digest.items.select_related("paper"))
    if not items:
        return None
    picks = [Pick(paper=item.paper, relevance=item.score) for item in items]
    return render_digest(digest, picks, reasons=[item.reason for item in items])


def build_digest(digest, picks) -> mail.EmailMultiAlternatives:
    subject, text, html = render_digest(digest, picks)
    domain = site_domain()
    headers = links.list_unsubscribe_headers(digest.subscriber) | {
        "List-Id": f"Paperboy digest <digest.{domain}>",
        "Auto-Submitted": "auto-generated",
        "Message-ID": mail.make_msgid("digest", domain=domain),
    }
    message = mail.EmailMultiAlternatives(
        subject, text, settings.DIGEST_FROM_EMAIL, [digest.subscriber.email], headers=headers
    )
    message.attach_alternative(html, "text/html")
    return message


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


def backoff(retries: int, base: float = 30, cap: float = 3600) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**retries))  # noqa: S311 - not security
