"""Learning from each reader's 👍 and 👎.

After a few votes (MIN_VOTES, at least one each way) a reader gets a logistic
regression on paper embeddings, trained on their votes plus a few random recent papers
as weak negatives (Scholar Inbox's recipe: learning from each reader's votes matters
more than the choice of embedding model). It is trained by a task after each vote and
stored as one small row (``ReaderModel``: 385 floats and the liked papers' ids).

When a digest is composed, the model tilts the ranking of the reader's candidates
(``boost``) and may bring in a paper no topic matched when it is both likely to please
and close to a paper they liked; "Why" then names that paper.

The fit is a few Newton steps in numpy: scikit-learn would add tens of megabytes to
every worker process for a model of 385 parameters.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Container

import numpy as np
from django.conf import settings

from digest.models import Feedback, ReaderModel
from digest.picks import Pick
from papers import embeddings, semantic
from papers.matching import RESCORE_WINDOW
from papers.models import PaperEmbedding

MIN_VOTES = 5
RANDOM_NEGATIVES = 20
RANDOM_NEGATIVE_WEIGHT = 0.25  # a random paper is only probably not for them
L2 = 0.05
NEWTON_STEPS = 30
LIKED_KEPT = 50
# Reranking: a candidate's score moves by up to READER_WEIGHT either way.
READER_WEIGHT = 1.0
# A paper no topic matched comes in when the model is this sure and it is this close
# to a paper the reader liked.
BRING_IN_PROBABILITY = 0.8
BRING_IN_SIMILARITY = 0.5
BRING_IN_RELEVANCE = 0.8  # below a lexical match, as a topic's semantic match is


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(values, -30, 30)))


def fit(
    vectors: np.ndarray, labels: np.ndarray, weights: np.ndarray, l2: float = L2
) -> tuple[np.ndarray, float]:
    """Weighted, L2-regularised logistic regression by Newton's method; the bias is
    not regularised. Returns (weights, bias)."""
    count, dimensions = vectors.shape
    design = np.hstack([vectors.astype(np.float64), np.ones((count, 1))])
    penalty = np.full(dimensions + 1, l2)
    penalty[-1] = 0.0
    theta = np.zeros(dimensions + 1)
    for _ in range(NEWTON_STEPS):
        probability = _sigmoid(design @ theta)
        gradient = design.T @ (weights * (probability - labels)) + penalty * theta
        curvature = weights * probability * (1 - probability)
        hessian = (design.T * curvature) @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-6:
            break
    return theta[:-1].astype(np.float32), float(theta[-1])


def train(subscriber_id: int) -> ReaderModel | None:
    """Train (or drop) one reader's model from their votes; None when there is too
    little to learn from yet, or semantic matching is off."""
    name = embeddings.current_name()
    votes = list(
        Feedback.objects.filter(subscriber_id=subscriber_id)
        .order_by("-updated_at", "-pk")
        .values_list("paper_id", "vote")
    )
    stored = semantic.paper_vectors([paper_id for paper_id, _ in votes], name) if name else {}
    vectors = {paper_id: found.whole for paper_id, found in stored.items()}
    votes = [(paper_id, vote) for paper_id, vote in votes if paper_id in vectors]
    ups = [paper_id for paper_id, vote in votes if vote > 0]
    if name is None or len(votes) < MIN_VOTES or not ups or len(ups) == len(votes):
        ReaderModel.objects.filter(subscriber_id=subscriber_id).delete()
        return None
    voted = {paper_id for paper_id, _ in votes}
    recent = list(
        PaperEmbedding.objects.filter(model=name)
        .exclude(paper_id__in=voted)
        .order_by("-paper__ingested_at", "-paper_id")
        .values_list("paper_id", "vector")[:500]
    )
    # Seeded by the reader, so the same votes always train the same model.
    seeded = random.Random(subscriber_id)  # noqa: S311 - not a secret
    negatives = seeded.sample(recent, min(RANDOM_NEGATIVES, len(recent)))
    rows = [vectors[paper_id] for paper_id, _ in votes]
    rows += [embeddings.from_bytes(vector) for _, vector in negatives]
    labels = [1.0 if vote > 0 else 0.0 for _, vote in votes] + [0.0] * len(negatives)
    weights = [1.0] * len(votes) + [RANDOM_NEGATIVE_WEIGHT] * len(negatives)
    coefficients, bias = fit(np.vstack(rows), np.array(labels), np.array(weights))
    model, _ = ReaderModel.objects.update_or_create(
        subscriber_id=subscriber_id,
        defaults={
            "model": name,
            "weights": embeddings.to_bytes(coefficients),
            "bias": bias,
            "liked": ups[:LIKED_KEPT],
            "votes": len(votes),
        },
    )
    return model


class ReaderModels:
    """The reader models of a batch being composed, in three queries at most: the
    models, the vectors of the papers in the window, the vectors of liked papers."""

    def __init__(self):
        self.models: dict[int, tuple[np.ndarray, float, list[int]]] = {}
        self.vectors: dict[int, np.ndarray] = {}
        self.ingested: dict[int, dt.datetime] = {}
        self.liked: dict[int, np.ndarray] = {}
        self.probability: dict[int, dict[int, float]] = {}

    @classmethod
    def load(cls, since: dict[int, dt.datetime], until: dt.datetime):
        """``since``: each subscriber's window start (compose._window_starts)."""
        readers = cls()
        name = embeddings.current_name()
        if name is None or settings.PAPERBOY_MATCHING == "lexical":
            return readers
        for subscriber_id, weights, bias, liked in ReaderModel.objects.filter(
            subscriber_id__in=list(since), model=name
        ).values_list("subscriber_id", "weights", "bias", "liked"):
            readers.models[subscriber_id] = (embeddings.from_bytes(weights), bias, liked)
        if not readers.models:
            return readers
        # The widest window of the readers with a model, and never more than the
        # window papers are scored in: one reader back from a long pause must not
        # bring every vector ever stored into the batch.
        start = max(
            min(since[subscriber_id] for subscriber_id in readers.models),
            until - RESCORE_WINDOW,
        )
        for paper_id, vector, ingested_at in PaperEmbedding.objects.filter(
            model=name,
            paper__hidden=False,
            paper__ingested_at__gt=start,
            paper__ingested_at__lte=until,
        ).values_list("paper_id", "vector", "paper__ingested_at"):
            readers.vectors[paper_id] = embeddings.from_bytes(vector)
            readers.ingested[paper_id] = ingested_at
        # The liked papers of all these readers in one query, whatever their number.
        liked = {paper_id for _, _, ids in readers.models.values() for paper_id in ids}
        for paper_id, vector in (
            PaperEmbedding.objects.filter(
                model=name,
                paper__feedback__subscriber_id__in=list(readers.models),
                paper__feedback__vote=Feedback.Vote.UP,
            )
            .distinct()
            .values_list("paper_id", "vector")
        ):
            if paper_id in liked:
                readers.liked[paper_id] = embeddings.from_bytes(vector)
        return readers

    def rerank(self, subscriber_id: int, have: Container[int], eligible: set[int]) -> list:
        """Score the reader's eligible papers with their model; returns the picks it
        brings in among those not in ``have`` (the papers a topic matched)."""
        model = self.models.get(subscriber_id)
        ids = [paper_id for paper_id in eligible if paper_id in self.vectors]
        if model is None or not ids:
            return []
        weights, bias, liked_ids = model
        matrix = np.vstack([self.vectors[paper_id] for paper_id in ids])
        probabilities = _sigmoid(matrix @ weights + bias)
        self.probability[subscriber_id] = dict(zip(ids, probabilities.tolist(), strict=True))
        liked_ids = [paper_id for paper_id in liked_ids if paper_id in self.liked]
        if not liked_ids:
            return []
        liked = np.vstack([self.liked[paper_id] for paper_id in liked_ids])
        brought = []
        for row, (paper_id, probability) in enumerate(zip(ids, probabilities, strict=True)):
            if paper_id in have or probability < BRING_IN_PROBABILITY:
                continue
            similarities = liked @ matrix[row]
            nearest = int(np.argmax(similarities))
            if similarities[nearest] >= BRING_IN_SIMILARITY:
                brought.append(
                    Pick(
                        paper=paper_id,
                        relevance=BRING_IN_RELEVANCE * float(probability),
                        liked_id=liked_ids[nearest],
                    )
                )
        return brought

    def boost(self, subscriber_id: int, paper_id: int) -> float:
        probability = self.probability.get(subscriber_id, {}).get(paper_id)
        return 0.0 if probability is None else READER_WEIGHT * (2 * probability - 1)
