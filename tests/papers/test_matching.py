"""Scoring papers against topics: the real trending page, rescoring, curation."""

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone

from papers.importers import import_source
from papers.matching import RESCORE_WINDOW, preview, rescore_topic, score, score_papers
from papers.models import Paper, PaperTopic, Topic
from tests.support.factories import PaperFactory, TopicFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trending(samples):
    """The 72 papers of the saved trending page, imported (and so scored) just now."""
    import_source(str(samples / "trending-papers-page.txt"))


def matched_titles(topic: Topic) -> set[str]:
    return set(
        PaperTopic.objects.matching().filter(topic=topic).values_list("paper__title", flat=True)
    )


# Titles on the trending page ------------------------------------------------------

DATA_EFFICIENT_RL = "Data-Efficient Reinforcement Learning with Self-Predictive Representations"
OFFLINE_ER = "Offline Experience Replay for Continual Offline Reinforcement Learning"
GENERAL_PURPOSE_ICL = "General-Purpose In-Context Learning by Meta-Learning Transformers"
COLLABORATION_TRANSITION = (
    "Collaboration and Transition: Distilling Item Transitions into Multi-Query "
    "Self-Attention for Sequential Recommendation"
)
REWARD_CONSISTENT = (
    "Reward-Consistent Dynamics Models are Strongly Generalizable for Offline "
    "Reinforcement Learning"
)
TRAD = "TRAD: Enhancing LLM Agents with Step-Wise Thought Retrieval and Aligned Decision"
LABOR_LLM = "LABOR-LLM: Language-Based Occupational Representations with Large Language Models"
PRUNING = "A Three-regime Model of Network Pruning"
REPRESENTATION_SHIFT = (
    "Analyzing Fine-tuning Representation Shift for Multimodal LLMs Steering alignment"
)
ICL_MECHANISM = (
    "The mechanistic basis of data dependence and abrupt learning in an in-context "
    "classification task"
)
CL_SURVEY = "Continual Learning of Large Language Models: A Comprehensive Survey"
SEINE = "SEINE: Short-to-Long Video Diffusion Model for Generative Transition and Prediction"
TOOL_USE = "Boosting Tool Use of Large Language Models via Iterative Reinforced Fine-Tuning"
COMPETITIVE_DISTILLATION = (
    "Unlock the Power: Competitive Distillation for Multi-Modal Large Language Models"
)
TAME = "TAME: Task Agnostic Continual Learning using Multiple Experts"
UNIFIED_PEFT = "Towards a Unified View of Parameter-Efficient Transfer Learning"
ARITHMETIC = "Teaching Arithmetic to Small Transformers"
RECURSIVE_INTROSPECTION = (
    "Recursive Introspection: Teaching Language Model Agents How to Self-Improve"
)
RNN_REVIEW = "A Critical Review of Recurrent Neural Networks for Sequence Learning"
ALPINE = "ALPINE: Unveiling the Planning Capability of Autoregressive Learning in Language Models"
LMPC = "Learning to Learn Faster from Human Feedback with Language Model Predictive Control"
INSTRUCTION_TUNING = (
    "From Language Modeling to Instruction Following: Understanding the Behavior Shift in "
    "LLMs after Instruction Tuning"
)
LARGE_CONCEPT_MODELS = "Large Concept Models: Language Modeling in a Sentence Representation Space"
CLASS_INCREMENTAL = (
    "Less is more: Summarizing Patch Tokens for efficient Multi-Label Class-Incremental Learning"
)
META_DMOE = "Meta-DMoE: Adapting to Domain Shift by Meta-Distillation from Mixture-of-Experts"
MODEL_BASED_RL = "The Benefits of Model-Based Generalization in Reinforcement Learning"
WORLD_MODELS = "Cognitively Inspired Energy-Based World Models"
LIFELONG_SURVEY = "Towards Lifelong Learning of Large Language Models: A Survey"
DIFFUSION_OVERVIEW = (
    "An Overview of Diffusion Models: Applications, Guided Generation, Statistical Rates "
    "and Optimization"
)
REPLAY_FREE = "Prototype-Sample Relation Distillation: Towards Replay-Free Continual Learning"
PASTA = "PASTA: Pretrained Action-State Transformer Agents"
DICHOTOMY = "Dichotomy of Control: Separating What You Can Control from What You Cannot"
FEW_SHOT_BIDIRECTIONAL = "Bidirectional Language Models Are Also Few-shot Learners"
WHAT_ALGORITHM = "What learning algorithm is in-context learning? Investigations with linear models"
DUAL_PROCESS = (
    "Dual Process Learning: Controlling Use of In-Context vs. In-Weights Strategies with "
    "Weight Forgetting"
)
CHAIN_OF_HINDSIGHT = "Chain of Hindsight Aligns Language Models with Feedback"
LIFELONG_SYSTEMS = "A Domain-Agnostic Approach for Characterization of Lifelong Learning Systems"
CONTINUAL_MBRL = "Continual Model-Based Reinforcement Learning with Hypernetworks"
LIBERO = "LIBERO: Benchmarking Knowledge Transfer for Lifelong Robot Learning"
CURRICULUM_DEEP_RL = (
    "Teacher algorithms for curriculum learning of Deep RL in continuously parameterized "
    "environments"
)
CONTINUAL_PRETRAINING = (
    "Investigating Continual Pretraining in Large Language Models: Insights and Implications"
)
HALF_FINE_TUNING = "HFT: Half Fine-Tuning for Large Language Models"
IMITATION_DATA_QUALITY = "Data Quality in Imitation Learning"
ICL_DISCRETE_FUNCTIONS = (
    "Understanding In-Context Learning in Transformers and LLMs by Learning to Learn "
    "Discrete Functions"
)
BAYESIAN_PRISM = "In-Context Learning through the Bayesian Prism"
LEARN_FROM_THE_LEARNT = (
    "Learn from the Learnt: Source-Free Active Domain Adaptation via Contrastive Sampling and "
    "Visual Persistence"
)
HIERARCHICAL_CL = "Online Continual Learning on Hierarchical Label Expansion"
RECFORMER = "Text Is All You Need: Learning Language Representations for Sequential Recommendation"
CONTINUAL_PRETRAIN_STRATEGIES = (
    "Simple and Scalable Strategies to Continually Pre-train Large Language Models"
)
ORDER_MATTERS = "Order Matters: Sequence to sequence for sets"
PEDAGOGICAL_ALIGNMENT = "Pedagogical Alignment of Large Language Models"
STRUCTURAL_RECURSION = (
    "Transformer-Based Models Are Not Yet Perfect At Learning to Emulate Structural Recursion"
)
MODEL_REUSE = (
    "Deep Learning Model Reuse in the HuggingFace Community: Challenges, Benefit and Trends"
)
RANK_SELECTIVE_LORA = (
    "Adaptive Rank, Reduced Forgetting: Knowledge Retention in Continual Learning "
    "Vision-Language Models with Dynamic Rank-Selective LoRA"
)

# For each topic: papers a reader of it expects, and papers a keyword search would
# wrongly bring in (the reason is the trap each one sets).
EXPECTATIONS = {
    "reinforcement-learning": (
        [
            DATA_EFFICIENT_RL,
            OFFLINE_ER,
            REWARD_CONSISTENT,
            MODEL_BASED_RL,
            CONTINUAL_MBRL,
            CURRICULUM_DEEP_RL,  # "Deep RL": an acronym in a title
            DICHOTOMY,  # only "offline reinforcement learning (RL)" in the abstract
            PASTA,  # "offline RL", "RL trajectories"
        ],
        [
            COLLABORATION_TRANSITION,  # item "transitions"
            PRUNING,  # a "sharp transition phenomenon"
            SEINE,  # "generative transition"
            IMITATION_DATA_QUALITY,  # policies and "transition diversity", but imitation
            DIFFUSION_OVERVIEW,  # names RL once, as an application of diffusion
            TOOL_USE,  # "Reinforced Fine-Tuning"
            PEDAGOGICAL_ALIGNMENT,  # RLHF: names reinforcement learning once
            LMPC,  # a "partially observable Markov decision process", once
        ],
    ),
    "continual-learning": (
        [
            OFFLINE_ER,
            CL_SURVEY,
            TAME,
            LIFELONG_SURVEY,
            CLASS_INCREMENTAL,
            REPLAY_FREE,
            LIFELONG_SYSTEMS,
            CONTINUAL_MBRL,
            LIBERO,
            CONTINUAL_PRETRAINING,
            HIERARCHICAL_CL,
            CONTINUAL_PRETRAIN_STRATEGIES,
            RANK_SELECTIVE_LORA,
        ],
        [
            MODEL_BASED_RL,  # "Experience Replay" once, as an RL tool
            DUAL_PROCESS,  # "weight forgetting" is its technique, not its problem
            CURRICULUM_DEEP_RL,  # "continuously" stems like "continual" in Snowball
            TOOL_USE,  # "continually guide the model"
            COMPETITIVE_DISTILLATION,  # "continually updates"
        ],
    ),
    "in-context-learning": (
        [
            GENERAL_PURPOSE_ICL,
            ICL_MECHANISM,
            WHAT_ALGORITHM,
            DUAL_PROCESS,
            ICL_DISCRETE_FUNCTIONS,
            BAYESIAN_PRISM,
        ],
        [
            LABOR_LLM,  # in-context learning as one baseline
            ARITHMETIC,  # "few-shot prompting", once
            STRUCTURAL_RECURSION,  # "in-context demonstrations", once
        ],
    ),
    "diffusion-models": (
        [SEINE, DIFFUSION_OVERVIEW],
        [
            LARGE_CONCEPT_MODELS,  # "diffusion-based generation" as one variant among three
            FEW_SHOT_BIDIRECTIONAL,  # "denoising objectives" of masked language models
        ],
    ),
    "llm-agents": (
        [TRAD, TOOL_USE, RECURSIVE_INTROSPECTION],
        [
            PASTA,  # "Transformer Agents" for RL, not language agents
            DATA_EFFICIENT_RL,  # "an agent" throughout
            OFFLINE_ER,
            LIBERO,  # "a generalist agent"
        ],
    ),
    "video-generation": (
        [SEINE],
        [
            CONTINUAL_MBRL,  # "project website with videos"
            LMPC,  # "See videos, code, and demos"
            CURRICULUM_DEEP_RL,  # "Videos and code are available"
            RNN_REVIEW,  # "video analysis"
        ],
    ),
    "recommender-systems": (
        [COLLABORATION_TRANSITION, RECFORMER],
        [
            PASTA,  # "from robotics to recommendation systems"
            LIFELONG_SYSTEMS,  # "we make recommendations for ..."
            MODEL_REUSE,  # "recommendations for various stakeholders"
        ],
    ),
    "vision-language-models": (
        [RANK_SELECTIVE_LORA, REPRESENTATION_SHIFT, COMPETITIVE_DISTILLATION],
        [
            SEINE,  # video "clips" are not CLIP
            LEARN_FROM_THE_LEARNT,  # "Visual Persistence"
        ],
    ),
    "alignment-rlhf": (
        [PEDAGOGICAL_ALIGNMENT, CHAIN_OF_HINDSIGHT],
        [
            TRAD,  # "Aligned Decision"
            ALPINE,  # "aligns with the predictions"
            LEARN_FROM_THE_LEARNT,  # "cross-domain alignment"
            SEINE,  # "video-text semantic alignment"
        ],
    ),
    "parameter-efficient-fine-tuning": (
        [RANK_SELECTIVE_LORA, UNIFIED_PEFT, PASTA],
        [
            HALF_FINE_TUNING,  # fine-tunes half of all parameters
            TOOL_USE,  # "Reinforced Fine-Tuning"
            REPRESENTATION_SHIFT,  # "Fine-tuning" in the title
            INSTRUCTION_TUNING,  # "instruction fine-tuning"
            META_DMOE,  # "Adapting", not adapters
            LEARN_FROM_THE_LEARNT,  # "Domain Adaptation"
        ],
    ),
}


@pytest.mark.usefixtures("trending")
@pytest.mark.parametrize(
    ("slug", "expected", "unexpected"), [(s, *e) for s, e in EXPECTATIONS.items()]
)
def test_curated_topics_match_what_a_reader_expects_on_the_trending_page(
    slug, expected, unexpected
):
    on_page = set(Paper.objects.values_list("title", flat=True))
    assert set(expected) | set(unexpected) <= on_page, "a title in the expectations has a typo"

    matched = matched_titles(Topic.objects.get(slug=slug))

    assert sorted(set(expected) - matched) == [], "expected papers that did not match"
    assert sorted(set(unexpected) & matched) == [], "papers that should not have matched"


@pytest.mark.usefixtures("trending")
def test_matched_terms_say_why_best_first():
    row = PaperTopic.objects.get(topic__slug="continual-learning", paper__title=OFFLINE_ER)

    # In the title and three times in the abstract: ahead of terms only in the abstract.
    assert row.matched_terms[0] == "experience replay"
    assert {"replay buffer", "catastrophic forgetting", "continual learning"} <= set(
        row.matched_terms
    )
    assert "lifelong learning" not in row.matched_terms


# Scoring ---------------------------------------------------------------------------


def paper(title: str, abstract: str = "", keywords: list[str] | None = None) -> Paper:
    return Paper(title=title, abstract=abstract, ai_keywords=keywords or [])


FILLER = (
    "We study how agents learn from a stream of tasks and report results on several "
    "benchmarks, comparing against strong baselines. "
)


def test_a_title_hit_ranks_above_the_same_term_only_in_the_abstract():
    topic = Topic(terms="replay buffer")
    in_title, _ = score(paper("Replay buffers for continual agents", FILLER), topic)
    in_abstract, _ = score(
        paper("Continual agents", FILLER + "We keep a replay buffer of past tasks."), topic
    )

    assert in_title > in_abstract > 0
    assert in_title >= settings.PAPERBOY_MATCH_THRESHOLD > in_abstract


def test_repeating_a_term_saturates_and_a_long_abstract_dilutes_it():
    topic = Topic(terms="replay buffer")
    mention = "A replay buffer helps. "

    once, _ = score(paper("Agents", FILLER + mention), topic)
    twice, _ = score(paper("Agents", FILLER + mention * 2), topic)
    ten_times, _ = score(paper("Agents", FILLER + mention * 10), topic)
    diluted, _ = score(paper("Agents", FILLER * 8 + mention), topic)

    assert diluted < once < twice < ten_times < 10 * once


def test_a_phrase_matches_only_when_its_words_are_adjacent():
    topic = Topic(terms="replay buffer")

    assert score(paper("Replay buffers at scale"), topic)[0] > 0
    assert score(paper("Replay-buffer sizing"), topic)[0] > 0
    assert score(paper("We replay the buffer"), topic) == (0, [])
    assert score(paper("Buffer replay"), topic) == (0, [])


def test_hyphens_split_words_and_stemming_covers_other_forms():
    topic = Topic(terms="in-context learning")

    assert score(paper("Emergent in context learning"), topic)[0] > 0
    assert score(paper("In-Context Learners Everywhere"), topic) == (0, [])  # learner != learn
    assert score(paper("Learning in-context"), topic) == (0, [])


def test_acronyms_match_whole_capitalised_words_and_are_not_stemmed():
    rag, clip, llm, rl = (Topic(terms=t) for t in ("RAG", "CLIP", "LLM", "RL"))

    assert score(paper("RAG for legal search"), rag)[1] == ["RAG"]
    assert score(paper("Tuning RAGs"), rag)[0] > 0
    for title in ("Long-term storage of rag dolls", "Rag: a new optimiser", "Dragons"):
        assert score(paper(title), rag) == (0, []), title

    assert score(paper("Probing CLIP features"), clip)[0] > 0
    assert score(paper("Short video clips", "Clip after clip."), clip) == (0, [])
    assert score(paper("Short video clips"), Topic(terms="clip"))[0] > 0  # typed as a word

    assert score(paper("Why LLMs hallucinate"), llm)[0] > 0
    assert score(paper("Multimodal LLM-based agents"), llm)[0] > 0
    assert score(paper("Offline RL from pixels"), rl)[0] > 0
    assert score(paper("RLHF without tears"), rl) == (0, [])


def test_a_topic_scores_each_term_once_however_it_is_spelled():
    one = score(paper("LLMs as judges"), Topic(terms="LLM"))
    twice = score(paper("LLMs as judges"), Topic(terms="LLM\nLLMs\n  LLM  "))

    assert one == twice


# Keywords --------------------------------------------------------------------------


def test_a_term_only_in_the_keywords_scores_as_in_the_title():
    one = Topic(terms="catastrophic forgetting")
    two = Topic(terms="catastrophic forgetting\nreplay buffer")  # the path for several hits
    abstract = FILLER + "We keep a replay buffer."
    keywords = ["continual learning", "catastrophic forgetting"]

    for topic in (one, two):
        in_keywords = score(paper("Agents that keep learning", abstract, keywords), topic)
        in_title = score(paper("Agents without catastrophic forgetting", abstract), topic)
        without = score(paper("Agents that keep learning", abstract), topic)

        assert in_keywords == in_title
        assert in_keywords[0] >= settings.PAPERBOY_MATCH_THRESHOLD > without[0]
        assert in_keywords[1][0] == "catastrophic forgetting"  # the Why line names it


def test_keywords_never_count_twice():
    title = "Agents without catastrophic forgetting"
    topic = Topic(terms="catastrophic forgetting")
    # The title names it already: the keywords add nothing.
    assert score(paper(title, FILLER, ["catastrophic forgetting"]), topic) == score(
        paper(title, FILLER), topic
    )
    # However many keywords name a term, they are one title hit.
    learning = Topic(terms="learning")
    many = ["continual learning", "deep learning", "meta-learning", "learning rates"]
    assert score(paper("Agents", FILLER, many), learning) == score(
        paper("Agents", FILLER, many[:1]), learning
    )
    # A title that names a term inside a longer matched phrase has named it too.
    rl = Topic(terms="offline reinforcement learning\nreinforcement learning")
    offline = "Offline reinforcement learning from logs"
    assert score(paper(offline, FILLER, ["reinforcement learning"]), rl) == score(
        paper(offline, FILLER), rl
    )
    # Within the keywords too, a phrase inside a longer one counts for the longer one.
    assert score(paper("Agents", FILLER, ["offline reinforcement learning"]), rl) == (
        score(paper(offline, FILLER), rl)
    )


def test_a_phrase_never_matches_across_two_keywords():
    agents = paper("Agents", FILLER, ["continual learning", "large language models"])

    assert score(agents, Topic(terms="learning large")) == (0, [])
    assert score(agents, Topic(terms="continual learning large")) == (0, [])
    assert score(agents, Topic(terms="large language model"))[0] > 0
    # Written as one keyword, the words do stand next to each other.
    one_keyword = paper("Agents", FILLER, ["learning large models"])
    assert score(one_keyword, Topic(terms="learning large"))[0] > 0


@pytest.fixture
def hf_daily(samples):
    """The 58 papers of a real Hugging Face daily-papers feed, 56 with keywords."""
    import_source(str(samples / "hf-daily-papers-2026-08-21.json"))


@pytest.mark.usefixtures("hf_daily")
def test_keywords_count_alike_at_import_in_a_rescore_and_in_a_preview():
    def stored():
        return sorted(
            PaperTopic.objects.values_list("paper_id", "topic_id", "score", "matched_terms")
        )

    at_import = stored()
    papers, topics = Paper.objects.in_bulk(), Topic.objects.in_bulk()
    # The keywords made a difference: rows that score more than the words alone give.
    raised = 0
    for paper_id, topic_id, total, _ in at_import:
        words = paper(papers[paper_id].title, papers[paper_id].abstract)
        raised += total > score(words, topics[topic_id])[0]
    assert raised >= 10

    for topic in topics.values():
        rescore_topic(topic)
    assert stored() == at_import

    for topic in topics.values():
        shown = preview(topic.term_list, Paper.objects.all())
        assert sorted((p.pk, topic.pk, row.score, row.terms) for p, row in shown) == [
            row for row in at_import if row[1] == topic.pk
        ]
        for paper_, row in shown:
            assert score(paper_, topic) == (row.score, row.terms)


@pytest.mark.usefixtures("fields_left_out_raise")
def test_rescoring_loads_the_papers_keywords_with_them():
    from papers.tasks import rescore_window

    topic = TopicFactory(terms="catastrophic forgetting")
    found = PaperFactory(title="Agents", abstract=FILLER, ai_keywords=["catastrophic forgetting"])
    PaperTopic.objects.all().delete()

    rescore_topic(topic)
    assert PaperTopic.objects.get(topic=topic).paper_id == found.pk
    PaperTopic.objects.all().delete()
    rescore_window.delay()
    assert PaperTopic.objects.get(topic=topic).paper_id == found.pk


# Rescoring -------------------------------------------------------------------------


@pytest.mark.usefixtures("trending")
def test_a_new_interest_topic_is_scored_against_recent_papers():
    long_ago = timezone.now() - RESCORE_WINDOW - dt.timedelta(days=1)
    old = PaperFactory(title="World Models, the early years", ingested_at=long_ago)

    topic = Topic.for_interest("world models")

    assert WORLD_MODELS in matched_titles(topic)
    assert not PaperTopic.objects.filter(paper=old).exists()
    row = PaperTopic.objects.get(topic=topic, paper__title=WORLD_MODELS)
    assert row.matched_terms == ["world models"]


@pytest.mark.usefixtures("trending")
def test_changing_a_topics_terms_drops_old_matches_and_adds_new_ones():
    topic = Topic.for_interest("world models")
    assert WORLD_MODELS in matched_titles(topic)

    topic.terms = "sequential recommendation"
    topic.save()

    assert matched_titles(topic) == {COLLABORATION_TRANSITION, RECFORMER}
    assert not PaperTopic.objects.filter(topic=topic, paper__title=WORLD_MODELS).exists()


@pytest.mark.usefixtures("trending")
def test_saving_a_topic_without_changing_its_terms_does_not_rescore():
    topic = Topic.objects.get(slug="continual-learning")
    PaperTopic.objects.filter(topic=topic, paper__title=TAME).update(score=99)

    topic.name = "Continual and lifelong learning"
    topic.description = "Learning without forgetting."
    topic.terms = topic.terms.replace("\n", "\n  ")  # same terms, other whitespace
    topic.save()
    assert PaperTopic.objects.get(topic=topic, paper__title=TAME).score == 99

    topic.terms += "\nmixture of experts"
    topic.save()
    assert PaperTopic.objects.get(topic=topic, paper__title=TAME).score < 99


@pytest.mark.usefixtures("trending")
def test_curation_survives_rescoring():
    topic = Topic.objects.get(slug="continual-learning")
    tame = Paper.objects.get(title=TAME)
    unrelated = Paper.objects.get(title=ORDER_MATTERS)
    PaperTopic.objects.filter(topic=topic, paper=tame).update(curation="excluded")
    PaperTopic.objects.create(topic=topic, paper=unrelated, score=0, curation="pinned")

    score_papers(Paper.objects.all())
    rescore_topic(topic)
    topic.terms = "mixture of experts"  # now neither paper scores
    topic.save()

    rows = {row.paper: row for row in PaperTopic.objects.filter(topic=topic)}
    assert (rows[tame].curation, rows[tame].score) == ("excluded", 0)
    assert (rows[unrelated].curation, rows[unrelated].score) == ("pinned", 0)
    assert matched_titles(topic) == {ORDER_MATTERS, META_DMOE}


@pytest.mark.usefixtures("trending")
def test_hidden_papers_never_match():
    topic = Topic.objects.get(slug="continual-learning")
    Paper.objects.filter(title=TAME).update(hidden=True)
    PaperTopic.objects.filter(topic=topic, paper__title=CL_SURVEY).update(curation="pinned")
    Paper.objects.filter(title=CL_SURVEY).update(hidden=True)

    rescore_topic(topic)

    # Still scored, so unhiding needs no rescoring; never matched while hidden.
    assert PaperTopic.objects.get(topic=topic, paper__title=TAME).score >= 1
    assert {TAME, CL_SURVEY}.isdisjoint(matched_titles(topic))
    assert LIFELONG_SURVEY in matched_titles(topic)


def atom(version: int, title: str, summary: str) -> str:
    return f"""<feed xmlns="http://www.w3.org/2005/Atom">
      <entry>
        <id>http://arxiv.org/abs/2501.00001v{version}</id>
        <title>{title}</title>
        <summary>{summary}</summary>
      </entry>
    </feed>"""


def test_a_newer_arxiv_version_is_rescored(tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(atom(1, "Replay buffers for continual learning", "We study forgetting."))
    import_source(str(feed))
    paper = Paper.objects.get(arxiv_id="2501.00001")
    assert {row.topic.slug for row in PaperTopic.objects.matching().filter(paper=paper)} == {
        "continual-learning"
    }

    feed.write_text(atom(2, "Sparse mixtures of experts at scale", "We route tokens."))
    import_source(str(feed))

    matching = PaperTopic.objects.matching().filter(paper=paper)
    assert {row.topic.slug for row in matching} == {"model-architectures"}
    assert not PaperTopic.objects.filter(paper=paper, topic__slug="continual-learning").exists()


def test_importing_the_same_source_twice_leaves_the_scores_unchanged(samples):
    def stored():
        return sorted(
            PaperTopic.objects.values_list(
                "paper_id", "topic_id", "score", "matched_terms", "scored_at"
            )
        )

    import_source(str(samples / "trending-papers-page.txt"))
    before = stored()
    import_source(str(samples / "trending-papers-page.txt"))

    assert len(before) > 72
    assert stored() == before


def test_an_import_that_fails_while_scoring_stores_nothing(samples, monkeypatch):
    def broken(papers):
        raise RuntimeError("scoring failed")

    monkeypatch.setattr("papers.importers.score_papers", broken)

    with pytest.raises(RuntimeError):
        import_source(str(samples / "trending-papers-page.txt"))
    assert not Paper.objects.exists()


@pytest.mark.usefixtures("trending")
def test_preview_gives_the_stored_numbers_and_writes_nothing():
    topic = Topic.objects.get(slug="in-context-learning")
    stored = {
        title: (score, terms)
        for title, score, terms in PaperTopic.objects.filter(topic=topic).values_list(
            "paper__title", "score", "matched_terms"
        )
    }
    rows = PaperTopic.objects.count()

    shown = preview(topic.term_list, Paper.objects.all())

    assert {paper.title: (row.score, row.terms) for paper, row in shown} == stored
    totals = [row.score for _, row in shown]
    assert totals == sorted(totals, reverse=True)
    assert PaperTopic.objects.count() == rows
    for paper_, row in shown:
        assert score(paper_, topic) == (row.score, row.terms)


def test_score_papers_writes_only_scores_above_zero_and_drops_stale_ones():
    topic = TopicFactory(terms="zebra finch")
    hit = PaperFactory(title="What zebra finches sing", abstract="")
    miss = PaperFactory(title="Nothing to see", abstract="")

    assert score_papers([hit, miss]) == 1
    assert list(PaperTopic.objects.values_list("paper", "topic")) == [(hit.pk, topic.pk)]

    hit.title = "Something else entirely"
    hit.save()
    score_papers([hit])

    assert not PaperTopic.objects.exists()
