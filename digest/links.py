"""Signed links inside a digest: 👍/👎 feedback and "view in browser"."""

from django.core import signing
from django.urls import reverse

from subscriptions.links import absolute

FEEDBACK_SALT = "paperboy.digest.feedback"
VIEW_SALT = "paperboy.digest.view"


def feedback_url(subscriber, paper, vote: int) -> str:
    token = signing.dumps({"s": subscriber.key.hex, "p": paper.pk, "v": vote}, salt=FEEDBACK_SALT)
    return absolute(reverse("digest:feedback", args=[token]))


def view_url(digest) -> str:
    token = signing.dumps({"s": digest.subscriber.key.hex, "d": digest.pk}, salt=VIEW_SALT)
    return absolute(reverse("digest:view", args=[token]))


def read(token: str, salt: str) -> dict | None:
    try:
        data = signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    return data if isinstance(data, dict) else None
