"""Scoring papers against topics.

Every paper is scored once against every topic when it is imported, and recent papers
are rescored against a topic when it is created or its terms change. The scores are
stored in ``PaperTopic``, so composing a digest is a lookup: the work grows with
papers x topics, never with subscribers. Scoring is plain Python and the writes are
bulk upserts, so it runs the same on SQLite and PostgreSQL.

How a paper scores against a topic
----------------------------------
A topic is its terms, one phrase per line. Title, abstract and keywords are cut into
tokens at every character that is not a letter or digit ("in-context" is "in",
"context"), and each token is stemmed with the Snowball English stemmer, so "replay
buffers" matches the term "replay buffer" (a few words Snowball would fold into others
keep their own stem: "agentic", "continual", "alignment", "adapter"). A term of
several words is a phrase: it matches only where its stemmed tokens stand next to each
other, in that order. A phrase found inside a longer matched phrase of the same topic
counts once, for the longer one: "offline reinforcement learning" is not also a hit
for "reinforcement learning".

A paper's keywords (Hugging Face's ``ai_keywords``: "continual learning",
"catastrophic forgetting", ...) name what it is about as a title does, so a term found
in them is a title hit, with two limits. A phrase matches within one keyword, never
across two: ["continual learning", "large language models"] does not say "learning
large". And the keywords add one title hit to a term whose title does not name it
already, however many of them name it: they mostly restate the title, which must not
count twice, and five keywords that say "learning" are not five titles that do.

For each term that matches, BM25-style::

    title_hits = hits in the title, or 1 if only the keywords name the term
    x    = TITLE_WEIGHT * title_hits + abstract_hits * norm
    norm = 1 / (1 - B + B * max(abstract_tokens, MIN_ABSTRACT_TOKENS) / AVG_ABSTRACT_TOKENS)
    term = TERM_WEIGHT * x * (K1 + 1) / (x + K1)

and the topic's score is the sum over its terms, rounded to 4 places. The saturation
(K1) means a paper that repeats a term ten times is not ten times as relevant; the
normalisation (B) means a mention in a long abstract counts for less than one in a
short one, down to a floor (MIN_ABSTRACT_TOKENS) so that a one-line summary does not
turn a single mention into a match.

There is no corpus IDF: every term has the same weight (TERM_WEIGHT). An IDF would
make a paper's score depend on which other papers happen to be stored, so scores
would drift with every import, a re-import would not leave them unchanged, and
``preview()`` could not promise the stored numbers. The curator's choice of terms
stands in for it.

TERM_WEIGHT puts the threshold (``PAPERBOY_MATCH_THRESHOLD``, 1.0) where a reader
would, for an abstract of average length: one term in the title (or the keywords)
matches (1.18); a term the abstract names once does not (0.75; at most 0.92 in the
shortest abstract), twice does (1.03), as do two different terms once each (1.5).

Acronyms
--------
A term token written with two or more capitals ("RL", "LLM", "RAG", "CLIP", "LoRA")
is an acronym: it is not stemmed and matches only a whole paper token that is also
written with two or more capitals, ignoring case and a plural "s" ("LLMs", "VLMs").
So "RAG" never matches "rag" or "storage", and "CLIP" (the model) never matches
"clip" or "clips" in a video paper. A subscriber who types "clip" in lower case asks
for the word, which matches "clip", "clips" and "CLIP" alike. A term typed entirely
in capitals with several words ("WORLD MODELS") is read as words, not acronyms.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.text import clean_line
from papers import embeddings, semantic
from papers.models import Paper, PaperTopic, Topic, TopicEmbedding

# What scoring and embedding read of a paper. A queryset of papers to score or embed
# loads these (``.only(*PAPER_FIELDS)``): each one it left out would cost a query per
# paper, read back one at a time.
PAPER_FIELDS = ("pk", "title", "abstract", "ai_keywords")

# Creating a topic or changing its terms rescores papers ingested within this window;
# older papers no longer go into digests, so their scores are left as they were.
RESCORE_WINDOW = dt.timedelta(days=30)

TITLE_WEIGHT = 3.0  # a title hit counts as three abstract hits (before saturation)
K1 = 1.2  # term-frequency saturation, the usual BM25 value
B = 0.75  # how much abstract length normalises, the usual BM25 value
AVG_ABSTRACT_TOKENS = 180  # about the average of arXiv abstracts (the sample's is 188)
# Shorter abstracts (a one-line summary) count as this long, so that a single mention
# never decides on its own.
MIN_ABSTRACT_TOKENS = 100
TERM_WEIGHT = 0.75  # a fixed IDF; see the module docstring
WRITE_BATCH = 500
# A paper that matches by meaning alone scores at most this: less than any title hit
# (1.18), so that a title naming the phrase ranks above every match by meaning alone.
SEMANTIC_CAP = 1.15

_TOKEN = re.compile(r"[^\W_]+[+#]*")  # "+" and "#" stay, as in core.text: C++, C#
_BRITISH = re.compile(r"isation(s?)$")

# Snowball folds these into words with another meaning: "agentic" -> "agent" (every
# RL agent), "continual" -> "continu" (as "continuous"), "alignment" -> "align" (as
# "aligned decision"), "adapter" -> "adapt" (as "adaptation").
_STEM_EXCEPTIONS = {
    "agentic": "agentic",
    "continual": "continual",
    "continually": "continual",
    "alignment": "alignment",
    "alignments": "alignment",
    "adapter": "adapter",
    "adapters": "adapter",
}

_local = threading.local()


def _stemmer():
    # Snowball stemmers keep state between calls, so each thread gets its own.
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return stemmer


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    """A lower-case word's stem; British -isation spellings stem as American ones."""
    if word in _STEM_EXCEPTIONS:
        return _STEM_EXCEPTIONS[word]
    return _stemmer().stemWord(_BRITISH.sub(r"ization\1", word))


def _capitals(token: str) -> int:
    return sum(1 for char in token if char.isupper())


@lru_cache(maxsize=200_000)
def _acronym(token: str) -> str | None:
    """The acronym key of a paper token written with two or more capitals: "LLMs",
    "LoRA", "CLIP". Keys start with a NUL so they never equal a stem."""
    if _capitals(token) < 2:
        return None
    if token.endswith("s") and len(token) > 2:
        token = token[:-1]
    return "\0" + token.upper()


@lru_cache(maxsize=200_000)
def _token_keys(token: str) -> tuple[str, ...]:
    stem = _stem(token.casefold())
    acronym = _acronym(token)
    return (stem, acronym) if acronym else (stem,)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text))


def _compile_term(term: str) -> tuple[str, ...]:
    """The keys a term's tokens must match, in order; empty when it has no words."""
    tokens = _tokens(term)
    shouted = len(tokens) > 1 and all(token.upper() == token for token in tokens)
    keys = []
    for token in tokens:
        # A long single word in capitals ("TRANSFORMERS") is a word typed loudly.
        is_acronym = (
            not shouted and _capitals(token) >= 2 and (len(token) <= 5 or token.upper() != token)
        )
        keys.append(_acronym(token) if is_acronym else _stem(token.casefold()))
    return tuple(keys)


# Where a term starts in the title, in the abstract and in the keywords.
_Hits = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
_TITLE, _ABSTRACT, _KEYWORDS = range(3)
_PAIR = "\1"  # joins two adjacent keys; no key contains it


def _entry(term: tuple[str, ...]) -> str:
    """What a term is looked up by: its first two keys, which rule out most phrases
    before their positions are compared."""
    return term[0] if len(term) == 1 else term[0] + _PAIR + term[1]


@dataclass(frozen=True, slots=True)
class _Field:
    """A title, abstract or keyword list: the keys at each token position and where
    each key is."""

    keys: tuple[tuple[str, ...], ...]
    where: dict[str, list[int]]  # by _entry(): each key, and each pair of adjacent keys

    @classmethod
    def of(cls, text: str) -> _Field:
        return cls._of(tuple(_token_keys(token) for token in _tokens(text)))

    @classmethod
    def of_phrases(cls, phrases: Iterable[str]) -> _Field:
        """Phrases (a paper's keywords) one after another, with a position that has no
        key between each and the next, so that no phrase matches across two."""
        keys: list[tuple[str, ...]] = []
        for phrase in phrases:
            if keys:
                keys.append(())
            keys.extend(_token_keys(token) for token in _tokens(phrase))
        return cls._of(tuple(keys))

    @classmethod
    def _of(cls, keys: tuple[tuple[str, ...], ...]) -> _Field:
        where: dict[str, list[int]] = defaultdict(list)
        for position, token_keys in enumerate(keys):
            for key in token_keys:
                where[key].append(position)
            if position + 1 < len(keys):
                for key in token_keys:
                    for following in keys[position + 1]:
                        where[key + _PAIR + following].append(position)
        return cls(keys, dict(where))

    def starts(self, term: tuple[str, ...], entry: str) -> tuple[int, ...]:
        """Where the phrase starts: each of its keys at consecutive positions."""
        positions = self.where.get(entry)
        if not positions:
            return ()
        if len(term) <= 2:
            return tuple(positions)
        last = len(self.keys) - len(term)
        return tuple(
            start
            for start in positions
            if start <= last
            and all(key in self.keys[start + i] for i, key in enumerate(term[2:], 2))
        )


@dataclass(frozen=True, slots=True)
class _Document:
    """A paper's title, abstract and keywords, tokenised once and scored against many
    topics."""

    title: _Field
    abstract: _Field
    keywords: _Field
    norm: float

    @classmethod
    def of(cls, title: str, abstract: str, keywords: Iterable[str]) -> _Document:
        abstract_field = _Field.of(abstract or "")
        length = max(len(abstract_field.keys), MIN_ABSTRACT_TOKENS)
        norm = 1.0 / (1.0 - B + B * length / AVG_ABSTRACT_TOKENS)
        return cls(_Field.of(title or ""), abstract_field, _Field.of_phrases(keywords), norm)

    @classmethod
    def of_paper(cls, paper: Paper) -> _Document:
        """The paper's PAPER_FIELDS, tokenised."""
        return cls.of(paper.title, paper.abstract, paper.ai_keywords or ())

    @property
    def entries(self) -> set[str]:
        return self.title.where.keys() | self.abstract.where.keys() | self.keywords.where.keys()

    def hits(self, term: tuple[str, ...], entry: str) -> _Hits | None:
        found = (
            self.title.starts(term, entry),
            self.abstract.starts(term, entry),
            self.keywords.starts(term, entry),
        )
        return found if any(found) else None


@dataclass(frozen=True, slots=True)
class _Topic:
    """A topic's distinct terms, compiled; ``labels`` are the terms as written."""

    terms: tuple[tuple[str, ...], ...]
    labels: tuple[str, ...]
    entries: tuple[str, ...]

    @classmethod
    def of(cls, term_list: Iterable[str]) -> _Topic:
        terms, labels, seen = [], [], set()
        for label in term_list:
            term = _compile_term(label)
            # "LLM" and "LLMs" are one term: counting both would score it twice.
            if term and term not in seen:
                seen.add(term)
                terms.append(term)
                labels.append(label)
        return cls(tuple(terms), tuple(labels), tuple(_entry(term) for term in terms))


def _counts(topic: _Topic, hits: dict[int, _Hits], field: int) -> dict[int, int]:
    """Occurrences per term in one field, where a phrase inside a longer matched phrase
    counts once, for the longer one: "offline reinforcement learning" is not also a
    hit for "reinforcement learning", nor "recommendation systems" for both
    "recommender system" and "recommendation"."""
    spans = [
        (start, start + len(topic.terms[index]), index)
        for index, found in hits.items()
        for start in found[field]
    ]
    counts: dict[int, int] = defaultdict(int)
    for start, end, index in spans:
        covered = any(
            other_start <= start
            and end <= other_end
            and (other_end - other_start > end - start or other_index < index)
            for other_start, other_end, other_index in spans
            if other_index != index
        )
        if not covered:
            counts[index] += 1
    return counts


def _combine(topic: _Topic, document: _Document, hits: dict[int, _Hits]) -> tuple[float, list[str]]:
    """The score for a topic's term hits, and its matched terms, best first.

    Both the direct and the indexed path end here and sum in term order, so preview()
    gives the very floats that are stored.
    """
    if len(hits) == 1:
        # Most interests are a single phrase: no other term can cover it, and a sum of
        # one value is that value, so this is the general path's result, only faster.
        [(index, (title_starts, abstract_starts, keyword_starts))] = hits.items()
        titles = len(title_starts) or (1 if keyword_starts else 0)
        x = TITLE_WEIGHT * titles + len(abstract_starts) * document.norm
        return round(TERM_WEIGHT * x * (K1 + 1) / (x + K1), 4), [topic.labels[index]]
    title, abstract = _counts(topic, hits, _TITLE), _counts(topic, hits, _ABSTRACT)
    keywords = _counts(topic, hits, _KEYWORDS)
    contributions = []
    for index in sorted(title.keys() | abstract.keys() | keywords.keys()):
        # The keywords stand in for a title that does not name the term; a title that
        # does, even inside a longer matched phrase, has said it already.
        from_keywords = index in keywords and not hits[index][_TITLE]
        titles = title.get(index, 0) + (1 if from_keywords else 0)
        if not titles and index not in abstract:
            continue  # only in keywords that restate the title
        x = TITLE_WEIGHT * titles + abstract.get(index, 0) * document.norm
        contributions.append((TERM_WEIGHT * x * (K1 + 1) / (x + K1), index))
    total = round(sum(value for value, _ in contributions), 4)
    best_first = sorted(contributions, key=lambda item: (-item[0], item[1]))
    return total, [topic.labels[index] for _, index in best_first]


def _score_document(document: _Document, topic: _Topic) -> tuple[float, list[str]]:
    hits = {}
    for index, (term, entry) in enumerate(zip(topic.terms, topic.entries, strict=True)):
        if found := document.hits(term, entry):
            hits[index] = found
    return _combine(topic, document, hits)


def score(paper: Paper, topic: Topic) -> tuple[float, list[str]]:
    """How well ``paper`` fits ``topic``, and the topic's terms that matched, best first.

    Pure: reads the paper's PAPER_FIELDS and ``topic.term_list`` only. A score of
    ``settings.PAPERBOY_MATCH_THRESHOLD`` or more puts the paper in the topic.
    """
    document = _Document.of_paper(paper)
    return _score_document(document, _Topic.of(topic.term_list))


class _Index:
    """Many topics' terms, indexed by their first one or two keys, so a paper is only
    checked against the phrases that could start somewhere in its text."""

    def __init__(self, topics: Iterable[tuple[int, _Topic]]):
        self.topics: dict[int, _Topic] = {}
        self.by_entry: dict[str, list[tuple[int, int, tuple[str, ...]]]] = defaultdict(list)
        for topic_id, compiled in topics:
            self.topics[topic_id] = compiled
            for index, (term, entry) in enumerate(
                zip(compiled.terms, compiled.entries, strict=True)
            ):
                self.by_entry[entry].append((topic_id, index, term))

    def scores(self, document: _Document) -> dict[int, tuple[float, list[str]]]:
        """Scores above zero, by topic id."""
        hits: dict[int, dict[int, _Hits]] = defaultdict(dict)
        for entry in document.entries & self.by_entry.keys():
            for topic_id, index, term in self.by_entry[entry]:
                if found := document.hits(term, entry):
                    hits[topic_id][index] = found
        scores = {}
        for topic_id, topic_hits in hits.items():
            total, terms = _combine(self.topics[topic_id], document, topic_hits)
            if total > 0:
                scores[topic_id] = (total, terms)
        return scores


@dataclass(frozen=True, slots=True)
class Scored:
    """A paper scored against a topic: what PaperTopic stores."""

    score: float
    terms: list[str]
    lexical: float = 0.0
    similarity: float = 0.0
    closest: str = ""  # the phrase closest in meaning, when meaning counted


def combine(lexical: float, evidence: float) -> float:
    """One score from both kinds of evidence, on the lexical scale (the threshold
    matches either way). Meaning adds to a lexical match; a paper matched by meaning
    alone stays under SEMANTIC_CAP, below every title hit."""
    mode = settings.PAPERBOY_MATCHING
    if mode == "lexical":
        return lexical
    if mode == "semantic":
        return round(evidence, 4)
    total = lexical + evidence
    if lexical < settings.PAPERBOY_MATCH_THRESHOLD:
        total = min(total, SEMANTIC_CAP)
    return round(total, 4)


def _merge(
    lexical: dict[int, tuple[float, list[str]]], meaning: dict[int, tuple[float, float, str]]
) -> dict[int, Scored]:
    merged = {}
    for topic_id in lexical.keys() | meaning.keys():
        lexical_score, terms = lexical.get(topic_id, (0.0, []))
        evidence, similarity, closest = meaning.get(topic_id, (0.0, 0.0, ""))
        total = combine(lexical_score, evidence)
        # Meaning alone short of a match is not kept: most papers are a little like
        # most topics, and those rows (hundreds a paper) would tell nobody anything.
        if lexical_score == 0 and total < settings.PAPERBOY_MATCH_THRESHOLD:
            continue
        if total > 0:
            merged[topic_id] = Scored(total, terms, lexical_score, similarity, closest)
    return merged


def _measured(term_list: list[str], name: str, kind: str) -> semantic.TopicVectors | None:
    """Vectors for terms not saved yet (a curator's preview), measured as a saved
    topic's would be."""
    encoder = embeddings.encoder()
    if encoder is None or not term_list or settings.PAPERBOY_MATCHING == "lexical":
        return None
    topic = Topic(name=name or term_list[0], kind=kind, terms="\n".join(term_list))
    row = semantic.measure(topic, encoder)
    return semantic.TopicVectors([row], encoder.dimensions)


def preview(
    topic_terms: list[str],
    papers: Iterable[Paper],
    name: str = "",
    kind: str = Topic.Kind.CURATED,
) -> list[tuple[Paper, Scored]]:
    """What a topic with these terms would score, without writing anything.

    Returns the papers scoring above zero, best first: the rows scoring would store,
    with the same numbers. Those at or above ``settings.PAPERBOY_MATCH_THRESHOLD``
    would match. ``name`` and ``kind`` are the topic's: a curated topic's name is one
    of the phrases it is embedded as.
    """
    term_list = [
        term for text in topic_terms for line in text.splitlines() if (term := clean_line(line))
    ]
    topic = _Topic.of(term_list)
    papers = list(papers)
    vectors = _measured(term_list, name, kind)
    stored = (
        semantic.paper_vectors([paper.pk for paper in papers], embeddings.current_name())
        if vectors is not None
        else {}
    )
    results = []
    for paper in papers:
        lexical = {}
        total, terms = _score_document(_Document.of_paper(paper), topic)
        if total > 0:
            lexical[0] = (total, terms)
        meaning = {}
        if vectors is not None and paper.pk in stored:
            found = list(vectors.scores(stored[paper.pk]).values())
            meaning = {0: found[0]} if found else {}
        if scored := _merge(lexical, meaning).get(0):
            results.append((paper, scored))
    results.sort(key=lambda row: -row[1].score)
    return results


def _write(scored: dict[tuple[int, int], Scored], existing: QuerySet[PaperTopic]) -> int:
    """Upsert the scored rows and settle the existing ones, in one transaction.

    ``existing`` is every stored row the scoring covered. Curated rows stay whatever
    their score (a pin must survive a score of 0); other rows that scored 0 go. The
    upsert never names ``curation``, so a curator's decision is never overwritten.
    """
    rows = [
        PaperTopic(
            paper_id=paper_id,
            topic_id=topic_id,
            score=row.score,
            matched_terms=row.terms,
            lexical=row.lexical,
            similarity=row.similarity,
            closest=row.closest[:200],
        )
        for (paper_id, topic_id), row in scored.items()
    ]
    stale = []
    for pk, paper_id, topic_id, curation in existing.values_list(
        "pk", "paper_id", "topic_id", "curation"
    ):
        if (paper_id, topic_id) in scored:
            continue
        if curation:
            rows.append(PaperTopic(paper_id=paper_id, topic_id=topic_id))
        else:
            stale.append(pk)
    with transaction.atomic():
        for start in range(0, len(stale), WRITE_BATCH):
            # A curator may have pinned or excluded one since it was read: keep those.
            PaperTopic.objects.filter(
                pk__in=stale[start : start + WRITE_BATCH], curation=PaperTopic.Curation.NONE
            ).delete()
        PaperTopic.objects.bulk_create(
            rows,
            batch_size=WRITE_BATCH,
            update_conflicts=True,
            unique_fields=["paper", "topic"],
            update_fields=[
                "score",
                "matched_terms",
                "lexical",
                "similarity",
                "closest",
                "scored_at",
            ],
        )
    return len(rows)


def score_papers(papers: Iterable[Paper]) -> int:
    """Score saved papers against every topic and store the results.

    Each paper is tokenised once, and topics are indexed by the first one or two keys
    of each term, so a paper is only checked against the terms that could occur in
    it; its vector, where it has one, meets every topic's phrases in one product.
    Rows scoring 0 are not stored, and stored ones that now score 0 are deleted
    unless a curator pinned or excluded them. Returns the number of rows written
    (created or updated).
    """
    # The last instance of a paper is its saved state (a source may list it twice).
    papers = list({paper.pk: paper for paper in papers if paper.pk is not None}.values())
    if not papers:
        return 0
    index = _Index(
        (topic.pk, _Topic.of(topic.term_list))
        for topic in Topic.objects.only("pk", "terms").order_by("pk")
    )
    _, vectors, topic_vectors = _semantic_inputs([paper.pk for paper in papers])
    written = 0
    with transaction.atomic():
        for start in range(0, len(papers), WRITE_BATCH):
            batch = papers[start : start + WRITE_BATCH]
            scored = {}
            for paper in batch:
                lexical = index.scores(_Document.of_paper(paper))
                meaning = (
                    topic_vectors.scores(vectors[paper.pk])
                    if topic_vectors is not None and paper.pk in vectors
                    else {}
                )
                for topic_id, row in _merge(lexical, meaning).items():
                    scored[(paper.pk, topic_id)] = row
            existing = PaperTopic.objects.filter(paper_id__in=[paper.pk for paper in batch])
            written += _write(scored, existing)
    return written


def _semantic_inputs(paper_ids: list[int], topic_ids: list[int] | None = None):
    """The current model's name, the papers' vectors and the topics' (None when
    semantic matching is off or the model is unavailable)."""
    name = embeddings.current_name()
    if settings.PAPERBOY_MATCHING == "lexical" or name is None:
        return None, {}, None
    # Stored vectors only: scoring never loads the model (it may run in a transaction).
    vectors = semantic.paper_vectors(paper_ids, name)
    if not vectors:
        return name, {}, None
    dimensions = len(next(iter(vectors.values())).whole)
    return name, vectors, semantic.TopicVectors.load(name, dimensions, topic_ids)


def rescore_topic(
    topic: Topic, since: dt.datetime | None = None, background: semantic.Background | None = None
) -> int:
    """Embed a topic, score papers ingested since ``since`` (default: RESCORE_WINDOW
    ago) against it and store the results. Returns the number of rows written.
    ``background``: the stored papers' vectors, when many topics are embedded at once."""
    if since is None:
        since = timezone.now() - RESCORE_WINDOW
    embedded = settings.PAPERBOY_MATCHING != "lexical" and semantic.embed_topic(topic, background)
    if not embedded:
        # Vectors of the old terms would go on matching by meaning: drop them, and the
        # next re-embedding gives the topic new ones.
        TopicEmbedding.objects.filter(topic=topic).delete()
    compiled = _Topic.of(topic.term_list)
    papers = Paper.objects.filter(ingested_at__gte=since).order_by("pk").only(*PAPER_FIELDS)
    scored = {}
    # A batch of papers' vectors at a time: a month of papers, whole and by sentence,
    # is tens of megabytes.
    for batch in itertools.batched(papers.iterator(chunk_size=WRITE_BATCH), WRITE_BATCH):
        _, vectors, topic_vectors = _semantic_inputs([paper.pk for paper in batch], [topic.pk])
        for paper in batch:
            lexical = {}
            total, terms = _score_document(_Document.of_paper(paper), compiled)
            if total > 0:
                lexical[topic.pk] = (total, terms)
            meaning = (
                topic_vectors.scores(vectors[paper.pk])
                if topic_vectors is not None and paper.pk in vectors
                else {}
            )
            if row := _merge(lexical, meaning).get(topic.pk):
                scored[(paper.pk, topic.pk)] = row
    existing = PaperTopic.objects.filter(topic=topic, paper__ingested_at__gte=since)
    return _write(scored, existing)


def embed_and_rescore(papers: Iterable[Paper]) -> int:
    """Embed papers that have no current vector, then score them again with it;
    returns how many were embedded. Called after an import has committed, so that
    the minutes a large import may take hold no transaction."""
    if settings.PAPERBOY_MATCHING == "lexical":
        return 0
    papers = list(papers)
    embedded = semantic.embed_papers(papers)
    if embedded:
        semantic.remeasure_thin_topics()
        score_papers(papers)
    return embedded


def stale_counts() -> tuple[int, int]:
    """Papers of the rescore window and topics without a current vector."""
    name = embeddings.current_name()
    if name is None:
        return 0, 0
    since = timezone.now() - RESCORE_WINDOW
    papers = Paper.objects.filter(ingested_at__gte=since).exclude(embedding__model=name).count()
    topics = Topic.objects.exclude(embedding__model=name).count()
    return papers, topics
