"""Absolute, signed links for emails, and the List-Unsubscribe headers built from them."""

from collections.abc import Callable
from functools import lru_cache
from urllib.parse import quote

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse

from subscriptions.tokens import Purpose, make_token

_PLACEHOLDER = "paperboyplaceholder"


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


@lru_cache(maxsize=64)
def _route(name: str, urlconf: str, script_prefix: str) -> tuple[str, str]:
    before, _, after = reverse(name, urlconf=urlconf, args=[_PLACEHOLDER]).partition(_PLACEHOLDER)
    return before, after


def token_url(name: str, token: str) -> str:
    """The absolute URL of ``reverse(name, args=[token])``."""
    return token_urls(name)(token)


def token_urls(name: str) -> Callable[[str], str]:
    """``token_url`` for one route, looked up once: for the many links of one email.

    Without reverse()'s cost for each link (about 50 µs, and a digest has two dozen
    links): the route is reversed once and the token, URL-safe as signing makes it,
    put in its place.
    """
    before, after = _route(name, get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())
    before = f"{settings.SITE_URL}{before}"
    return lambda token: f"{before}{token}{after}"


def confirm_url(subscriber) -> str:
    return token_url("subscriptions:confirm", make_token(subscriber, Purpose.CONFIRM))


def manage_url(subscriber) -> str:
    return token_url("subscriptions:manage", make_token(subscriber, Purpose.MANAGE))


def unsubscribe_url(subscriber) -> str:
    return token_url("subscriptions:unsubscribe", make_token(subscriber, Purpose.UNSUBSCRIBE))


def list_unsubscribe_headers(subscriber) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe (https and mailto) and RFC 8058 one-click headers."""
    token = make_token(subscriber, Purpose.UNSUBSCRIBE)
    https = token_url("subscriptions:unsubscribe", token)
    mailto = (
        f"mailto:{settings.PAPERBOY_UNSUBSCRIBE_MAILTO}?subject={quote(f'unsubscribe {token}')}"
    )
    return {
        "List-Unsubscribe": f"<{https}>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
