import datetime as dt

from celery import current_app, shared_task
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from digest import delivery, emails, importers, matching, readers, semantic
from digest.models import Paper, SchedulingPass, Topic
from digest.topics import prune_interests

# Scheduling passes are kept this long, for the dashboard.
PASS_HISTORY = dt.timedelta(days=30)


@shared_task(name="digest.import_feeds")
def import_feeds() -> dict[str, str]:
    # No retry: a feed that is down now is fetched again at the next beat tick,
    # and each run is recorded as an ImportRun for curators to see.
    return importers.import_feeds()


@shared_task(name="digest.rescore_topic")
def rescore_topic_later(topic_id: int) -> int:
    """Score recent papers against a topic created in a request (see
    digest.signals.defer_rescoring); a topic deleted meanwhile needs nothing."""
    topic = Topic.objects.filter(pk=topic_id).first()
    return matching.rescore_topic(topic) if topic else 0


@shared_task(name="digest.prune_interests")
def prune_unfollowed_interests() -> int:
    """Daily: interest topics nobody follows any more (see digest.topics)."""
    return prune_interests(timezone.now())


@shared_task(name="digest.train_reader")
def train_reader(subscriber_id: int) -> int:
    """Train a reader's model after a vote; returns the votes it learned from."""
    model = readers.train(subscriber_id)
    return model.votes if model else 0


@shared_task(name="digest.embed_papers")
def embed_papers(paper_ids: list[int]) -> int:
    """Embed and rescore papers imported from a web request (the admin's import page),
    which must not wait for the model."""
    return matching.embed_and_rescore(
        Paper.objects.filter(pk__in=paper_ids).only("pk", "title", "abstract")
    )


@shared_task(name="digest.reembed")
def reembed(batch: int = 200, changed: bool = False) -> dict[str, int]:
    """Give every paper of the rescore window and every topic a vector from the
    current model, then score the window again with them.

    A batch of papers per task, each queueing the next; then the topics, measured
    against the new paper vectors and not rescored one by one (each would read the
    whole window); then ``rescore_window``, a batch of papers per task. So a change of
    model on a large installation never holds one task for long. Queued when a worker
    starts and finds anything without a current vector.
    """
    name = semantic.embeddings.current_name()
    lexical = settings.PAPERBOY_MATCHING == "lexical"
    if lexical or name is None or semantic.embeddings.encoder() is None:
        return {"papers": 0, "topics": 0}
    since = timezone.now() - matching.RESCORE_WINDOW
    papers = list(
        Paper.objects.filter(ingested_at__gte=since)
        .exclude(embedding__model=name)
        .order_by("-ingested_at", "-pk")
        .only("pk", "title", "abstract")[:batch]
    )
    if papers:
        embedded = semantic.embed_papers(papers)
        reembed.delay(batch, changed=True)
        return {"papers": embedded, "topics": 0}
    background = semantic.Background.load(name)
    topics = 0
    for topic in Topic.objects.exclude(embedding__model=name).order_by("pk").iterator():
        semantic.embed_topic(topic, background)
        topics += 1
    if changed or topics:
        rescore_window.delay()
    return {"papers": 0, "topics": topics}


@shared_task(name="digest.rescore_window")
def rescore_window(after: int = 0, batch: int = 500) -> int:
    """Score the papers of the rescore window against every topic again, a batch per
    task (each queues the next); returns how many this batch scored."""
    since = timezone.now() - matching.RESCORE_WINDOW
    papers = list(
        Paper.objects.filter(ingested_at__gte=since, pk__gt=after)
        .order_by("pk")
        .only("pk", "title", "abstract")[:batch]
    )
    matching.score_papers(papers)
    if len(papers) == batch:
        rescore_window.delay(papers[-1].pk, batch)
    return len(papers)


@shared_task(name="digest.schedule_digests")
def schedule_digests() -> int:
    """Claim every due subscriber's period and enqueue the sending in batches."""
    now = timezone.now()
    run = SchedulingPass.objects.create(started_at=now)

    def enqueue(ids: list[int]) -> None:
        for batch in delivery.batches(ids):
            # Committed by now; on_commit also covers a caller's transaction.
            transaction.on_commit(lambda batch=batch: send_digests.delay(batch))

    try:
        # Each page is sent while the next is claimed: at 100,000 subscribers the
        # workers start within a second instead of after the whole pass.
        for page in delivery.claim_pages(now):
            run.claimed += len(page)
            enqueue(page)
        swept = delivery.sweep(now, queue_empty=_nothing_queued())
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
    """Whether no task waits in the queue (see delivery.sweep)."""
    with current_app.connection_for_read() as connection:
        queue = current_app.conf.task_default_queue
        return connection.default_channel.queue_declare(queue=queue).message_count == 0


@shared_task(bind=True, name="digest.send_digests")
def send_digests(self, digest_ids: list[int]) -> dict[str, int]:
    retries = settings.PAPERBOY_SEND_RETRIES
    # The run's token is the task's id (digest.delivery): a copy redelivered after its
    # pool process died, and the task's retries, take its digests back at once; a task
    # queued again by the scheduling pass is another run.
    owner = self.request.id or delivery.new_owner()
    try:
        result = delivery.send_batch(digest_ids, owner=owner)
    except DatabaseError as exc:
        # The connection was lost mid-batch (a restart, a failover, a killed backend).
        # What went out is recorded "sent" or still "sending", so the same batch is
        # simply tried again, on a new connection (see digest.celery).
        countdown = emails.backoff(self.request.retries)
        raise self.retry(countdown=countdown, exc=exc, max_retries=retries) from exc
    if result.retry and self.request.retries >= retries:
        delivery.give_up(result.retry, result.owner, result.last_error)
    elif result.retry:
        # Only the digests that failed transiently: the others went out already.
        countdown = emails.backoff(self.request.retries)
        delivery.renew(result.retry, result.owner, timezone.now(), extra=countdown)
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
