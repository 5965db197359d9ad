"""What digest does when subscriptions and papers report something (their signals)."""

from anymail.signals import EventType
from django.db import models
from django.db.models import TextField
from django.db.models.functions import Cast

from digest.models import Digest, DigestItem, Feedback

REWRITE_BATCH = 1000
TRACKING_FIELDS = {
    EventType.DELIVERED: "delivered_at",
    EventType.OPENED: "opened_at",
    EventType.CLICKED: "clicked_at",
}


def track(sender, event, **kwargs) -> None:
    """subscriptions.signals.message_reported: when the digest was delivered, first
    opened, first clicked."""
    field = TRACKING_FIELDS.get(event.event_type)
    if field is not None:
        Digest.objects.filter(message_id=event.message_id, **{f"{field}__isnull": True}).update(
            **{field: event.occurred_at or event.received_at}
        )


def export_sections(sender, subscriber, **kwargs) -> dict:
    """subscriptions.signals.export_collecting: the digests with their papers, and the
    votes."""
    digests = subscriber.digests.prefetch_related("items__paper").order_by("scheduled_for")
    return {
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
        "feedback": [
            {
                "paper": vote.paper.title,
                "arxiv_id": vote.paper.arxiv_id,
                "vote": "up" if vote.vote == 1 else "down",
                "at": vote.updated_at.isoformat(),
            }
            for vote in subscriber.feedback.select_related("paper").order_by("created_at")
        ],
    }


def message_ids(sender, subscriber, **kwargs):
    """subscriptions.signals.message_ids_collecting: the subscriber's digests'."""
    return subscriber.digests.exclude(message_id="").values("message_id")


def topics_merging(sender, survivor, merged_ids: list[int], **kwargs) -> dict[str, int]:
    """papers.signals.topics_merging: the topic ids that feedback and the ledger remember
    for ranking point at the survivor."""
    return {
        "feedback_rewritten": _rewrite_topic_ids(Feedback, merged_ids, survivor.pk),
        "ledger_rewritten": _rewrite_topic_ids(DigestItem, merged_ids, survivor.pk),
    }


def _rewrite_topic_ids(model: type[models.Model], other_ids: list[int], survivor_id: int) -> int:
    """Point the JSON ``topic_ids`` lists that name a merged topic at the survivor."""
    # SQLite has no JSON containment lookup, so the stored text is matched instead
    # ("[3, 14]" on PostgreSQL, "[3,14]" on SQLite); the rewrite below is exact.
    ids = "|".join(str(pk) for pk in other_ids)
    pattern = rf"(^|[^0-9])({ids})([^0-9]|$)"
    pks = list(
        model.objects.annotate(topic_ids_text=Cast("topic_ids", TextField()))
        .filter(topic_ids_text__regex=pattern)
        .values_list("pk", flat=True)
    )
    merged = set(other_ids)
    rewritten = 0
    for start in range(0, len(pks), REWRITE_BATCH):
        batch = model.objects.filter(pk__in=pks[start : start + REWRITE_BATCH]).only("topic_ids")
        changed = []
        for row in batch:
            topic_ids = []
            for topic_id in row.topic_ids:
                topic_id = survivor_id if topic_id in merged else topic_id
                if topic_id not in topic_ids:
                    topic_ids.append(topic_id)
            if topic_ids != row.topic_ids:
                row.topic_ids = topic_ids
                changed.append(row)
        model.objects.bulk_update(changed, ["topic_ids"])
        rewritten += len(changed)
    return rewritten
