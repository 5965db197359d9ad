"""What the subscription pages do, apart from HTTP."""

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from papers.models import Topic
from papers.signals import defer_rescoring
from subscriptions import states, tasks
from subscriptions.models import DeliveryEvent, Subscriber
from subscriptions.schedule import next_due
from subscriptions.signals import export_collecting, message_ids_collecting

PREFERENCE_FIELDS = ["frequency", "weekday", "send_hour", "timezone", "max_papers"]


def apply_preferences(subscriber: Subscriber, cleaned: dict) -> None:
    """Save the preference fields and topics of a validated PreferencesForm; a pending
    subscriber's interests wait for the confirmation (``pending_interests``)."""
    _set_preferences(subscriber, cleaned)
    fields = [*PREFERENCE_FIELDS, "pending_interests", "updated_at"]
    if subscriber.status == Subscriber.Status.ACTIVE:
        subscriber.next_due_at = next_due(subscriber, timezone.now())
        fields.append("next_due_at")
    # Only these columns: an unsubscribe or a bounce that lands meanwhile must stand.
    subscriber.save(update_fields=fields)
    subscriber.topics.set(_topics(cleaned, subscriber))


def _set_preferences(subscriber: Subscriber, cleaned: dict) -> None:
    for name in PREFERENCE_FIELDS:
        setattr(subscriber, name, cleaned[name])
    pending = subscriber.status == Subscriber.Status.PENDING
    subscriber.pending_interests = list(cleaned["interests"]) if pending else []


def _topics(cleaned: dict, subscriber: Subscriber) -> list[Topic]:
    """The subscriber's topics: the curated ones chosen, and the interests typed once
    the address is confirmed."""
    pending = subscriber.status == Subscriber.Status.PENDING
    interests = [] if pending else _interest_topics(cleaned["interests"])
    # An interest named like a chosen curated topic is that topic: once is enough.
    return list({topic.pk: topic for topic in [*cleaned["topics"], *interests]}.values())


def interest_names(subscriber: Subscriber, topics: list[Topic]) -> list[str]:
    """The reader's interests as typed: their interest topics (among ``topics``, the
    subscriber's), and those waiting for the confirmation."""
    return [t.name for t in topics if t.kind == Topic.Kind.INTEREST] + subscriber.pending_interests


def _interest_topics(names: list[str]) -> list[Topic]:
    with defer_rescoring():
        return [Topic.for_interest(text) for text in names]


def _create(cleaned: dict) -> Subscriber | None:
    """A new pending subscriber with its preferences and topics, in as few statements
    as it takes (the common case of a sign-up); None if the address exists already."""
    subscriber = Subscriber(email=cleaned["email"], status=Subscriber.Status.PENDING)
    _set_preferences(subscriber, cleaned)
    try:
        with transaction.atomic():
            subscriber.save(force_insert=True)
    except IntegrityError:
        return None
    through = Subscriber.topics.through
    through.objects.bulk_create(
        through(subscriber_id=subscriber.pk, topic_id=topic.pk)
        for topic in _topics(cleaned, subscriber)
    )
    return subscriber


@transaction.atomic
def sign_up(cleaned: dict) -> None:
    """Start a subscription, or mail the owner of a known address.

    The caller answers the same way in every case, so the form never reveals
    whether an address is subscribed.
    """
    subscriber = Subscriber.objects.select_for_update().with_email(cleaned["email"]).first()
    if subscriber is None:
        subscriber = _create(cleaned)
        if subscriber is not None:
            tasks.send_confirmation.delay_on_commit(subscriber.pk)
            return
        # The same address signed up in a concurrent request; mail its owner instead.
        subscriber = Subscriber.objects.with_email(cleaned["email"]).get()
        tasks.send_manage_link.delay_on_commit(subscriber.pk)
        return
    if subscriber.status in (Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED):
        subscriber.status = Subscriber.Status.PENDING
        subscriber.save(update_fields=["status", "updated_at"])
        apply_preferences(subscriber, cleaned)
        tasks.send_confirmation.delay_on_commit(subscriber.pk)
    elif subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
        tasks.send_manage_link.delay_on_commit(subscriber.pk)
    # A suppressed address (bounced or complained) gets no mail at all.


@transaction.atomic
def confirm(subscriber: Subscriber, ip: str, user_agent: str) -> None:
    """Confirm a pending subscription: its interests become topics now; the first
    confirmation sends the welcome email."""
    now = timezone.now()
    interests = list(subscriber.pending_interests)
    moved = states.move(
        subscriber,
        [Subscriber.Status.PENDING],
        status=Subscriber.Status.ACTIVE,
        confirmed_at=now,
        consent_at=now,
        consent_ip=ip or None,
        consent_user_agent=user_agent[:500],
        next_due_at=next_due(subscriber, now),
        pending_interests=[],
    )
    if moved:
        subscriber.topics.add(*_interest_topics(interests))
        tasks.send_welcome.delay_on_commit(subscriber.pk)


def export(subscriber: Subscriber) -> dict:
    """Everything Paperboy holds about a subscriber: what this app holds, and what the
    apps built on it add (subscriptions.signals.export_collecting)."""
    topics = list(subscriber.topics.all())
    return {
        "email": subscriber.email,
        "status": subscriber.status,
        "created_at": subscriber.created_at.isoformat(),
        "confirmed_at": subscriber.confirmed_at and subscriber.confirmed_at.isoformat(),
        "consent": {
            "at": subscriber.consent_at and subscriber.consent_at.isoformat(),
            "ip": subscriber.consent_ip,
            "user_agent": subscriber.consent_user_agent,
        },
        "preferences": {
            "topics": [t.name for t in topics if t.kind == Topic.Kind.CURATED],
            "interests": interest_names(subscriber, topics),
            "frequency": subscriber.frequency,
            "weekday": subscriber.get_weekday_display(),
            "send_hour": subscriber.send_hour,
            "timezone": subscriber.timezone,
            "max_papers": subscriber.max_papers,
        },
        **{
            name: section
            for _, sections in export_collecting.send(Subscriber, subscriber=subscriber)
            for name, section in (sections or {}).items()
        },
        "delivery_events": [
            {
                "esp": event.esp,
                "type": event.event_type,
                "reason": event.reject_reason,
                "description": event.description,
                "at": (event.occurred_at or event.received_at).isoformat(),
            }
            for event in _delivery_events(subscriber).order_by("received_at", "pk")
        ],
    }


def _delivery_events(subscriber: Subscriber):
    """What the ESP reported about the subscriber's address or what was mailed to them."""
    about = Q(recipient_lower=subscriber.email.lower())
    for _, message_ids in message_ids_collecting.send(Subscriber, subscriber=subscriber):
        about |= Q(message_id__in=message_ids)
    return DeliveryEvent.objects.alias(recipient_lower=Lower("recipient")).filter(about)


def delete(subscriber: Subscriber) -> None:
    """Hard delete: the subscriber, their digests, ledger and votes (cascades), and what
    the ESP reported about them. The suppression list keeps the address, if it is on
    it: a bounced or complaining address is not mailed again."""
    with transaction.atomic():
        _delivery_events(subscriber).delete()
        subscriber.delete()


SCHEDULE_FIELDS = ["frequency", "weekday", "send_hour", "timezone"]


def reschedule(subscriber: Subscriber) -> None:
    """Set (not save) next_due_at for the subscriber's status and schedule, as the manage
    page, pause and resume do: the next send time while active, none otherwise."""
    active = subscriber.status == Subscriber.Status.ACTIVE
    subscriber.next_due_at = next_due(subscriber, timezone.now()) if active else None
