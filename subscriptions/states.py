"""The subscriber's state machine (Subscriber.TRANSITIONS): every change of status is a
conditional UPDATE from the statuses it may come from."""

from django.utils import timezone

from subscriptions.models import Subscriber
from subscriptions.schedule import next_due


def move(subscriber: Subscriber, from_statuses, **changes) -> bool:
    """Change a subscriber only if they are still in one of ``from_statuses``: a
    conditional UPDATE, so that concurrent requests and webhooks cannot undo each other."""
    new = changes.get("status")
    if new is not None and not all(Subscriber.can_move(old, new) for old in from_statuses):
        raise ValueError(f"not a transition of Subscriber.TRANSITIONS: {from_statuses} -> {new}")
    moved = Subscriber.objects.filter(pk=subscriber.pk, status__in=from_statuses).update(
        updated_at=timezone.now(), **changes
    )
    if moved:
        for name, value in changes.items():
            setattr(subscriber, name, value)
    return bool(moved)


def pause(subscriber: Subscriber) -> None:
    move(subscriber, [Subscriber.Status.ACTIVE], status=Subscriber.Status.PAUSED, next_due_at=None)


def resume(subscriber: Subscriber) -> None:
    move(
        subscriber,
        [Subscriber.Status.PAUSED],
        status=Subscriber.Status.ACTIVE,
        next_due_at=next_due(subscriber, timezone.now()),
    )


def unsubscribe(subscriber: Subscriber) -> None:
    """Idempotent; a suppressed address stays suppressed."""
    move(
        subscriber,
        [Subscriber.Status.PENDING, Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED],
        status=Subscriber.Status.UNSUBSCRIBED,
        next_due_at=None,
    )
