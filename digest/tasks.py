import datetime as dt

from celery import current_app, shared_task
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from digest import ledger, readers, scheduling, sending
from digest.models import SchedulingPass
from mailing import retry

# Scheduling passes are kept this long, for the dashboard.
PASS_HISTORY = dt.timedelta(days=30)


@shared_task(name="digest.train_reader")
def train_reader(subscriber_id: int) -> int:
    """Train a reader's model after a vote; returns the votes it learned from."""
    model = readers.train(subscriber_id)
    return model.votes if model else 0


@shared_task(name="digest.schedule_digests")
def schedule_digests() -> int:
    """Claim every due subscriber's period and enqueue the sending in batches."""
    now = timezone.now()
    run = SchedulingPass.objects.create(started_at=now)

    def enqueue(ids: list[int]) -> None:
        for batch in scheduling.batches(ids):
            # Committed by now; on_commit also covers a caller's transaction.
            transaction.on_commit(lambda batch=batch: send_digests.delay(batch))

    try:
        # Each page is sent while the next is claimed: at 100,000 subscribers the
        # workers start within a second instead of after the whole pass.
        for page in scheduling.claim_pages(now):
            run.claimed += len(page)
            enqueue(page)
        swept = scheduling.sweep(now, queue_empty=_nothing_queued())
    except Exception as exc:
        # What was claimed before the error is queued already.
        run.error = f"{type(exc).__name__}: {exc}"[:2000]
        run.finished_at = timezone.now()
        run.save(update_fields=["claimed", "error", "finished_at"])
        raise
    enqueue(swept.requeue)
    run.requeued, run.finished_at = len(swept.requeue), timezone.now()
    run.save(update_fields=["claimed", "requeued", "finished_at"])
    SchedulingPass.objects.filter(started_at__lt=now - PASS_HISTORY).delete()
    return run.claimed + run.requeued


def _nothing_queued() -> bool:
    """Whether no task waits in the queue (see scheduling.sweep)."""
    with current_app.connection_for_read() as connection:
        queue = current_app.conf.task_default_queue
        return connection.default_channel.queue_declare(queue=queue).message_count == 0


@shared_task(bind=True, name="digest.send_digests")
def send_digests(self, digest_ids: list[int]) -> dict[str, int]:
    retries = settings.PAPERBOY_SEND_RETRIES
    # The run's token is the task's id (digest.ledger): a copy redelivered after its
    # pool process died, and the task's retries, take its digests back at once; a task
    # queued again by the scheduling pass is another run.
    owner = self.request.id or ledger.new_owner()
    countdown = retry.backoff(self.request.retries)
    try:
        result = sending.send_batch(digest_ids, owner=owner)
        if result.retry and self.request.retries >= retries:
            ledger.give_up(result.retry, result.owner, result.last_error)
        elif result.retry:
            ledger.renew(result.retry, result.owner, timezone.now(), extra=countdown)
    except DatabaseError as exc:
        # The connection was lost mid-batch or after it (a restart, a failover, a
        # killed backend). What went out is recorded "sent" or still "sending", so the
        # same batch is simply tried again, on a new connection (see paperboy.celery).
        raise self.retry(countdown=countdown, exc=exc, max_retries=retries) from exc
    if result.retry and self.request.retries < retries:
        # Only the digests that failed transiently: the others went out already.
        raise self.retry(
            args=[result.retry],
            countdown=countdown,
            exc=RuntimeError(result.last_error),
            max_retries=retries,
        )
    return {
        "sent": len(result.sent),
        "skipped": len(result.skipped),
        "failed": len(result.failed),
        "unknown": len(result.unknown),
    }
