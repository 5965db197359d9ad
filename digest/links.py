"""Signed links inside a digest: 👍/👎 feedback and "view in browser"."""

from collections.abc import Callable

from django.core import signing

from papers.models import Paper
from subscriptions.links import token_url, token_urls
from subscriptions.tokens import signer

FEEDBACK_SALT = "paperboy.digest.feedback"
VIEW_SALT = "paperboy.digest.view"


def feedback_url(subscriber, paper, vote: int) -> str:
    return feedback_urls(subscriber)(paper, vote)


def feedback_urls(subscriber) -> Callable[[Paper, int], str]:
    """``feedback_url`` for one subscriber's papers, with what every link shares (the
    signer, the route, the key) looked up once: a digest has two per paper."""
    # What signing.dumps() makes, with a signer made once per salt and key.
    sign = signer(FEEDBACK_SALT).sign_object
    url = token_urls("digest:feedback")
    key = subscriber.key.hex
    return lambda paper, vote: url(sign({"s": key, "p": paper.pk, "v": vote}))


def view_url(digest) -> str:
    token = signer(VIEW_SALT).sign_object({"s": digest.subscriber.key.hex, "d": digest.pk})
    return token_url("digest:view", token)


def read(token: str, salt: str) -> dict | None:
    try:
        data = signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    return data if isinstance(data, dict) else None
