"""What the subscription pages do, apart from HTTP."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from digest.models import Topic
from subscriptions import tasks
from subscriptions.models import Subscriber
from subscriptions.schedule import next_due

PREFERENCE_FIELDS = ["frequency", "weekday", "send_hour", "timezone", "max_papers"]


def apply_preferences(subscriber: Subscriber, cleaned: dict) -> None:
    """Save the preference fields and topics of a validated PreferencesForm."""
    for name in PREFERENCE_FIELDS:
        setattr(subscriber, name, cleaned[name])
    if subscriber.status == Subscriber.Status.ACTIVE:
        subscriber.next_due_at = next_due(subscriber, timezone.now())
    subscriber.save()
    interests = [Topic.for_interest(text) for text in cleaned["interests"]]
    subscriber.topics.set([*cleaned["topics"], *interests])


@transaction.atomic
def sign_up(cleaned: dict) -> None:
    """Start a subscription, or mail the owner of a known address.

    The caller answers the same way in every case, so the form never reveals
    whether an address is subscribed.
    """
    subscriber = Subscriber.objects.select_for_update().with_email(cleaned["email"]).first()
    if subscriber is None:
        try:
            with transaction.atomic():
                subscriber = Subscriber.objects.create(email=cleaned["email"])
        except IntegrityError:
            # The same address signed up in a concurrent request; mail its owner instead.
            subscriber = Subscriber.objects.with_email(cleaned["email"]).get()
            tasks.send_manage_link.delay_on_commit(subscriber.pk)
            return
    if subscriber.status in (Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED):
        subscriber.status = Subscriber.Status.PENDING
        apply_preferences(subscriber, cleaned)
        tasks.send_confirmation.delay_on_commit(subscriber.pk)
    elif subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
        tasks.send_manage_link.delay_on_commit(subscriber.pk)
    # A suppressed address (bounced or complained) gets no mail at all.


def confirm(subscriber: Subscriber, ip: str, user_agent: str) -> None:
    if subscriber.status != Subscriber.Status.PENDING:
        return
    now = timezone.now()
    subscriber.status = Subscriber.Status.ACTIVE
    subscriber.confirmed_at = subscriber.consent_at = now
    subscriber.consent_ip = ip or None
    subscriber.consent_user_agent = user_agent[:500]
    subscriber.next_due_at = next_due(subscriber, now)
    subscriber.save()


def pause(subscriber: Subscriber) -> None:
    if subscriber.status == Subscriber.Status.ACTIVE:
        subscriber.status = Subscriber.Status.PAUSED
        subscriber.next_due_at = None
        subscriber.save()


def resume(subscriber: Subscriber) -> None:
    if subscriber.status == Subscriber.Status.PAUSED:
        subscriber.status = Subscriber.Status.ACTIVE
        subscriber.next_due_at = next_due(subscriber, timezone.now())
        subscriber.save()


def unsubscribe(subscriber: Subscriber) -> None:
    """Idempotent; a suppressed address stays suppressed."""
    if subscriber.status in (
        Subscriber.Status.PENDING,
        Subscriber.Status.ACTIVE,
        Subscriber.Status.PAUSED,
    ):
        subscriber.status = Subscriber.Status.UNSUBSCRIBED
        subscriber.next_due_at = None
        subscriber.save()


def export(subscriber: Subscriber) -> dict:
    """Everything Paperboy holds about a subscriber."""
    digests = subscriber.digests.prefetch_related("items__paper").order_by("scheduled_for")
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
            "topics": [t.name for t in subscriber.topics.all() if t.kind == Topic.Kind.CURATED],
            "interests": [t.name for t in subscriber.topics.all() if t.kind == Topic.Kind.INTEREST],
            "frequency": subscriber.frequency,
            "weekday": subscriber.get_weekday_display(),
            "send_hour": subscriber.send_hour,
            "timezone": subscriber.timezone,
            "max_papers": subscriber.max_papers,
        },
        "digests": [
            {
                "period": digest.period,
                "status": digest.status,
                "sent_at": digest.sent_at and digest.sent_at.isoformat(),
                "papers": [
                    {"title": item.paper.title, "arxiv_id": item.paper.arxiv_id, "why": item.reason}
                    for item in digest.items.all()
                ],
            }
            for digest in digests
        ],
    }


def delete(subscriber: Subscriber) -> None:
    """Hard delete: the subscriber, their digests and their ledger."""
    subscriber.delete()
