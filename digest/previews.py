"""The digest a subscriber would get now, rendered and recorded nowhere."""

import datetime as dt

from digest import rendering
from digest.compose import compose
from digest.models import Digest
from subscriptions.models import Subscriber

PREVIEW_PERIOD = "preview"


def unsaved(subscriber: Subscriber, now: dt.datetime) -> Digest:
    """A digest that claims nothing and records nothing."""
    return Digest(subscriber=subscriber, period=PREVIEW_PERIOD, scheduled_for=now, pk=0)


def preview(subscriber: Subscriber, now: dt.datetime) -> tuple[str, str, str] | None:
    """The digest the subscriber would get now, rendered: (subject, text, html); None
    when nothing is new. Writes nothing."""
    picks = compose(subscriber, until=now)
    if not picks:
        return None
    return rendering.render_digest(unsaved(subscriber, now), picks)


def preview_bytes(subscriber: Subscriber, now: dt.datetime) -> bytes:
    """The raw message of the digest the subscriber would get now, as an SMTP server
    receives it. Writes nothing; the benchmark's ceiling sends it."""
    picks = compose(subscriber, until=now)
    digest = unsaved(subscriber, now)
    return rendering.digest_bytes(digest, rendering.render_digest(digest, picks))[1]
