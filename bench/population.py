"""A synthetic but realistic population for the digest benchmark.

Papers are recombined from the real trending page in samples/ (titles and abstract
sentences of real papers, so the matcher does real work); topics are the 22 curated
starter topics plus curated ones built from the corpus's frequent phrases, up to 50;
subscribers follow 1-5 of them with a Zipf-like popularity, as newsletter topics do.
Everything is seeded, so two runs build the same population.
"""

import datetime as dt
import itertools
import random
import re
from collections import Counter
from pathlib import Path

from django.db import connection
from django.utils import timezone
from django.utils.text import slugify

from core.text import normalise_key
from papers.importers import parse
from papers.models import Paper, Topic
from subscriptions.models import Subscriber

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "trending-papers-page.txt"
TOPIC_COUNT = 50
# How many topics a subscriber follows: 1 to 5, most follow one or two.
TOPICS_PER_SUBSCRIBER = {1: 0.30, 2: 0.30, 3: 0.20, 4: 0.12, 5: 0.08}
_STOPWORDS = """a an and are as at based be by can for from has have in into is it its large
learning model models more new not of on or our over such than that the their these this
to using via we which while with without"""
STOPWORDS = frozenset(_STOPWORDS.split())


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def papers(count: int, rng: random.Random, ingested_at: dt.datetime) -> list[Paper]:
    """``count`` papers recombined from the sample page's 72."""
    originals = parse(SAMPLE.read_bytes(), "hf-page")
    made = []
    for n in range(count):
        base = originals[n % len(originals)]
        other = originals[rng.randrange(len(originals))]
        sentences = _sentences(base.abstract)
        extra = _sentences(other.abstract)
        abstract = " ".join(sentences + extra[: rng.randint(0, 2)])
        made.append(
            Paper(
                arxiv_id=f"2611.{n + 1:05d}",
                arxiv_version=1,
                title=f"{base.title} ({n // len(originals) + 1})"[:500],
                abstract=abstract,
                authors=list(base.authors) or [f"Author {n}"],
                published_on=ingested_at.date(),
                upvotes=int(rng.paretovariate(1.2) * 3),
                source=Paper.Source.MANUAL,
                ingested_at=ingested_at,
            )
        )
    return made


def phrases(texts: list[str], count: int, exclude: set[str]) -> list[str]:
    """The corpus's most frequent two-word phrases, without stop words."""
    counts: Counter[str] = Counter()
    for text in texts:
        words = re.findall(r"[a-z][a-z-]+", text.lower())
        for first, second in itertools.pairwise(words):
            if first in STOPWORDS or second in STOPWORDS or first == second:
                continue
            counts[f"{first} {second}"] += 1
    chosen = []
    for phrase, _ in counts.most_common():
        if normalise_key(phrase) not in exclude:
            chosen.append(phrase)
        if len(chosen) == count:
            break
    return chosen


def curated_topics(papers: list[Paper], minimum: int = 5) -> list[Topic]:
    """TOPIC_COUNT curated topics that each match at least ``minimum`` of the papers:
    the starter topics that do, then the corpus's frequent phrases. So every
    subscriber has something new, and every due digest is sent, not skipped."""
    from django.conf import settings

    from papers.matching import preview

    def matches(terms: list[str]) -> int:
        scored = preview(terms, papers)
        return sum(1 for _, row in scored if row.score >= settings.PAPERBOY_MATCH_THRESHOLD)

    starters = list(Topic.objects.curated())
    kept = [topic for topic in starters if matches(topic.term_list) >= minimum]
    Topic.objects.curated().exclude(pk__in=[topic.pk for topic in kept]).delete()
    texts = [f"{paper.title} {paper.abstract}" for paper in papers]
    exclude = {topic.key for topic in starters}
    for phrase in phrases(texts, 2000, exclude):
        if len(kept) == TOPIC_COUNT:
            break
        if matches([phrase]) >= minimum:
            kept.append(
                Topic.objects.create(
                    name=phrase.capitalize(), slug=slugify(phrase)[:90], terms=phrase
                )
            )
    if len(kept) < TOPIC_COUNT:
        raise RuntimeError(f"only {len(kept)} topics match {minimum} papers or more")
    return kept


def interest_topics(count: int, paper_texts: list[str], rng: random.Random) -> list[Topic]:
    """Free-text interests as subscribers type them: mostly one or two corpus words."""
    vocabulary = sorted(
        {
            word
            for text in paper_texts
            for word in re.findall(r"[a-z][a-z-]{3,}", text.lower())
            if word not in STOPWORDS
        }
    )
    topics, seen = [], set(Topic.objects.values_list("key", flat=True))
    while len(topics) < count:
        name = " ".join(rng.sample(vocabulary, rng.choice([1, 2, 2, 3])))
        key = normalise_key(name)
        if key in seen:
            continue
        seen.add(key)
        topics.append(
            Topic(
                name=name,
                slug=f"interest-{len(topics)}",
                key=key,
                kind=Topic.Kind.INTEREST,
                terms=name,
            )
        )
    # bulk_create skips save() and its signal: these are scored with the papers.
    return Topic.objects.bulk_create(topics, batch_size=1000)


def subscribers(count: int, topics: list[Topic], rng: random.Random, due: dt.datetime) -> None:
    """``count`` active subscribers due at ``due``, each following 1-5 curated topics.

    Written with COPY: at 100,000 subscribers the ORM's INSERTs would take minutes
    of the benchmark's set-up."""
    weights = [1 / rank for rank in range(1, len(topics) + 1)]  # Zipf, s = 1
    sizes, size_weights = zip(*TOPICS_PER_SUBSCRIBER.items(), strict=True)
    now = timezone.now()
    start = (Subscriber.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    follows = []
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY subscriptions_subscriber (id, email, key, status, frequency, weekday, send_hour, "
            "timezone, max_papers, created_at, updated_at, confirmed_at, consent_at, "
            "consent_user_agent, next_due_at, pending_interests, status_before_suppression) "
            "FROM STDIN"
        ) as copy,
    ):
        for n in range(count):
            pk = start + n
            copy.write_row(
                (
                    pk,
                    f"reader{pk}@bench.example",
                    f"{rng.getrandbits(128):032x}",
                    "active",
                    "daily",
                    0,
                    8,
                    "UTC",
                    10,
                    now,
                    now,
                    now,
                    now,
                    "bench",
                    due,
                    "[]",
                    "",
                )
            )
            chosen: set[int] = set()
            wanted = rng.choices(sizes, size_weights)[0]
            while len(chosen) < wanted:
                chosen.add(rng.choices(topics, weights)[0].pk)
            follows += [(pk, topic_id) for topic_id in chosen]
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY subscriptions_subscriber_topics (subscriber_id, topic_id) FROM STDIN"
        ) as copy:
            for row in follows:
                copy.write_row(row)
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('subscriptions_subscriber', 'id'), %s)",
            [start + count],
        )
        cursor.execute("ANALYZE")
