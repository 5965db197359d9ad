"""Bounces, complaints and unsubscribes reported by the ESP, whichever it is.

The webhook receiver only records the event (one insert, unique per event id) and
queues its processing after commit: it stays fast, a replayed event changes nothing,
and an error while acting on an event leaves it stored and pending for the sweep.
"""

import datetime as dt
import hashlib
import json
import logging

from anymail.signals import EventType, RejectReason
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions import states
from subscriptions.models import DeliveryEvent, Subscriber, Suppression, normalise_email
from subscriptions.signals import message_reported

log = logging.getLogger(__name__)

SUPPRESSING = {
    EventType.BOUNCED: Suppression.Reason.BOUNCED,
    EventType.REJECTED: Suppression.Reason.REJECTED,
    EventType.COMPLAINED: Suppression.Reason.COMPLAINED,
}
# Reported as a bounce, but temporary: counted, and only many of them suppress.
SOFT_BOUNCE = "soft_bounce"
SOFT_REJECT_REASONS = {RejectReason.TIMED_OUT, SOFT_BOUNCE}
# ESP event types that anymail reports as "bounced" although the ESP calls them
# temporary: (field of the raw event, its soft values).
SOFT_ESP_TYPES = {
    "Postmark": ("Type", {"SoftBounce", "Transient"}),
    "Brevo": ("event", {"soft_bounce"}),
}


def event_id(esp_name: str, event) -> str:
    """The ESP's own id, or a stable hash of what the event says when it sends none."""
    if event.event_id:
        return f"{esp_name}:{event.event_id}"[:255]
    fields = [
        esp_name,
        event.event_type,
        event.recipient,
        event.message_id,
        event.timestamp and event.timestamp.isoformat(),
        event.reject_reason,
        event.description,
    ]
    digest = hashlib.sha256(json.dumps(fields, default=str).encode()).hexdigest()
    return f"{esp_name}:sha256:{digest}"


def reject_reason(esp_name: str, event) -> str:
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    field, soft_types = SOFT_ESP_TYPES.get(esp_name, ("", set()))
    # The payload's value as it came: a list or an object would not even hash.
    kind = raw.get(field)
    if isinstance(kind, str) and kind in soft_types:
        return SOFT_BOUNCE
    return event.reject_reason or ""


def suppress(
    address: str, reason: str, source: DeliveryEvent | None = None, detail: str = ""
) -> bool:
    """Stop all mail to the address; False if it was already suppressed."""
    address = normalise_email(address)
    with transaction.atomic():
        Subscriber.objects.with_email(address).exclude(status=Subscriber.Status.SUPPRESSED).update(
            status=Subscriber.Status.SUPPRESSED,
            status_before_suppression=F("status"),
            next_due_at=None,
        )
        if Suppression.objects.active().with_email(address).exists():
            return False
        try:
            with transaction.atomic():
                Suppression.objects.create(
                    email=address, reason=reason, source_event=source, detail=detail[:500]
                )
        except IntegrityError:
            return False
    return True


def is_suppressed(address: str) -> bool:
    return Suppression.objects.active().with_email(address).exists()


def suppressed_among(addresses: list[str]) -> set[str]:
    """The addresses (lower-cased) among these that must not be mailed: one query."""
    wanted = {normalise_email(address).lower() for address in addresses}
    return set(
        Suppression.objects.active()
        .annotate(address=Lower("email"))
        .filter(address__in=wanted)
        .values_list("address", flat=True)
    )


def lift(suppression: Suppression, reason: str) -> None:
    """Lift a suppression. The subscriber comes back to what it interrupted
    (Subscriber.AFTER_LIFT): pending stays pending (a new sign-up sends the
    confirmation again), unsubscribed stays unsubscribed, and an active subscription
    comes back paused, so nobody is mailed again without doing something themselves."""
    with transaction.atomic():
        suppression.lifted_at = timezone.now()
        suppression.lifted_reason = reason[:500]
        suppression.save(update_fields=["lifted_at", "lifted_reason"])
        if is_suppressed(suppression.email):
            return
        subscriber = (
            Subscriber.objects.with_email(suppression.email)
            .filter(status=Subscriber.Status.SUPPRESSED)
            .first()
        )
        if subscriber is None:
            return
        # Suppressed before the status was remembered: by whether they had confirmed.
        before = subscriber.status_before_suppression or (
            Subscriber.Status.PAUSED if subscriber.confirmed_at else Subscriber.Status.PENDING
        )
        Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.SUPPRESSED).update(
            status=Subscriber.AFTER_LIFT[before], status_before_suppression=""
        )


def _is_soft(event: DeliveryEvent) -> bool:
    return event.event_type == EventType.DEFERRED or (
        event.event_type == EventType.BOUNCED and event.reject_reason in SOFT_REJECT_REASONS
    )


def process(event: DeliveryEvent) -> None:
    """Act on one stored event, once."""
    if event.processed_at is not None:
        return
    kind = event.event_type
    if not event.recipient:
        pass
    elif _is_soft(event):
        window = timezone.now() - dt.timedelta(days=settings.PAPERBOY_SOFT_BOUNCE_WINDOW_DAYS)
        events = DeliveryEvent.objects.filter(
            Q(event_type=EventType.DEFERRED)
            | Q(event_type=EventType.BOUNCED, reject_reason__in=SOFT_REJECT_REASONS),
            recipient__iexact=event.recipient,
            received_at__gte=window,
        )
        # Per message, not per event: an ESP reports a deferral at every retry, and one
        # greylisted message must not count as five soft bounces.
        soft = (
            events.exclude(message_id="").values("message_id").distinct().count()
            + events.filter(message_id="").count()
        )
        if soft >= settings.PAPERBOY_SOFT_BOUNCE_LIMIT:
            suppress(
                event.recipient, Suppression.Reason.SOFT_BOUNCES, event, f"{soft} soft bounces"
            )
    elif kind in SUPPRESSING:
        suppress(event.recipient, SUPPRESSING[kind], event, event.description)
    elif kind == EventType.UNSUBSCRIBED:
        for subscriber in Subscriber.objects.with_email(event.recipient):
            states.unsubscribe(subscriber)
    elif event.message_id:
        message_reported.send(DeliveryEvent, event=event)
    DeliveryEvent.objects.filter(pk=event.pk).update(processed_at=timezone.now(), error="")


def process_pending(older_than: dt.timedelta = dt.timedelta(minutes=5)) -> int:
    """Events whose processing failed or never ran (the sweep)."""
    pending = DeliveryEvent.objects.filter(
        processed_at__isnull=True, received_at__lt=timezone.now() - older_than
    ).order_by("pk")[:1000]
    done = 0
    for event in pending:
        try:
            process(event)
            done += 1
        except Exception as exc:  # keep the event pending, note why, go on with the rest
            log.exception("delivery event %s", event.pk)
            DeliveryEvent.objects.filter(pk=event.pk).update(error=f"{type(exc).__name__}: {exc}")
    return done


def complaint_rate(days: int = 7) -> tuple[float | None, int, int]:
    """Complaints per delivered message over the last ``days``: (rate, complaints, delivered)."""
    since = timezone.now() - dt.timedelta(days=days)
    counts = DeliveryEvent.objects.filter(received_at__gte=since).aggregate(
        complaints=Count("pk", filter=Q(event_type=EventType.COMPLAINED)),
        delivered=Count("pk", filter=Q(event_type=EventType.DELIVERED)),
    )
    complaints, delivered = counts["complaints"], counts["delivered"]
    return (complaints / delivered if delivered else None), complaints, delivered
