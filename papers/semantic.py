"""Matching by meaning: paper and topic vectors, and how far a paper stands out.

A topic is embedded phrase by phrase (each term; a curated topic's name too), a paper as
a whole and chunk by chunk (its title, its keywords, each sentence of its abstract), and
a paper's similarity to the topic is that of its closest phrase (``similarities()``).
Raw similarities are not comparable between topics: with the whole text alone, "RLHF"
was about 0.06 from a typical abstract of the sample page and 0.17 from the best one,
"robots learning from demonstrations" 0.27 and 0.58. So each topic remembers the
distribution of its similarities over the papers stored when it was embedded (median and
MAD, which the few relevant papers do not move), and a paper's semantic evidence is how
many spreads it stands above that centre (``evidence()``).

An acronym says little to a small model ("RLHF" is four word pieces), so before a
phrase is embedded, an acronym in it is spelled out the way the stored abstracts
define it: "reinforcement learning through human feedback (RLHF)".
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.db.models import Q
from django.utils import timezone

from papers import embeddings
from papers.models import Paper, PaperEmbedding, Topic, TopicEmbedding

# Below this many papers the measured distribution is blended with a typical one.
MIN_BACKGROUND = 40
BACKGROUND_PAPERS = 2000
BACKGROUND_TTL = 600  # seconds
# A typical topic's similarities to unrelated abstracts (all-MiniLM-L6-v2, measured
# on the sample pages): what a topic embedded before any paper was stored starts from.
PRIOR_CENTER, PRIOR_SPREAD = 0.15, 0.07
MIN_SPREAD = 0.03
# Evidence starts Z_BASE spreads above the centre and reaches 1 (a match on its own)
# at Z_MATCH; cosines under SIMILARITY_FLOOR are never evidence, however unusual.
Z_BASE = 1.5
Z_MATCH = 3.0
SIMILARITY_FLOOR = 0.25
EMBED_BATCH = 64
# Where acronyms' definitions are looked for: the papers of this long ago, newest first.
ACRONYM_HISTORY = dt.timedelta(days=180)

_ACRONYM = re.compile(r"\b[A-Z][A-Za-z]*[A-Z][A-Za-z0-9]*s?\b")
_STOP = {"a", "an", "and", "for", "from", "in", "of", "on", "the", "through", "to", "with", "via"}


def evidence(similarity, center, spread):
    """Semantic evidence: 0 for a paper like most, 1 for one that matches by meaning
    alone, more for one closer still. Takes numbers or numpy arrays alike."""
    z = (similarity - center) / np.maximum(spread, MIN_SPREAD)
    value = np.where(
        similarity >= SIMILARITY_FLOOR, np.maximum(0.0, (z - Z_BASE) / (Z_MATCH - Z_BASE)), 0.0
    )
    return value if np.ndim(value) else float(value)


def embed_papers(papers: Iterable[Paper]) -> int:
    """Embed the papers that have no vector from the current model, whole and by
    chunk (``embeddings.paper_chunks``: title, keywords, sentences); returns how many.
    Reads their ``matching.PAPER_FIELDS``."""
    encoder = embeddings.encoder()
    if encoder is None:
        return 0
    papers = {paper.pk: paper for paper in papers if paper.pk is not None}
    current = set(
        PaperEmbedding.objects.filter(paper_id__in=papers, model=encoder.name).values_list(
            "paper_id", flat=True
        )
    )
    todo = [paper for pk, paper in papers.items() if pk not in current]
    for start in range(0, len(todo), EMBED_BATCH):
        batch = todo[start : start + EMBED_BATCH]
        fields = [(p.title, p.abstract, p.ai_keywords or []) for p in batch]
        vectors = encoder.encode([embeddings.paper_text(*paper) for paper in fields])
        chunks = [embeddings.paper_chunks(*paper) for paper in fields]
        flat = encoder.encode([chunk for texts in chunks for chunk in texts])
        rows, offset = [], 0
        for paper, vector, texts in zip(batch, vectors, chunks, strict=True):
            rows.append(
                PaperEmbedding(
                    paper_id=paper.pk,
                    model=encoder.name,
                    vector=embeddings.to_bytes(vector),
                    chunks=embeddings.to_bytes(flat[offset : offset + len(texts)]),
                )
            )
            offset += len(texts)
        PaperEmbedding.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["paper"],
            update_fields=["model", "vector", "chunks", "created_at"],
        )
    return len(todo)


@dataclass(frozen=True, slots=True)
class PaperVectors:
    whole: np.ndarray  # (dimensions,)
    parts: np.ndarray  # (chunks, dimensions): title, keywords, the abstract's sentences

    @classmethod
    def of(cls, vector: bytes, chunks: bytes) -> PaperVectors:
        whole = embeddings.from_bytes(vector)
        parts = embeddings.from_bytes(chunks, len(whole)) if chunks else whole[None, :]
        return cls(whole, parts)


def paper_vectors(paper_ids: Iterable[int], model: str) -> dict[int, PaperVectors]:
    """Whole and per-sentence vectors by paper id."""
    ids = list(paper_ids)
    found = {}
    for start in range(0, len(ids), 1000):
        for paper_id, vector, chunks in PaperEmbedding.objects.filter(
            paper_id__in=ids[start : start + 1000], model=model
        ).values_list("paper_id", "vector", "chunks"):
            found[paper_id] = PaperVectors.of(vector, chunks)
    return found


def similarities(phrases: np.ndarray, paper: PaperVectors) -> np.ndarray:
    """Each phrase's similarity to a paper: the mean of its cosine with the whole text
    and with the closest chunk (a sentence, the title or the keywords). Either alone
    ranks worse: on the labelled interests of bench/relevance.json, mean average
    precision 0.71 for the whole text, 0.73 for the closest sentence, 0.81 for their
    mean."""
    return (phrases @ paper.whole + (phrases @ paper.parts.T).max(axis=1)) / 2


def phrases_of(topic: Topic) -> list[str]:
    """What a topic is embedded as: its terms, and a curated topic's name."""
    phrases = list(topic.term_list)
    if topic.kind == Topic.Kind.CURATED and topic.name.casefold() not in {
        phrase.casefold() for phrase in phrases
    }:
        phrases.insert(0, topic.name)
    return phrases or [topic.name]


def spell_out(phrase: str, abstracts: Iterable[str]) -> str:
    """The phrase with each acronym followed by its most common definition in the
    abstracts ("RLHF" -> "RLHF (reinforcement learning from human feedback)")."""
    acronyms = {a.rstrip("s") if len(a) > 2 else a for a in _ACRONYM.findall(phrase)}
    if not acronyms:
        return phrase
    found: dict[str, Counter] = {acronym: Counter() for acronym in acronyms}
    texts = list(abstracts)
    for acronym in acronyms:
        pattern = re.compile(rf"((?:[\w-]+\s+){{1,10}})\(\s*{re.escape(acronym)}s?\s*\)")
        for text in texts:
            for match in pattern.finditer(text):
                if long_form := _long_form(acronym, match.group(1).split()):
                    found[acronym][long_form.casefold()] += 1
    spelled = [
        f"{acronym} ({counter.most_common(1)[0][0]})"
        for acronym, counter in sorted(found.items())
        if counter
    ]
    return f"{phrase}: {', '.join(spelled)}" if spelled else phrase


def _long_form(acronym: str, words: list[str]) -> str | None:
    """The shortest run of words ending the list whose initials spell the acronym
    (stop words may be skipped, a hyphenated word may give several letters)."""
    letters = [char.lower() for char in acronym if char.isalpha()]
    for start in range(len(words) - 1, -1, -1):
        run = words[start:]
        initials = []
        for word in run:
            parts = [part for part in word.split("-") if part]
            if not parts:
                continue
            if word.lower() in _STOP:
                initials.append(("?", word.lower()[0]))
            else:
                initials.append(tuple(part[0].lower() for part in parts))
        if _spells(letters, initials):
            return " ".join(run).strip(" ,;:")
        if len(run) > len(letters) + 4:
            break
    return None


def _spells(letters: list[str], initials: list[tuple[str, ...]]) -> bool:
    """Whether the words' initials, in order, give exactly the letters; a stop word
    ("?" first) may give its letter or none; the first word must give the first."""
    if not initials or initials[0][0] == "?" or initials[0][0] != letters[0]:
        return False

    def walk(i: int, j: int) -> bool:
        if j == len(initials):
            return i == len(letters)
        word = initials[j]
        if word[0] == "?":
            return walk(i, j + 1) or (
                i < len(letters) and letters[i] == word[1] and walk(i + 1, j + 1)
            )
        whole = i + len(word) <= len(letters) and list(word) == letters[i : i + len(word)]
        if whole and walk(i + len(word), j + 1):
            return True
        return i < len(letters) and letters[i] == word[0] and walk(i + 1, j + 1)

    return walk(0, 0)


_background_cache: dict[str, tuple] = {}


class Background:
    """The most recent stored papers' vectors, which a topic is measured against: read
    once for many topics (a change of model re-embeds every topic)."""

    def __init__(self, papers: list[PaperVectors]):
        self.count = len(papers)
        if papers:
            self.whole = np.vstack([paper.whole for paper in papers])
            self.parts = np.vstack([paper.parts for paper in papers])
            self.starts = np.cumsum([0] + [len(paper.parts) for paper in papers[:-1]])

    @classmethod
    def recent(cls, model: str) -> Background:
        """The background, read again only when a paper was embedded since or after
        BACKGROUND_TTL: a burst of sign-ups with new interests reads it once, not
        2,000 vectors per interest."""
        newest = (
            PaperEmbedding.objects.filter(model=model)
            .order_by("-paper_id")
            .values_list("paper_id", flat=True)
            .first()
        )
        key = (model, newest)
        cached = _background_cache.get("current")
        if cached and cached[0] == key and time.monotonic() - cached[1] < BACKGROUND_TTL:
            return cached[2]
        background = cls.load(model)
        _background_cache["current"] = (key, time.monotonic(), background)
        return background

    @classmethod
    def load(cls, model: str) -> Background:
        rows = (
            PaperEmbedding.objects.filter(model=model, paper__hidden=False)
            .order_by("-paper__ingested_at", "-paper_id")
            .values_list("vector", "chunks")[:BACKGROUND_PAPERS]
        )
        return cls([PaperVectors.of(vector, chunks) for vector, chunks in rows])

    def similarities(self, phrases: np.ndarray) -> np.ndarray:
        """Each paper's similarity to the closest phrase, as ``similarities()`` gives."""
        if not self.count:
            return np.zeros(0)
        parts = np.maximum.reduceat(self.parts @ phrases.T, self.starts, axis=0)
        return ((self.whole @ phrases.T + parts) / 2).max(axis=1)


def distribution(similarities: np.ndarray) -> tuple[float, float]:
    """Centre and spread of a topic's similarities, pulled towards the typical ones
    while few papers were measured."""
    count = len(similarities)
    if count == 0:
        return PRIOR_CENTER, PRIOR_SPREAD
    center = float(np.median(similarities))
    spread = float(1.4826 * np.median(np.abs(similarities - center)))
    weight = min(1.0, count / MIN_BACKGROUND)
    center = weight * center + (1 - weight) * PRIOR_CENTER
    spread = weight * spread + (1 - weight) * PRIOR_SPREAD
    return center, max(spread, MIN_SPREAD)


def embed_topic(topic: Topic, background: Background | None = None) -> TopicEmbedding | None:
    """Embed a topic's phrases and measure it against the stored papers; None when
    the model is off or cannot be loaded."""
    encoder = embeddings.encoder()
    if encoder is None:
        return None
    row = measure(topic, encoder, background)
    fields = ["model", "phrases", "labels", "vectors", "center", "spread", "background"]
    embedding, _ = TopicEmbedding.objects.update_or_create(
        topic=topic, defaults={name: getattr(row, name) for name in fields}
    )
    return embedding


def measure(
    topic: Topic, encoder: embeddings.Encoder, background: Background | None = None
) -> TopicEmbedding:
    """A topic's vectors and the distribution of its similarities, unsaved."""
    labels = phrases_of(topic)
    acronyms = {a.rstrip("s") for label in labels for a in _ACRONYM.findall(label)}
    abstracts: list[str] = []
    if acronyms:
        query = Q()
        for acronym in acronyms:
            query |= Q(abstract__contains=f"({acronym})") | Q(abstract__contains=f"({acronym}s)")
        since = timezone.now() - ACRONYM_HISTORY
        recent = Paper.objects.filter(query, ingested_at__gte=since).order_by("-ingested_at")
        abstracts = list(recent.values_list("abstract", flat=True)[:200])
    phrases = [spell_out(label, abstracts) for label in labels]
    vectors = encoder.encode(phrases)
    if background is None:
        background = Background.recent(encoder.name)
    measured = background.similarities(vectors)
    center, spread = distribution(measured)
    return TopicEmbedding(
        topic_id=topic.pk,
        model=encoder.name,
        phrases=phrases,
        labels=labels,
        vectors=embeddings.to_bytes(vectors),
        center=center,
        spread=spread,
        background=len(measured),
    )


def remeasure_thin_topics() -> int:
    """Measure again the topics measured against fewer than MIN_BACKGROUND papers
    (the starter topics of a new installation, embedded before any paper came), now
    that more are stored; their vectors stay. Returns how many changed."""
    name = embeddings.current_name()
    thin = list(TopicEmbedding.objects.filter(model=name, background__lt=MIN_BACKGROUND))
    if not thin:
        return 0
    background = Background.recent(name)
    changed = []
    for row in thin:
        if background.count <= row.background:
            continue
        dimensions = background.whole.shape[1]
        measured = background.similarities(embeddings.from_bytes(row.vectors, dimensions))
        row.center, row.spread = distribution(measured)
        row.background = len(measured)
        changed.append(row)
    TopicEmbedding.objects.bulk_update(changed, ["center", "spread", "background"])
    return len(changed)


class TopicVectors:
    """Every topic's phrase vectors in one matrix, to score many papers at once."""

    def __init__(self, rows: Iterable[TopicEmbedding], dimensions: int):
        self.topic_ids: list[int] = []
        self.labels: list[list[str]] = []
        centers, spreads, matrices, starts, offset = [], [], [], [], 0
        for row in rows:
            matrix = embeddings.from_bytes(row.vectors, dimensions)
            if not len(matrix):
                continue
            self.topic_ids.append(row.topic_id)
            self.labels.append(list(row.labels))
            centers.append(row.center)
            spreads.append(row.spread)
            matrices.append(matrix)
            starts.append(offset)
            offset += len(matrix)
        self.starts = np.array(starts, dtype=np.intp)
        self.ends = np.append(self.starts[1:], offset).astype(np.intp)
        self.matrix = np.vstack(matrices) if matrices else np.zeros((0, dimensions), np.float32)
        self.centers = np.array(centers, dtype=np.float64)
        self.spreads = np.array(spreads, dtype=np.float64)

    @classmethod
    def load(cls, model: str, dimensions: int, topic_ids: Iterable[int] | None = None):
        rows = TopicEmbedding.objects.filter(model=model).order_by("topic_id")
        if topic_ids is not None:
            rows = rows.filter(topic_id__in=list(topic_ids))
        return cls(rows.only("topic_id", "labels", "vectors", "center", "spread"), dimensions)

    def scores(self, paper: PaperVectors) -> dict[int, tuple[float, float, str]]:
        """Per topic with any evidence: (evidence, similarity, closest phrase)."""
        if not self.topic_ids:
            return {}
        found_similarities = similarities(self.matrix, paper)
        best = np.maximum.reduceat(found_similarities, self.starts).astype(np.float64)
        # All topics at once: most have none, and a loop over thousands would dominate.
        values = evidence(best, self.centers, self.spreads)
        found = {}
        for index in np.flatnonzero(values > 0):
            start, end = self.starts[index], self.ends[index]
            closest = int(np.argmax(found_similarities[start:end]))
            found[self.topic_ids[index]] = (
                float(values[index]),
                round(float(best[index]), 4),
                self.labels[index][closest],
            )
        return found
