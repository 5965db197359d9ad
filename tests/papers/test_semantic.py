"""Matching by meaning, on fixed vectors: evidence, the combined score, explanations,
acronyms, and each reader's model trained on fixed votes."""

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from digest import readers
from digest.compose import compose_many
from digest.models import Feedback, ReaderModel
from papers import embeddings, matching, semantic
from papers.models import Paper, PaperEmbedding, PaperTopic, Topic
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
        "A title", "First sentence is long enough. Short. Third sentence is long enough too.", []
    ) == [
        "A title",
        "First sentence is long enough.",
        "Third sentence is long enough too.",
    ]


def test_the_keywords_are_one_chunk_beside_the_title_and_push_no_sentence_out():
    abstract = " ".join(f"Sentence number {n} is long enough." for n in range(30))
    keywords = ["continual learning", "catastrophic forgetting"]

    with_keywords = embeddings.paper_chunks("A title", abstract, keywords)
    without = embeddings.paper_chunks("A title", abstract, [])

    assert with_keywords[:2] == ["A title", "continual learning, catastrophic forgetting"]
    assert with_keywords[2:] == without[1:]
    assert len(without) == 1 + embeddings.MAX_SENTENCES
    assert embeddings.paper_text("A title", "An abstract.", keywords) == (
        "A title. continual learning, catastrophic forgetting. An abstract."
    )
    assert embeddings.paper_text("A title", "", []) == "A title"


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
    assert picks[0].reason == "Mentions long video synthesis."
    assert picks[1].reason == "Close in meaning to 'long video synthesis'."


@pytest.mark.django_db
def test_a_new_paper_is_scored_against_stored_topic_vectors_at_import(fixed_model, samples):
    fixed_model.update({"imitation": unit(1, 0), "Data Quality in Imitation": unit(1, 0.2)})
    topic = Topic.for_interest("imitation")
    matching.rescore_topic(topic)  # no papers yet: the typical distribution
    from papers import importers

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
    assert picks[0].reason.startswith("Like 'Liked paper ")
    assert picks[0].reason.endswith("', which you liked.")


@pytest.mark.django_db
def test_a_vote_trains_the_readers_model_in_a_task(fixed_model, django_capture_on_commit_callbacks):
    from digest.feedback import record_feedback

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


@pytest.mark.django_db
def test_changing_the_model_re_embeds_papers_and_topics_in_the_background(fixed_model):
    from papers.models import TopicEmbedding
    from papers.tasks import reembed

    fixed_model.update({"Paper": unit(1, 0)})
    papers = [_paper(f"Paper {n}") for n in range(5)]
    semantic.embed_papers(papers)
    topic = Topic.for_interest("paper things")
    matching.rescore_topic(topic)
    assert set(PaperEmbedding.objects.values_list("model", flat=True)) == {"fixed-test-model"}

    embeddings.encoder().name = "a-larger-model"  # what a new PAPERBOY_EMBEDDING_MODEL gives
    embeddings.current_name = lambda: "a-larger-model"
    assert matching.stale_counts() == (5, Topic.objects.count())
    result = reembed.delay(batch=2).get()  # eager: each batch queues the next

    assert set(PaperEmbedding.objects.values_list("model", flat=True)) == {"a-larger-model"}
    assert set(TopicEmbedding.objects.values_list("model", flat=True)) == {"a-larger-model"}
    assert TopicEmbedding.objects.count() == Topic.objects.count()
    assert matching.stale_counts() == (0, 0)
    assert result == {"papers": 2, "topics": 0}  # the first batch's own count


@pytest.mark.django_db
@pytest.mark.semantic
def test_without_a_loadable_model_papers_match_by_words_and_the_dashboard_says_so(
    admin_client, settings, tmp_path, samples, monkeypatch
):
    from papers import importers

    monkeypatch.setattr(embeddings, "_loaded", {})
    settings.PAPERBOY_EMBEDDING_MODEL = str(tmp_path / "no-such-model")
    importers.import_source(str(samples / "trending-papers-page.txt"))

    assert PaperEmbedding.objects.count() == 0
    kd = Topic.for_interest("knowledge distillation")
    matching.rescore_topic(kd)
    assert PaperTopic.objects.matching().filter(topic=kd).count() >= 2
    page = admin_client.get("/admin/").content.decode()
    assert "Unavailable" in page
    assert "Papers match by their words alone until it can." in page


@pytest.mark.django_db
def test_composing_with_reader_models_takes_a_fixed_number_of_queries(fixed_model):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fixed_model.update({"Up": unit(1, 0), "Down": unit(0, 1), "New": unit(1, 0.1)})
    long_ago = timezone.now() - dt.timedelta(days=20)
    voted = [_paper(f"Up {n}", ingested_at=long_ago) for n in range(3)]
    voted += [_paper(f"Down {n}", ingested_at=long_ago) for n in range(2)]
    fresh = [_paper(f"New {n}") for n in range(4)]
    semantic.embed_papers([*voted, *fresh])
    topic = Topic.objects.curated().first()
    # The topic matches the new papers, so every reader has candidates to rerank.
    for paper in fresh:
        PaperTopic.objects.create(paper=paper, topic=topic, curation=PaperTopic.Curation.PINNED)

    def readers_with_models(count: int) -> list[Subscriber]:
        made = []
        for n in range(count):
            reader = Subscriber.objects.create(
                email=f"q{count}-{n}@example.org",
                status=Subscriber.Status.ACTIVE,
                confirmed_at=timezone.now(),
            )
            reader.topics.set([topic])
            for paper in voted:
                Feedback.objects.create(
                    subscriber=reader, paper=paper, vote=1 if paper.title[0] == "U" else -1
                )
            readers.train(reader.pk)
            made.append(reader)
        return made

    counts = []
    for size in (1, 10):
        batch = readers_with_models(size)
        with CaptureQueriesContext(connection) as captured:
            picks = compose_many(batch, timezone.now() + dt.timedelta(minutes=1))
        counts.append(len(captured))
        assert all(picks[reader.pk] for reader in batch)
        assert ReaderModel.objects.filter(subscriber__in=batch).count() == size
    assert counts[0] == counts[1]


@pytest.mark.django_db
def test_a_curators_preview_gives_the_numbers_that_saving_stores(fixed_model):
    fixed_model.update({"graph learning": unit(1, 0), "Graphs": unit(1, 0.2)})
    papers = [_paper(f"Graphs {n}", "Message passing on graphs.") for n in range(3)]
    papers += [_paper(f"Protein {n}", "Folding.") for n in range(40)]
    semantic.embed_papers(papers)
    shown = {paper.pk: row for paper, row in matching.preview(["graph learning"], papers)}

    topic = Topic.objects.create(
        name="Graph learning", slug="graph-learning", terms="graph learning"
    )
    stored = {row.paper_id: row for row in PaperTopic.objects.filter(topic=topic)}
    assert set(shown) == set(stored) == {paper.pk for paper in papers[:3]}
    for pk, row in shown.items():
        assert (row.score, row.similarity, row.closest) == (
            stored[pk].score,
            stored[pk].similarity,
            stored[pk].closest,
        )


def test_a_topic_is_measured_against_the_background_as_each_paper_is_scored():
    rng = np.random.default_rng(3)

    def random_unit(rows: int) -> np.ndarray:
        matrix = rng.normal(size=(rows, DIMENSIONS)).astype(np.float32)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    papers = [semantic.PaperVectors(random_unit(1)[0], random_unit(n)) for n in (1, 4, 2, 7)]
    phrases = random_unit(3)
    expected = [semantic.similarities(phrases, paper).max() for paper in papers]
    assert semantic.Background(papers).similarities(phrases) == pytest.approx(expected, abs=1e-6)
    assert len(semantic.Background([]).similarities(phrases)) == 0


@pytest.mark.django_db
def test_a_paper_whose_text_changes_is_embedded_again(fixed_model, tmp_path):
    from papers import importers

    fixed_model.update({"Graph nets. ": unit(1, 0), "Graph nets": unit(0, 1)})
    page = tmp_path / "page.json"
    item = {"paper": {"id": "2401.00001", "title": "Graph nets", "summary": ""}}
    page.write_text(__import__("json").dumps([item]))
    importers.import_source(str(page))
    paper = Paper.objects.get(arxiv_id="2401.00001")
    first = bytes(PaperEmbedding.objects.get(paper=paper).vector)

    item["paper"]["summary"] = "Message passing on graphs, now with an abstract."
    page.write_text(__import__("json").dumps([item]))
    importers.import_source(str(page))
    assert bytes(PaperEmbedding.objects.get(paper=paper).vector) != first


@pytest.mark.django_db
def test_the_admin_import_page_leaves_embedding_to_a_task(
    fixed_model, samples, monkeypatch, django_capture_on_commit_callbacks
):
    from papers import importers, tasks

    queued = []
    monkeypatch.setattr(tasks.embed_papers, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        importers.import_source(str(samples / "arxiv-atom.xml"), embed_later=True)
    assert PaperEmbedding.objects.count() == 0
    assert sorted(pk for batch in queued for pk in batch) == sorted(
        Paper.objects.values_list("pk", flat=True)
    )
    tasks.embed_papers(queued[0])
    assert PaperEmbedding.objects.count() == Paper.objects.count()


@pytest.mark.django_db
def test_a_topic_measured_before_any_paper_is_measured_again_once_papers_come(fixed_model):
    from papers.models import TopicEmbedding

    fixed_model.update({"spiking networks": unit(1, 0), "Noise": unit(0, 1)})
    topic = Topic.for_interest("spiking networks")
    matching.rescore_topic(topic)
    assert TopicEmbedding.objects.get(topic=topic).background == 0

    matching.embed_and_rescore([_paper(f"Noise {n}") for n in range(50)])
    row = TopicEmbedding.objects.get(topic=topic)
    assert row.background == 50
    assert row.center == pytest.approx(0.0, abs=0.01)


@pytest.mark.django_db
def test_terms_changed_without_the_model_drop_the_old_vectors(fixed_model, settings):
    from papers.models import TopicEmbedding

    topic = Topic.for_interest("graph learning")
    matching.rescore_topic(topic)
    assert TopicEmbedding.objects.filter(topic=topic).exists()
    settings.PAPERBOY_MATCHING = "lexical"
    topic.terms = "protein folding"
    topic.save()
    assert not TopicEmbedding.objects.filter(topic=topic).exists()


@pytest.mark.django_db
def test_a_curated_topics_preview_includes_its_name_as_a_phrase(fixed_model):
    from papers.topics import preview_terms

    fixed_model.update(
        {"Imitation learning": unit(1, 0), "Robots copying": unit(1, 0.1), "Noise": unit(0, 0, 1)}
    )
    papers = [_paper("Robots copying people", "They watch and repeat.")]
    papers += [_paper(f"Noise {n}") for n in range(40)]
    semantic.embed_papers(papers)
    topic = Topic.objects.create(
        name="Imitation learning", slug="imitation-learning", terms="behaviour cloning"
    )
    rows = preview_terms("behaviour cloning", topic=topic)
    assert [(row.paper, row.closest) for row in rows] == [(papers[0], "Imitation learning")]
    stored = PaperTopic.objects.get(topic=topic, paper=papers[0])
    assert (stored.score, stored.closest) == (rows[0].score, "Imitation learning")


@pytest.mark.django_db
def test_renaming_a_curated_topic_embeds_its_new_name(fixed_model):
    from papers.models import TopicEmbedding

    topic = Topic.objects.create(name="Graph nets", slug="graph-nets", terms="message passing")
    assert TopicEmbedding.objects.get(topic=topic).labels == ["Graph nets", "message passing"]
    topic.name = "Message-passing networks"
    topic.save()
    assert TopicEmbedding.objects.get(topic=topic).labels == [
        "Message-passing networks",
        "message passing",
    ]


@pytest.mark.django_db
def test_a_paper_matches_by_the_meaning_of_its_keywords(fixed_model):
    fixed_model.update(
        {
            "never forgetting old tasks": unit(1, 0),
            "continual learning, catastrophic forgetting": unit(1, 0.1),
            "Noise": unit(0, 0, 1),
        }
    )
    abstract = "We train agents on a stream of tasks, one after another."
    keyed = _paper(
        "Agents that keep going",
        abstract,
        ai_keywords=["continual learning", "catastrophic forgetting"],
    )
    bare = _paper("Agents that keep going on", abstract)
    noise = [_paper(f"Noise {n}", "Noise all along the way.") for n in range(40)]
    matching.embed_and_rescore([keyed, bare, *noise])

    # The title, the keywords and the one sentence.
    stored = PaperEmbedding.objects.get(paper=keyed)
    chunks = embeddings.from_bytes(stored.chunks, DIMENSIONS)
    assert len(chunks) == 3
    assert chunks[1] == pytest.approx(unit(1, 0.1))

    topic = Topic.for_interest("never forgetting old tasks")
    rows = {row.paper_id: row for row in PaperTopic.objects.matching().filter(topic=topic)}
    assert set(rows) == {keyed.pk}
    assert rows[keyed.pk].closest == "never forgetting old tasks"


@pytest.mark.django_db
def test_a_paper_whose_keywords_change_is_embedded_again(fixed_model, tmp_path):
    import json

    from papers import importers

    fixed_model.update({"Graph nets": unit(0, 1), "message passing": unit(1, 0)})
    page = tmp_path / "page.json"
    item = {"paper": {"id": "2401.00001", "title": "Graph nets", "summary": ""}}
    page.write_text(json.dumps([item]))
    importers.import_source(str(page))
    paper = Paper.objects.get(arxiv_id="2401.00001")
    assert (
        len(embeddings.from_bytes(PaperEmbedding.objects.get(paper=paper).chunks, DIMENSIONS)) == 1
    )

    item["paper"]["ai_keywords"] = ["message passing"]
    page.write_text(json.dumps([item]))
    importers.import_source(str(page))

    chunks = embeddings.from_bytes(PaperEmbedding.objects.get(paper=paper).chunks, DIMENSIONS)
    assert len(chunks) == 2
    assert chunks[1] == pytest.approx(unit(1, 0))


@pytest.mark.django_db
@pytest.mark.usefixtures("fields_left_out_raise")
def test_the_embedding_tasks_load_the_papers_keywords_with_them(fixed_model):
    from papers import tasks

    fixed_model.update({"Paper": unit(0, 1), "graph nets": unit(1, 0)})
    papers = [_paper(f"Paper {n}", ai_keywords=["graph nets"]) for n in range(3)]

    def keyword_chunks() -> np.ndarray:
        rows = PaperEmbedding.objects.order_by("paper_id").values_list("chunks", flat=True)
        return np.vstack([embeddings.from_bytes(chunks, DIMENSIONS)[1] for chunks in rows])

    tasks.embed_papers([paper.pk for paper in papers])
    assert keyword_chunks() == pytest.approx(np.vstack([unit(1, 0)] * 3))

    embeddings.encoder().name = "a-larger-model"  # what a new PAPERBOY_EMBEDDING_MODEL gives
    embeddings.current_name = lambda: "a-larger-model"
    tasks.reembed.delay(batch=2)
    assert set(PaperEmbedding.objects.values_list("model", flat=True)) == {"a-larger-model"}
    assert keyword_chunks() == pytest.approx(np.vstack([unit(1, 0)] * 3))
