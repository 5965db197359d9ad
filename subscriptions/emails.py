"""The emails of a subscription: confirm the address, the manage link, the welcome."""

from django.conf import settings

from mailing import message, transport
from papers.matching import rescore_topic
from papers.topics import fresh_interests, previews_context
from subscriptions import links


def _subscriber_context(subscriber) -> dict:
    return {
        "subscriber": subscriber,
        "manage_url": links.manage_url(subscriber),
        "site_url": settings.SITE_URL,
    }


def send_confirmation(subscriber) -> None:
    context = _subscriber_context(subscriber) | {"confirm_url": links.confirm_url(subscriber)}
    transport.send_now(message.build("confirm", subscriber.email, context))


def send_manage_link(subscriber) -> None:
    context = _subscriber_context(subscriber) | {
        "unsubscribe_url": links.unsubscribe_url(subscriber)
    }
    transport.send_now(message.build("manage", subscriber.email, context))


def send_welcome(subscriber) -> None:
    """After confirmation: when the first digest comes, and what the reader's topics
    match today, so that nobody waits in silence for a digest that cannot come."""
    # The confirmation created the reader's interests moments ago, and their scoring is
    # a task of its own that may not have run yet: score them first (again, if it did:
    # the rows are the same), so that the email says what they match.
    for topic in fresh_interests(subscriber.topics.all()):
        rescore_topic(topic)
    context = (
        _subscriber_context(subscriber)
        | {"unsubscribe_url": links.unsubscribe_url(subscriber)}
        | previews_context(subscriber.topics.order_by("name"))
    )
    transport.send_now(message.build("welcome", subscriber.email, context))
