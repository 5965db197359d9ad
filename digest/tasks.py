from celery import shared_task
from django.db import transaction
from django.utils import timezone

from digest import delivery, emails, importers


@shared_task(name="digest.import_feeds")
def import_feeds() -> dict[str, str]:
    # No retry: a feed that is down now is fetched again at the next beat tick,
    # and each run is recorded as an ImportRun for curators to see.
    return importers.import_feeds()


@shared_task(name="digest.schedule_digests")
def schedule_digests() -> int:
    """Claim every due subscriber's period and enqueue the sending in batches."""
    now = timezone.now()
    claimed = delivery.claim_due(now) + delivery.stale_claims(now)
    for batch in delivery.batches(claimed):
        # Claims are committed by now; on_commit also covers a caller's transaction.
        transaction.on_commit(lambda batch=batch: send_digests.delay(batch))
    return len(claimed)


@shared_task(bind=True, name="digest.send_digests", max_retries=8)
def send_digests(self, digest_ids: list[int]) -> dict[str, int]:
    result = delivery.send_batch(digest_ids)
    if result.retry and self.request.retries >= self.max_retries:
        delivery.give_up(result.retry, result.last_error)
    elif result.retry:
        # Only the digests that failed transiently: the others went out already.
        raise self.retry(
            args=[result.retry],
            countdown=emails.backoff(self.request.retries),
            exc=RuntimeError(result.last_error),
        )
    return {"sent": len(result.sent), "skipped": len(result.skipped), "failed": len(result.failed)}
