"""Signed links inside a digest: 👍/👎 feedback and "view in browser"."""

from django.core import signing

from subscriptions.links import token_url
from subscriptions.tokens import signer

FEEDBACK_SALT = "paperboy.digest.feedback"
VIEW_SALT = "paperboy.digest.view"


def feedback_url(subscriber, paper, vote: int) -> str:
    # What signing.dumps() makes, with a signer made once per salt and key.
    token = signer(FEEDBACK_SALT).sign_object({"s": subscriber.key.hex, "p": paper.pk, "v": vote})
    return token_url("digest:feedback", token)


def view_url(digest) -> str:
    token = signer(VIEW_SALT).sign_object({"s": digest.subscriber.key.hex, "d": digest.pk})
    return token_url("digest:view", token)


def read(token: str, salt: str) -> dict | None:
    try:
        data = signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    return data if isinstance(data, dict) else None
