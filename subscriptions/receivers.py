"""Signals subscriptions receives: anymail's webhooks, and topics merging."""

from django.db import IntegrityError, transaction
from django.db.models import Min

from subscriptions import deliverability
from subscriptions.models import DeliveryEvent, Subscriber, normalise_email
from subscriptions.tasks import process_delivery_event


def record(sender, event, esp_name, **kwargs) -> None:
    """Receiver of anymail's ``tracking`` signal."""
    recipient = normalise_email(event.recipient or "")[:254]
    try:
        with transaction.atomic():
            stored = DeliveryEvent.objects.create(
                esp=esp_name[:32],
                event_id=deliverability.event_id(esp_name, event),
                event_type=(event.event_type or "unknown")[:32],
                recipient=recipient,
                message_id=(event.message_id or "")[:255],
                reject_reason=deliverability.reject_reason(esp_name, event)[:32],
                description=(event.description or event.mta_response or "")[:2000],
                occurred_at=event.timestamp,
            )
    except IntegrityError:
        return  # the same event again: it was recorded (and acted on) the first time
    process_delivery_event.delay_on_commit(stored.pk)


def follow_survivor(sender, survivor, merged_ids: list[int], **kwargs) -> dict[str, int]:
    """Receiver of papers.signals.topics_merging: one follow per subscriber of the merged
    topics is repointed at the survivor, in SQL, so a topic with 100,000 subscribers is
    one statement; the rest go with the deleted topics."""
    follows = Subscriber.topics.through.objects
    already = follows.filter(topic_id=survivor.pk).values("subscriber_id")
    first_follow = (
        follows.filter(topic_id__in=merged_ids)
        .exclude(subscriber_id__in=already)
        .values("subscriber_id")
        .annotate(first=Min("pk"))
        .values("first")
    )
    return {"subscribers_moved": follows.filter(pk__in=first_follow).update(topic_id=survivor.pk)}
