from celery import shared_task
from django.utils import timezone

from mailing import retry
from subscriptions import deliverability, emails, interests
from subscriptions.models import DeliveryEvent, Subscriber


def _send(task, send, subscriber_id: int, statuses) -> None:
    subscriber = Subscriber.objects.filter(pk=subscriber_id, status__in=statuses).first()
    if subscriber is None or deliverability.is_suppressed(subscriber.email):
        return  # confirmed, deleted or suppressed since the request: nothing to say
    try:
        send(subscriber)
    except Exception as exc:
        if not retry.is_transient(exc):
            raise
        raise task.retry(exc=exc, countdown=retry.backoff(task.request.retries)) from exc


@shared_task(bind=True, name="subscriptions.send_confirmation", max_retries=5)
def send_confirmation(self, subscriber_id: int) -> None:
    _send(self, emails.send_confirmation, subscriber_id, [Subscriber.Status.PENDING])


@shared_task(bind=True, name="subscriptions.send_manage_link", max_retries=5)
def send_manage_link(self, subscriber_id: int) -> None:
    statuses = [Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED]
    _send(self, emails.send_manage_link, subscriber_id, statuses)


@shared_task(bind=True, name="subscriptions.send_welcome", max_retries=5)
def send_welcome(self, subscriber_id: int) -> None:
    _send(self, emails.send_welcome, subscriber_id, [Subscriber.Status.ACTIVE])


@shared_task(name="subscriptions.process_delivery_event")
def process_delivery_event(event_id: int) -> None:
    event = DeliveryEvent.objects.filter(pk=event_id).first()
    if event is not None:
        deliverability.process(event)


@shared_task(name="subscriptions.process_pending_delivery_events")
def process_pending_delivery_events() -> int:
    return deliverability.process_pending()


@shared_task(name="subscriptions.prune_interests")
def prune_unfollowed_interests() -> int:
    """Daily: interest topics nobody follows any more (see subscriptions.interests)."""
    return interests.prune_interests(timezone.now())
