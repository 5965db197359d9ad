"""Signed, opaque links: the only way a subscriber proves who they are.

A token signs the subscriber's random key (never the primary key) with a salt
per purpose, so a confirmation token cannot be used as an unsubscribe token and
nothing in a token can be edited into another subscriber's.
"""

from enum import StrEnum
from functools import lru_cache

from django.conf import settings
from django.core import signing

from subscriptions.models import Subscriber

CONFIRM_MAX_AGE = 7 * 24 * 3600


class Purpose(StrEnum):
    CONFIRM = "confirm"
    MANAGE = "manage"
    UNSUBSCRIBE = "unsubscribe"


# Confirmation links expire; manage and unsubscribe links in old emails must keep working.
MAX_AGE = {Purpose.CONFIRM: CONFIRM_MAX_AGE, Purpose.MANAGE: None, Purpose.UNSUBSCRIBE: None}


class BadToken(Exception):
    def __init__(self, expired: bool = False):
        self.expired = expired


def _signer(purpose: Purpose) -> signing.TimestampSigner:
    return signer(f"paperboy.subscriptions.{purpose}")


def signer(salt: str) -> signing.TimestampSigner:
    """A TimestampSigner for the salt and the current SECRET_KEY, made once: a digest
    signs two dozen links, and making the signer is a good part of each signing."""
    return _cached_signer(salt, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


@lru_cache(maxsize=16)
def _cached_signer(salt: str, key: str, fallbacks: tuple[str, ...]) -> signing.TimestampSigner:
    return signing.TimestampSigner(key=key, fallback_keys=list(fallbacks), salt=salt)


def make_token(subscriber, purpose: Purpose) -> str:
    return _signer(purpose).sign(subscriber.key.hex)


def read_token(token: str, purpose: Purpose):
    """The subscriber a token was made for; BadToken if forged, expired or unknown."""
    try:
        key = _signer(purpose).unsign(token, max_age=MAX_AGE[purpose])
    except signing.SignatureExpired:
        raise BadToken(expired=True) from None
    except signing.BadSignature:
        raise BadToken() from None
    try:
        return Subscriber.objects.get(key=key)
    except (Subscriber.DoesNotExist, ValueError):
        raise BadToken() from None
