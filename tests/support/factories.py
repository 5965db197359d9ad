import datetime as dt

import factory
from django.utils import timezone

from digest.models import Digest
from papers.models import Paper, Topic
from subscriptions.models import Subscriber


class PaperFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Paper

    title = factory.Sequence(lambda n: f"A study of sparse things, part {n}")
    abstract = "We study sparse things and find them sparse."
    arxiv_id = factory.Sequence(lambda n: f"2411.{n:05d}")
    arxiv_version = 1
    source = Paper.Source.MANUAL

    class Params:
        # What Hugging Face's daily papers say about a paper, besides its title:
        # ``PaperFactory(from_hugging_face=True)``.
        from_hugging_face = factory.Trait(
            source=Paper.Source.HF_JSON,
            authors=["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
            upvotes=42,
            ai_summary="Sparse things stay sparse when trained with a sparse replay buffer.",
            ai_keywords=["sparse things", "replay buffer"],
            hf_url=factory.LazyAttribute(lambda p: f"https://huggingface.co/papers/{p.arxiv_id}"),
            code_url="https://github.com/example/sparse-things",
            code_stars=1234,
            project_url="https://sparse-things.example.org/",
            comments=3,
        )


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic

    name = factory.Sequence(lambda n: f"Topic {n}")
    slug = factory.Sequence(lambda n: f"topic-{n}")
    terms = "sparse things"


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"reader{n}@example.org")
    status = Subscriber.Status.ACTIVE
    confirmed_at = factory.LazyFunction(timezone.now)
    consent_at = factory.SelfAttribute("confirmed_at")


class DigestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Digest

    subscriber = factory.SubFactory(SubscriberFactory)
    period = "2026-11-28"
    scheduled_for = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(hours=1))


def match(paper, topic, score=2.0, terms=("sparse things",), **fields):
    """A stored score that puts ``paper`` in ``topic``."""
    from papers.models import PaperTopic

    row, _ = PaperTopic.objects.update_or_create(
        paper=paper, topic=topic, defaults={"score": score, "matched_terms": list(terms), **fields}
    )
    return row
