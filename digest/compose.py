"""Which papers go into a subscriber's digest, and why.

Scores are precomputed per paper and topic (digest.matching), so composing a digest
is a lookup over the subscriber's topics, not a search.
"""

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field

from digest.models import Digest, DigestItem, Feedback, Paper, PaperTopic, Topic

# How much each signal weighs against a topic's relevance score.
UPVOTE_WEIGHT = 0.5  # per natural-log unit of upvotes: 0 -> 0, 20 -> 1.5, 400 -> 3
FEATURED_BOOST = 2.0
FEEDBACK_WEIGHT = 0.75  # per net vote on a topic, capped at FEEDBACK_CAP votes
FEEDBACK_CAP = 3
EXTRA_TOPIC_BONUS = 0.25  # a paper matching several of the reader's topics


@dataclass
class Pick:
    paper: Paper
    relevance: float
    topics: list[Topic] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    score: float = 0.0

    @property
    def reason(self) -> str:
        """Why it matched, for the reader: "Continual learning; 'replay buffer'"."""
        parts = [topic.name for topic in self.topics]
        parts += [f"'{term}'" for term in self.terms[:3]]
        return "; ".join(parts)[:500]


def window_start(subscriber, until: dt.datetime, exclude: Digest | None = None) -> dt.datetime:
    """Papers imported after this go in: since the previous digest, or one period back."""
    # Only digests that went out (or had nothing to say): papers held back by a failed
    # period are still owed. The ledger keeps any overlap from being sent twice.
    previous = subscriber.digests.exclude(pk=getattr(exclude, "pk", None)).filter(
        scheduled_for__lt=until, status__in=[Digest.Status.SENT, Digest.Status.SKIPPED]
    )
    latest = previous.order_by("-scheduled_for").values_list("scheduled_for", flat=True).first()
    if latest is not None:
        return latest
    return until - dt.timedelta(days=7 if subscriber.frequency == "weekly" else 1)


def topic_affinity(subscriber) -> dict[int, int]:
    """Net 👍 minus 👎 per topic, from the subscriber's feedback."""
    affinity: dict[int, int] = defaultdict(int)
    for topic_ids, vote in subscriber.feedback.values_list("topic_ids", "vote"):
        for topic_id in topic_ids:
            affinity[topic_id] += vote
    return affinity


def compose(subscriber, until: dt.datetime, digest: Digest | None = None) -> list[Pick]:
    topics = {topic.pk: topic for topic in subscriber.topics.all()}
    if not topics:
        return []
    since = window_start(subscriber, until, exclude=digest)
    rows = (
        PaperTopic.objects.matching()
        .filter(topic_id__in=topics, paper__ingested_at__gt=since, paper__ingested_at__lte=until)
        .exclude(paper__in=DigestItem.objects.filter(subscriber=subscriber).values("paper"))
        .select_related("paper")
        .order_by("-score")
    )
    picks: dict[int, Pick] = {}
    for row in rows:
        pick = picks.get(row.paper_id)
        if pick is None:
            pick = picks[row.paper_id] = Pick(paper=row.paper, relevance=row.score)
        else:
            pick.relevance += EXTRA_TOPIC_BONUS
        pick.topics.append(topics[row.topic_id])
        pick.terms += [term for term in row.matched_terms if term not in pick.terms]
    affinity = topic_affinity(subscriber)
    for pick in picks.values():
        votes = sum(affinity.get(topic.pk, 0) for topic in pick.topics)
        votes = max(-FEEDBACK_CAP, min(FEEDBACK_CAP, votes))
        pick.score = (
            pick.relevance
            + UPVOTE_WEIGHT * math.log1p(pick.paper.upvotes)
            + (FEATURED_BOOST if pick.paper.featured else 0.0)
            + FEEDBACK_WEIGHT * votes
        )
    ranked = sorted(picks.values(), key=lambda p: (-p.score, -p.paper.upvotes, p.paper.pk))
    return ranked[: subscriber.max_papers]


def record_feedback(subscriber, paper, vote: int) -> Feedback:
    """Idempotent: the latest vote on a paper counts, once."""
    item = DigestItem.objects.filter(subscriber=subscriber, paper=paper).first()
    feedback, _ = Feedback.objects.update_or_create(
        subscriber=subscriber,
        paper=paper,
        defaults={"vote": vote, "topic_ids": item.topic_ids if item else []},
    )
    return feedback
