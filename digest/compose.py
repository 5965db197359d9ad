"""Which papers go into a subscriber's digest, and why.

Scores are precomputed per paper and topic (papers.matching), so composing a digest
is a lookup over the subscriber's topics, not a search.
"""

import datetime as dt
import heapq
import math
from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Max

from digest.models import Digest, DigestItem, Feedback
from digest.picks import Pick
from digest.readers import ReaderModels
from papers.models import Paper, PaperTopic, Topic

# How much each signal weighs against a topic's relevance score.
UPVOTE_WEIGHT = 0.5  # per natural-log unit of upvotes: 0 -> 0, 20 -> 1.5, 400 -> 3
FEATURED_BOOST = 2.0
FEEDBACK_WEIGHT = 0.75  # per net vote on a topic, capped at FEEDBACK_CAP votes
FEEDBACK_CAP = 3
EXTRA_TOPIC_BONUS = 0.25  # a paper matching several of the reader's topics


def compose(subscriber, until: dt.datetime, digest: Digest | None = None) -> list[Pick]:
    """The papers for one subscriber's digest at ``until``, best first.

    ``digest`` is the digest being composed, if it exists; it never counts as the
    previous one.
    """
    return compose_many([subscriber], until, exclude=[digest.pk] if digest else ())[subscriber.pk]


def compose_many(
    subscribers: list, until: dt.datetime, exclude: Iterable[int] = ()
) -> dict[int, list[Pick]]:
    """Compose the digests of many subscribers at once, by subscriber id.

    A fixed number of queries for any number of subscribers (their topics, previous
    digests, candidate papers, ledger and feedback), so a batch of a hundred costs
    about what one did; the ranking itself is Python over those rows.
    """
    subscribers = {subscriber.pk: subscriber for subscriber in subscribers}
    picks: dict[int, list[Pick]] = {pk: [] for pk in subscribers}
    follows: dict[int, list[int]] = defaultdict(list)
    for subscriber_id, topic_id in Topic.subscribers.through.objects.filter(
        subscriber_id__in=subscribers
    ).values_list("subscriber_id", "topic_id"):
        follows[subscriber_id].append(topic_id)
    if not follows:
        return picks
    topics = Topic.objects.only("pk", "name", "kind").in_bulk(
        {t for ids in follows.values() for t in ids}
    )
    since = _window_starts([subscribers[pk] for pk in follows], until, exclude)

    # Every stored match of any of these topics in the widest window, grouped by topic.
    by_topic: dict[int, list[tuple[int, float, list[str], str]]] = defaultdict(list)
    ingested: dict[int, dt.datetime] = {}
    for paper_id, topic_id, score, terms, closest, ingested_at in (
        PaperTopic.objects.matching()
        .filter(
            topic_id__in=topics,
            paper__ingested_at__gt=min(since.values()),
            paper__ingested_at__lte=until,
        )
        .order_by("-score", "paper_id")
        .values_list(
            "paper_id", "topic_id", "score", "matched_terms", "closest", "paper__ingested_at"
        )
    ):
        by_topic[topic_id].append((paper_id, score, terms, closest))
        ingested[paper_id] = ingested_at
    readers = ReaderModels.load(since, until)
    ingested.update(readers.ingested)
    if not ingested:
        return picks
    sent: dict[int, set[int]] = defaultdict(set)
    for subscriber_id, paper_id in DigestItem.objects.filter(
        subscriber_id__in=follows, paper_id__in=ingested
    ).values_list("subscriber_id", "paper_id"):
        sent[subscriber_id].add(paper_id)
    affinity: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for subscriber_id, topic_ids, vote in Feedback.objects.filter(
        subscriber_id__in=follows
    ).values_list("subscriber_id", "topic_ids", "vote"):
        for topic_id in topic_ids:
            affinity[subscriber_id][topic_id] += vote

    # Each subscriber's matches, by paper: (score, topic, terms, closest) per topic.
    found: dict[int, dict[int, list[tuple[float, Topic, list[str], str]]]] = {}
    brought: dict[int, list[Pick]] = {}
    needed: set[int] = set()
    for subscriber_id, topic_ids in follows.items():
        start, already = since[subscriber_id], sent[subscriber_id]
        matches: dict[int, list[tuple[float, Topic, list[str], str]]] = defaultdict(list)
        for topic_id in topic_ids:
            topic = topics[topic_id]
            for paper_id, score, terms, closest in by_topic.get(topic_id, ()):
                if ingested[paper_id] > start and paper_id not in already:
                    matches[paper_id].append((score, topic, terms, closest))
        eligible = {
            paper_id
            for paper_id in readers.ingested
            if readers.ingested[paper_id] > start and paper_id not in already
        }
        found[subscriber_id] = matches
        brought[subscriber_id] = readers.rerank(subscriber_id, matches, eligible)
        needed.update(matches)
        needed.update(pick.paper for pick in brought[subscriber_id])
        needed.update(pick.liked_id for pick in brought[subscriber_id])
    papers = Paper.objects.in_bulk(needed)
    upvoted = {pk: UPVOTE_WEIGHT * math.log1p(paper.upvotes) for pk, paper in papers.items()}
    featured = {pk: FEATURED_BOOST if paper.featured else 0.0 for pk, paper in papers.items()}

    for subscriber_id, matches in found.items():
        # Every candidate is scored; only the few that go in become a Pick with its
        # reason: a reader's topics can match hundreds of papers in a window.
        candidates = [
            (
                paper_id,
                max(m[0] for m in evidence) + EXTRA_TOPIC_BONUS * (len(evidence) - 1),
                evidence,
            )
            for paper_id, evidence in matches.items()
        ] + [(pick.paper, pick.relevance, pick) for pick in brought[subscriber_id]]
        votes_by_topic = affinity.get(subscriber_id)
        scored = []
        for paper_id, relevance, evidence in candidates:
            votes = 0
            if votes_by_topic and not isinstance(evidence, Pick):
                votes = sum(votes_by_topic.get(match[1].pk, 0) for match in evidence)
                votes = max(-FEEDBACK_CAP, min(FEEDBACK_CAP, votes))
            total = (
                relevance
                + upvoted[paper_id]
                + featured[paper_id]
                + FEEDBACK_WEIGHT * votes
                + readers.boost(subscriber_id, paper_id)
            )
            scored.append((total, paper_id, relevance, evidence))
        best = heapq.nsmallest(
            subscribers[subscriber_id].max_papers,
            scored,
            key=lambda entry: (-entry[0], -papers[entry[1]].upvotes, entry[1]),
        )
        picks[subscriber_id] = [_pick(entry, papers) for entry in best]
    return picks


def _pick(entry: tuple, papers: dict[int, Paper]) -> Pick:
    total, paper_id, relevance, evidence = entry
    if isinstance(evidence, Pick):  # brought in by the reader's model
        pick = evidence
    else:
        # The strongest match first: it leads the reason.
        evidence = sorted(evidence, key=lambda match: (-match[0], match[1].name))
        pick = Pick(
            paper=paper_id,
            relevance=relevance,
            topics=[topic for _, topic, _, _ in evidence],
            evidence=[(terms, closest) for _, _, terms, closest in evidence],
        )
        for _, _, terms, _ in evidence:
            pick.terms += [term for term in terms if term not in pick.terms]
    pick.paper, pick.score = papers[paper_id], total
    if pick.liked_id in papers:
        pick.liked = papers[pick.liked_id].title
    return pick


def _window_starts(subscribers: list, until: dt.datetime, exclude: Iterable[int]) -> dict:
    """Papers imported after this go in, per subscriber: since the previous digest, or
    one period back for a first digest."""
    # Only digests that went out (or had nothing to say): papers held back by a failed
    # period are still owed. The ledger keeps any overlap from being sent twice.
    previous = dict(
        Digest.objects.filter(
            subscriber_id__in=[subscriber.pk for subscriber in subscribers],
            scheduled_for__lt=until,
            status__in=[Digest.Status.SENT, Digest.Status.SKIPPED],
        )
        .exclude(pk__in=list(exclude))
        .values("subscriber_id")
        .annotate(latest=Max("scheduled_for"))
        .values_list("subscriber_id", "latest")
    )
    return {
        subscriber.pk: previous.get(subscriber.pk)
        or until - dt.timedelta(days=7 if subscriber.frequency == "weekly" else 1)
        for subscriber in subscribers
    }
