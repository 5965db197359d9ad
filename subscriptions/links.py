"""Absolute, signed links for emails, and the List-Unsubscribe headers built from them."""

from urllib.parse import quote

from django.conf import settings
from django.urls import reverse

from subscriptions.tokens import Purpose, make_token


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def confirm_url(subscriber) -> str:
    return absolute(
        reverse("subscriptions:confirm", args=[make_token(subscriber, Purpose.CONFIRM)])
    )


def manage_url(subscriber) -> str:
    return absolute(reverse("subscriptions:manage", args=[make_token(subscriber, Purpose.MANAGE)]))


def unsubscribe_url(subscriber) -> str:
    token = make_token(subscriber, Purpose.UNSUBSCRIBE)
    return absolute(reverse("subscriptions:unsubscribe", args=[token]))


def list_unsubscribe_headers(subscriber) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe (https and mailto) and RFC 8058 one-click headers."""
    token = make_token(subscriber, Purpose.UNSUBSCRIBE)
    https = absolute(reverse("subscriptions:unsubscribe", args=[token]))
    mailto = (
        f"mailto:{settings.PAPERBOY_UNSUBSCRIBE_MAILTO}?subject={quote(f'unsubscribe {token}')}"
    )
    return {
        "List-Unsubscribe": f"<{https}>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
