"""Curating topics: previewing terms, promoting interests, merging duplicates.

Plain functions over the models, so the admin stays a thin layer over them and they
can be tested (and called from a shell) without it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models, transaction
from django.db.models import Count
from django.utils import timezone

from core.text import normalise_key
from papers import embeddings, matching
from papers.models import Paper, PaperTopic, Topic, TopicEmbedding
from papers.signals import topics_merging

# A topic this new without a vector is still being scored by its task.
PENDING_FOR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class PreviewRow:
    paper: Paper
    score: float
    terms: list[str]
    curation: str  # the curator's stored decision for this paper and topic, if any
    closest: str = ""  # the phrase closest in meaning, when meaning counted

    @property
    def reaches_threshold(self) -> bool:
        return self.score >= settings.PAPERBOY_MATCH_THRESHOLD

    @property
    def curation_label(self) -> str:
        return PaperTopic.Curation(self.curation).label if self.curation else ""


def preview_terms(
    terms: str, topic: Topic | None = None, name: str = "", kind: str = ""
) -> list[PreviewRow]:
    """The papers of the rescore window that a topic with ``terms`` would score above
    zero, best first: the rows that saving those terms stores, with the same numbers.

    Writes nothing. ``topic``, when it exists already, supplies the curator's pins and
    exclusions, which survive any change of terms; ``name`` and ``kind``, the form's.
    """
    since = timezone.now() - matching.RESCORE_WINDOW
    # Every paper of the window, hidden ones too, because rescore_topic() stores theirs.
    papers = (
        Paper.objects.filter(ingested_at__gte=since)
        .order_by("-ingested_at", "-pk")
        .only(*matching.PAPER_FIELDS, "arxiv_id", "abstract_url", "hidden", "ingested_at")
    )
    # The name and kind in the form, when given: a curated topic's name is a phrase too.
    name = name or (topic.name if topic is not None else "")
    kind = kind or (topic.kind if topic is not None else Topic.Kind.CURATED)
    scored = matching.preview([terms], papers.iterator(chunk_size=2000), name, kind)
    curation = {}
    if topic is not None and topic.pk is not None:
        curation = dict(
            PaperTopic.objects.filter(topic=topic)
            .exclude(curation=PaperTopic.Curation.NONE)
            .values_list("paper_id", "curation")
        )
    return [
        PreviewRow(
            paper,
            row.score,
            row.terms,
            curation.get(paper.pk, PaperTopic.Curation.NONE),
            row.closest,
        )
        for paper, row in scored
    ]


def promote_to_curated(topics: models.QuerySet[Topic]) -> int:
    """Make subscriber interests curated topics; returns how many changed."""
    return topics.filter(kind=Topic.Kind.INTEREST).update(kind=Topic.Kind.CURATED)


@dataclass
class MergeResult:
    survivor: Topic
    merged: list[str] = field(default_factory=list)
    # Filled in by the receivers of papers.signals.topics_merging.
    subscribers_moved: int = 0
    terms_added: list[str] = field(default_factory=list)
    curations_carried: int = 0
    feedback_rewritten: int = 0
    ledger_rewritten: int = 0

    def __str__(self):
        return (
            f"Merged {', '.join(self.merged)} into {self.survivor}: "
            f"{self.subscribers_moved} subscriber(s) moved, "
            f"{len(self.terms_added)} term(s) added, "
            f"{self.curations_carried} pin(s) or exclusion(s) carried over."
        )


def merge_topics(survivor: Topic, others: Iterable[Topic]) -> MergeResult:
    """Fold ``others`` into ``survivor``, in one transaction.

    Their subscribers follow the survivor (once each), its terms gain theirs, a
    curator's pin or exclusion on one of them carries over where the survivor has no
    decision of its own for that paper (and the merged topics agree), the topic ids
    that feedback and the ledger remember for ranking point at the survivor, the
    others are deleted and the survivor is rescored.
    """
    other_ids = sorted({topic.pk for topic in others} - {survivor.pk})
    if not other_ids:
        raise ValueError("merging needs at least one topic besides the survivor")
    with transaction.atomic():
        # Locked in primary-key order, so two merges of overlapping topics queue up
        # instead of deadlocking, and a signup cannot follow a topic being deleted.
        locked = list(
            Topic.objects.select_for_update()
            .filter(pk__in=[survivor.pk, *other_ids])
            .order_by("pk")
        )
        by_pk = {topic.pk: topic for topic in locked}
        if survivor.pk not in by_pk or len(by_pk) != len(other_ids) + 1:
            raise Topic.DoesNotExist("a topic to merge was deleted meanwhile")
        survivor = by_pk[survivor.pk]
        merging = [by_pk[pk] for pk in other_ids]
        result = MergeResult(survivor=survivor, merged=[topic.name for topic in merging])

        result.curations_carried = _carry_curation(survivor, other_ids)
        # What other apps hold of the merged topics (who follows them, the topic ids
        # that feedback and the ledger remember) moves with them, in this transaction.
        for _, counts in topics_merging.send(Topic, survivor=survivor, merged_ids=other_ids):
            for name, count in (counts or {}).items():
                setattr(result, name, count)

        terms, result.terms_added = _merged_terms(survivor, merging)
        if result.terms_added:
            # A queryset update, not save(): the signal would rescore before the
            # others are gone; this rescores once, below.
            Topic.objects.filter(pk=survivor.pk).update(terms=terms)
            survivor.terms = terms
        Topic.objects.filter(pk__in=other_ids).delete()
        matching.rescore_topic(survivor)
    return result


def _carry_curation(survivor: Topic, other_ids: list[int]) -> int:
    """Copy the merged topics' pins and exclusions where the survivor has none.

    Curators make these by hand, so there are few and they are read into memory.
    Where the merged topics disagree on a paper, it stays as scored.
    """
    decisions = defaultdict(set)
    for paper_id, curation in (
        PaperTopic.objects.filter(topic_id__in=other_ids)
        .exclude(curation=PaperTopic.Curation.NONE)
        .values_list("paper_id", "curation")
    ):
        decisions[paper_id].add(curation)
    agreed = {paper_id: found.pop() for paper_id, found in decisions.items() if len(found) == 1}
    if not agreed:
        return 0
    own = dict(
        PaperTopic.objects.filter(topic=survivor, paper_id__in=list(agreed)).values_list(
            "paper_id", "curation"
        )
    )
    carried = {paper_id: curation for paper_id, curation in agreed.items() if not own.get(paper_id)}
    for curation in {*carried.values()}:
        PaperTopic.objects.filter(
            topic=survivor,
            paper_id__in=[p for p, c in carried.items() if c == curation and p in own],
            curation=PaperTopic.Curation.NONE,
        ).update(curation=curation)
    # The rescore that ends the merge gives these their scores.
    PaperTopic.objects.bulk_create(
        PaperTopic(paper_id=paper_id, topic=survivor, curation=curation)
        for paper_id, curation in carried.items()
        if paper_id not in own
    )
    return len(carried)


def _merged_terms(survivor: Topic, merging: list[Topic]) -> tuple[str, list[str]]:
    """The survivor's terms followed by the others' new ones, and the new ones.

    Compared by normalised key, so "Diffusion models" does not come back as
    "diffusion models" and count twice.
    """
    seen = {normalise_key(term) for term in survivor.term_list}
    added = []
    for topic in merging:
        for term in topic.term_list:
            key = normalise_key(term)
            if key and key not in seen:
                seen.add(key)
                added.append(term)
    return "\n".join([*survivor.term_list, *added]), added


@dataclass(frozen=True)
class InterestPreview:
    """What one of a reader's topics matches today, for the pages and emails that
    tell a reader what to expect."""

    topic: Topic
    count: int  # matching papers of the rescore window
    examples: list[Paper]  # the best few
    suggestions: list[Topic]  # curated topics close in meaning, when nothing matches
    pending: bool = False  # not measured against the papers yet (a task is on it)

    @property
    def empty(self) -> bool:
        return self.count == 0 and not self.pending


def interest_previews(topics: Iterable[Topic], examples: int = 3) -> list[InterestPreview]:
    """For each topic, the papers of the rescore window it matches now; for one that
    matches nothing yet, the curated topics nearest in meaning. A fixed number of
    queries for any number of topics."""
    topics = list(topics)
    since = timezone.now() - matching.RESCORE_WINDOW
    found: dict[int, list[int]] = defaultdict(list)
    for topic_id, paper_id in (
        PaperTopic.objects.matching()
        .filter(topic__in=topics, paper__ingested_at__gte=since)
        .order_by("-score", "-paper__upvotes", "paper_id")
        .values_list("topic_id", "paper_id")
    ):
        found[topic_id].append(paper_id)
    papers = Paper.objects.only("pk", "title", "arxiv_id", "abstract_url").in_bulk(
        {paper_id for ids in found.values() for paper_id in ids[:examples]}
    )
    # A topic created moments ago is scored by a task: without its vector yet, "nothing
    # matches" would be premature.
    name = embeddings.current_name()
    pending = set()
    if name and settings.PAPERBOY_MATCHING != "lexical":
        recently = timezone.now() - PENDING_FOR
        pending = {topic.pk for topic in topics if topic.created_at >= recently}
        pending -= set(
            TopicEmbedding.objects.filter(topic_id__in=pending, model=name).values_list(
                "topic_id", flat=True
            )
        )
    empty = [topic for topic in topics if not found.get(topic.pk) and topic.pk not in pending]
    nearest = _nearest_curated(empty, exclude={topic.pk for topic in topics}) if empty else {}
    return [
        InterestPreview(
            topic=topic,
            count=len(found.get(topic.pk, ())),
            examples=[papers[paper_id] for paper_id in found.get(topic.pk, ())[:examples]],
            suggestions=nearest.get(topic.pk, []),
            pending=topic.pk in pending and not found.get(topic.pk),
        )
        for topic in topics
    ]


def fresh_interests(topics: Iterable[Topic]) -> list[Topic]:
    """The interests among ``topics`` created within PENDING_FOR: a confirmation makes
    them (subscriptions.services.confirm)."""
    recently = timezone.now() - PENDING_FOR
    return [t for t in topics if t.kind == Topic.Kind.INTEREST and t.created_at >= recently]


def previews_context(topics: Iterable[Topic]) -> dict:
    """What the confirmation page, the welcome email and the manage page show of a
    reader's topics: ``interest_previews``, whether all are empty, and the window."""
    previews = interest_previews(topics)
    return {
        "previews": previews,
        "all_empty": bool(previews) and all(preview.empty for preview in previews),
        "window_days": matching.RESCORE_WINDOW.days,
    }


def _nearest_curated(topics: list[Topic], exclude: set[int], count: int = 3) -> dict:
    """Curated topics closest in meaning to each topic (by their phrases' vectors);
    the busiest curated topics when the model is off or a topic has no vector yet."""
    curated = list(Topic.objects.curated().exclude(pk__in=exclude).order_by("name"))
    since = timezone.now() - matching.RESCORE_WINDOW
    matched = dict(
        PaperTopic.objects.matching()
        .filter(topic__in=curated, paper__ingested_at__gte=since)
        .values("topic")
        .annotate(papers=Count("pk"))
        .values_list("topic", "papers")
    )
    busiest = sorted(curated, key=lambda topic: -matched.get(topic.pk, 0))[:count]
    name = embeddings.current_name()
    rows = {}
    if name:
        rows = {
            row.topic_id: row
            for row in TopicEmbedding.objects.filter(
                model=name, topic_id__in=[t.pk for t in [*topics, *curated]]
            )
        }
    nearest = {}
    for topic in topics:
        row = rows.get(topic.pk)
        candidates = [t for t in curated if t.pk in rows]
        if row is None or not candidates:
            nearest[topic.pk] = busiest
            continue
        mine = embeddings.from_bytes(row.vectors, _dimensions(row))
        closeness = []
        for other in candidates:
            theirs = embeddings.from_bytes(rows[other.pk].vectors, _dimensions(row))
            closeness.append((-float((mine @ theirs.T).max()), other.name, other))
        nearest[topic.pk] = [other for _, _, other in sorted(closeness)[:count]]
    return nearest


def _dimensions(row: TopicEmbedding) -> int:
    return len(bytes(row.vectors)) // embeddings.DTYPE.itemsize // max(len(row.phrases), 1)
