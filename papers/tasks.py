from celery import shared_task
from django.conf import settings
from django.utils import timezone

from papers import feeds, matching, semantic
from papers.models import Paper, Topic


@shared_task(name="papers.import_feeds")
def import_feeds() -> dict[str, str]:
    """Import every configured feed (papers.feeds); each one that could not be fetched
    is tried again on its own, later."""
    return {url: _import_feed(url, 0) for url in feeds.urls()}


@shared_task(name="papers.import_feed")
def import_feed(url: str, attempt: int) -> str:
    """Another try at a feed that could not be fetched, unless it was taken out of the
    configuration meanwhile."""
    if url not in feeds.urls():
        return "no longer configured"
    return _import_feed(url, attempt)


def _import_feed(url: str, attempt: int) -> str:
    result, retry_in = feeds.import_feed(url, attempt)
    if retry_in is not None:
        import_feed.apply_async((url, attempt + 1), countdown=retry_in)
    return result


@shared_task(name="papers.rescore_topic")
def rescore_topic_later(topic_id: int) -> int:
    """Score recent papers against a topic created in a request (see
    papers.signals.defer_rescoring); a topic deleted meanwhile needs nothing."""
    topic = Topic.objects.filter(pk=topic_id).first()
    return matching.rescore_topic(topic) if topic else 0


@shared_task(name="papers.embed_papers")
def embed_papers(paper_ids: list[int]) -> int:
    """Embed and rescore papers imported from a web request (the admin's import page),
    which must not wait for the model."""
    return matching.embed_and_rescore(
        Paper.objects.filter(pk__in=paper_ids).only(*matching.PAPER_FIELDS)
    )


@shared_task(name="papers.reembed")
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
        .only(*matching.PAPER_FIELDS)[:batch]
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


@shared_task(name="papers.rescore_window")
def rescore_window(after: int = 0, batch: int = 500) -> int:
    """Score the papers of the rescore window against every topic again, a batch per
    task (each queues the next); returns how many this batch scored."""
    since = timezone.now() - matching.RESCORE_WINDOW
    papers = list(
        Paper.objects.filter(ingested_at__gte=since, pk__gt=after)
        .order_by("pk")
        .only(*matching.PAPER_FIELDS)[:batch]
    )
    matching.score_papers(papers)
    if len(papers) == batch:
        rescore_window.delay(papers[-1].pk, batch)
    return len(papers)
