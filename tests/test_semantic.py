"""Matching by meaning, on fixed vectors: evidence, the combined score, explanations,
acronyms, and each reader's model trained on fixed votes."""

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from digest import embeddings, matching, readers, semantic
from digest.compose import compose_many
from digest.models import Feedback, Paper, PaperEmbedding, PaperTopic, ReaderModel, Topic
from subscriptions.models import Subscriber

DIMENSIONS = 8


def unit(*weights: float) -> np.ndarray:
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)


class FixedEncoder:
    """Vectors chosen by the test, looked up by the start of the text."""

    name = "fixed-test-model"
    dimensions = DIMENSIONS

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def encode(self, texts):
        rows = []
        for text in texts:
            key = next((key for key in self.vectors if text.startswith(key)), None)
            rows.append(self.vectors[key] if key else unit(0, 0, 0, 0, 0, 0, 0, 1))
        return np.vstack(rows)


@pytest.fixture
def fixed_model(monkeypatch, settings):
    settings.PAPERBOY_MATCHING = "both"
    vectors: dict[str, np.ndarray] = {}
    encoder = FixedEncoder(vectors)
    monkeypatch.setattr(embeddings, "encoder", lambda: encoder)
    monkeypatch.setattr(embeddings, "current_name", lambda: encoder.name)
    return vectors


def test_evidence_is_zero_for_a_typical_paper_and_one_at_the_match_line():
    assert semantic.evidence(0.30, center=0.30, spread=0.05) == 0
    at_line = 0.30 + semantic.Z_MATCH * 0.05
    assert semantic.evidence(at_line, center=0.30, spread=0.05) == pytest.approx(1.0)
    # However far above an unusually tight distribution, a weak cosine is no evidence.
    assert semantic.evidence(0.2, center=0.0, spread=0.01) == 0


def test_a_match_by_meaning_alone_scores_below_any_title_hit(settings):
    settings.PAPERBOY_MATCHING = "both"
    assert matching.combine(0.0, 5.0) == matching.SEMANTIC_CAP < 1.18
    assert matching.combine(1.18, 0.5) == pytest.approx(1.68)
    # One mention in the abstract (0.75) and some closeness add up to a match.
    assert matching.combine(0.75, 0.3) >= settings.PAPERBOY_MATCH_THRESHOLD
    settings.PAPERBOY_MATCHING = "lexical"
    assert matching.combine(0.75, 5.0) == 0.75


def test_topic_vectors_score_each_topic_by_its_closest_phrase():
    rows = [
        semantic.TopicEmbedding(
            topic_id=1,
            labels=["robot imitation", "learning from demonstrations"],
            vectors=embeddings.to_bytes(np.vstack([unit(1, 0), unit(0, 1)])),
            center=0.1,
            spread=0.05,
        ),
        semantic.TopicEmbedding(
            topic_id=2,
            labels=["protein folding"],
            vectors=embeddings.to_bytes(unit(0, 0, 1)[None, :]),
            center=0.1,
            spread=0.05,
        ),
    ]
    paper = semantic.PaperVectors(unit(0.2, 1), np.vstack([unit(0, 0, 0, 1), unit(0.2, 1)]))
    scored = semantic.TopicVectors(rows, DIMENSIONS).scores(paper)
    assert set(scored) == {1}
    evidence, similarity, closest = scored[1]
    assert closest == "learning from demonstrations"
    assert similarity == pytest.approx(float(unit(0.2, 1) @ unit(0, 1)), abs=1e-4)
    assert evidence > 1


def test_a_phrase_is_compared_with_the_whole_text_and_the_closest_sentence():
    phrase = unit(1, 0)[None, :]
    # The whole text is about something else; one sentence says exactly the phrase.
    paper = semantic.PaperVectors(unit(0, 1), np.vstack([unit(0, 1), unit(1, 0)]))
    assert semantic.similarities(phrase, paper)[0] == pytest.approx(0.5)
    assert embeddings.paper_chunks(
        "A title", "First sentence is long enough. Short. Third sentence is long enough too."
    ) == [
        "A title",
        "First sentence is long enough.",
        "Third sentence is long enough too.",
    ]


def test_acronyms_are_spelled_out_as_the_abstracts_define_them():
    abstracts = [
        "We study reinforcement learning from human feedback (RLHF) for chat models.",
        "Unlike reinforcement learning through human feedback (RLHF), we ...",
        "Alignment via reinforcement learning from human feedback (RLHF) is costly.",
        "A mixture-of-experts (MoE) layer routes tokens.",
    ]
    assert semantic.spell_out("RLHF", abstracts) == (
        "RLHF: RLHF (reinforcement learning from human feedback)"
    )
    assert semantic.spell_out("sparse MoE models", abstracts) == (
        "sparse MoE models: MoE (mixture-of-experts)"
    )
    assert semantic.spell_out("video generation", abstracts) == "video generation"
    assert semantic.spell_out("PEFT", abstracts) == "PEFT"


def test_the_distribution_leans_on_typical_values_while_few_papers_are_stored():
    assert semantic.distribution(np.array([])) == (semantic.PRIOR_CENTER, semantic.PRIOR_SPREAD)
    many = np.linspace(0.0, 0.4, 400)
    center, spread = semantic.distribution(many)
    assert center == pytest.approx(0.2, abs=0.01)
    assert spread == pytest.approx(1.4826 * 0.1, abs=0.01)


def _paper(title: str, abstract: str = "", **fields) -> Paper:
    return Paper.objects.create(title=title, abstract=abstract, **fields)


@pytest.mark.django_db
def test_papers_close_in_meaning_match_and_exact_phrases_rank_first(fixed_model):
    fixed_model.update(
        {
            "long video synthesis": unit(1, 0),
            "Generating video with diffusion": unit(1, 0.1),  # exact phrase in the abstract
            "SEINE": unit(1, 0.3),  # close in meaning, other words
            "Protein": unit(0, 0, 1),
        }
    )
    exact = _paper(
        "Generating video with diffusion",
        "We address long video synthesis. Long video synthesis benchmarks improve.",
    )
    close = _paper("SEINE: short-to-long clips", "A diffusion model for long clips.")
    unrelated = [_paper(f"Protein folding {n}", "Structures of proteins.") for n in range(45)]
    matching.embed_and_rescore([exact, close, *unrelated])

    topic = Topic.for_interest("long video synthesis")
    matching.rescore_topic(topic)

    rows = {row.paper_id: row for row in PaperTopic.objects.filter(topic=topic)}
    assert set(rows) == {exact.pk, close.pk}
    assert rows[exact.pk].matched_terms == ["long video synthesis"]
    assert rows[exact.pk].score > matching.SEMANTIC_CAP
    assert rows[close.pk].matched_terms == []
    assert rows[close.pk].closest == "long video synthesis"
    assert 1.0 <= rows[close.pk].score <= matching.SEMANTIC_CAP

    reader = Subscriber.objects.create(
        email="vid@example.org", status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now()
    )
    reader.topics.set([topic])
    picks = compose_many([reader], timezone.now() + dt.timedelta(minutes=1))[reader.pk]
    assert [pick.paper for pick in picks] == [exact, close]
    assert picks[0].reason == "matched 'long video synthesis'"
    assert picks[1].reason == "close in meaning to 'long video synthesis'"


@pytest.mark.django_db
def test_a_new_paper_is_scored_against_stored_topic_vectors_at_import(fixed_model, samples):
    fixed_model.update({"imitation": unit(1, 0), "Data Quality in Imitation": unit(1, 0.2)})
    topic = Topic.for_interest("imitation")
    matching.rescore_topic(topic)  # no papers yet: the typical distribution
    from digest import importers

    importers.import_source(str(samples / "trending-papers-page.txt"))

    paper = Paper.objects.get(title="Data Quality in Imitation Learning")
    row = PaperTopic.objects.get(topic=topic, paper=paper)
    assert row.similarity > 0.9
    assert PaperEmbedding.objects.filter(model="fixed-test-model").count() == 72


def test_a_logistic_regression_separates_fixed_votes():
    liked = np.vstack([unit(1, 0.1 * n) for n in range(4)])
    disliked = np.vstack([unit(0.1 * n, 1) for n in range(4)])
    weights, bias = readers.fit(
        np.vstack([liked, disliked]), np.array([1.0] * 4 + [0.0] * 4), np.ones(8)
    )
    probability = readers._sigmoid(np.vstack([unit(1, 0.05), unit(0.05, 1)]) @ weights + bias)
    assert probability[0] > 0.8
    assert probability[1] < 0.2


@pytest.mark.django_db
def test_a_reader_model_trained_on_votes_brings_in_a_paper_like_one_they_liked(fixed_model):
    fixed_model.update(
        {
            "Liked": unit(1, 0.1),
            "Disliked": unit(0.1, 1),
            "Newcomer": unit(1, 0.15),
            "Other": unit(0.1, 0.9),
            "Noise": unit(0, 0, 0, 1),
        }
    )
    long_ago = timezone.now() - dt.timedelta(days=20)
    liked = [_paper(f"Liked paper {n}", ingested_at=long_ago) for n in range(3)]
    disliked = [_paper(f"Disliked paper {n}", ingested_at=long_ago) for n in range(2)]
    noise = [_paper(f"Noise {n}", ingested_at=long_ago) for n in range(10)]
    newcomer, other = _paper("Newcomer on the same idea"), _paper("Other things")
    semantic.embed_papers([*liked, *disliked, *noise, newcomer, other])
    reader = Subscriber.objects.create(
        email="votes@example.org", status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now()
    )
    reader.topics.set([Topic.objects.curated().first()])

    for paper in [*liked, *disliked[:1]]:
        Feedback.objects.create(subscriber=reader, paper=paper, vote=1 if paper in liked else -1)
    assert readers.train(reader.pk) is None  # four votes are not enough yet
    Feedback.objects.create(subscriber=reader, paper=disliked[1], vote=-1)
    model = readers.train(reader.pk)
    assert model.votes == 5
    assert set(model.liked) == {paper.pk for paper in liked}
    assert ReaderModel.objects.filter(subscriber=reader).count() == 1

    picks = compose_many([reader], timezone.now() + dt.timedelta(minutes=1))[reader.pk]
    assert [pick.paper for pick in picks] == [newcomer]
    assert picks[0].reason.startswith("like 'Liked paper ")
    assert picks[0].reason.endswith("', which you liked")


@pytest.mark.django_db
def test_a_vote_trains_the_readers_model_in_a_task(fixed_model, django_capture_on_commit_callbacks):
    from digest.compose import record_feedback

    fixed_model.update({"Up": unit(1, 0), "Down": unit(0, 1)})
    reader = Subscriber.objects.create(
        email="task@example.org", status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now()
    )
    papers = [_paper(f"Up {n}") for n in range(3)] + [_paper(f"Down {n}") for n in range(2)]
    semantic.embed_papers(papers)
    with django_capture_on_commit_callbacks(execute=True):
        for paper in papers:
            record_feedback(reader, paper, 1 if paper.title.startswith("Up") else -1)
    assert ReaderModel.objects.get(subscriber=reader).votes == 5
