import pytest
from django.urls import reverse

from papers.importers import import_source
from tests.support.factories import PaperFactory

pytestmark = pytest.mark.django_db


def test_the_trending_page_lists_visible_papers_newest_first(client):
    older = PaperFactory(title="An older paper")
    newer = PaperFactory(title="A newer paper", authors=["Ada Lovelace"])
    PaperFactory(title="A hidden paper", hidden=True)

    response = client.get(reverse("trending"))

    assert response.status_code == 200
    assert list(response.context["page"]) == [newer, older]
    assert b"A hidden paper" not in response.content
    assert b'href="https://arxiv.org/abs/' in response.content


def test_the_trending_page_is_paginated(client, samples):
    import_source(str(samples / "trending-papers-page.txt"))

    first = client.get(reverse("trending"))
    last = client.get(reverse("trending"), {"page": "3"})
    beyond = client.get(reverse("trending"), {"page": "junk"})

    assert len(first.context["page"]) == 25
    assert len(last.context["page"]) == 72 - 50
    assert beyond.status_code == 200


def test_a_paper_without_an_arxiv_id_links_to_an_arxiv_title_search(client):
    PaperFactory(title="Mixtral of Experts", arxiv_id=None)

    response = client.get(reverse("trending"))

    assert b'href="https://arxiv.org/search/?query=Mixtral+of+Experts&amp;searchtype=title"' in (
        response.content
    )


def test_titles_from_imports_are_escaped(client):
    PaperFactory(title="<script>alert(1)</script> attention")

    response = client.get(reverse("trending"))

    assert b"<script>alert(1)</script>" not in response.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt; attention" in response.content


def test_healthz_answers_when_the_database_does(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_topic_filter_shows_the_stored_matches(client):
    from papers.models import Topic
    from tests.support.factories import match

    topic = Topic.objects.get(slug="continual-learning")
    matched = PaperFactory(title="Matched paper")
    match(matched, topic)
    excluded = PaperFactory(title="Excluded by a curator, continual learning in its title")
    match(excluded, topic, curation="excluded")
    PaperFactory(title="Unrelated paper")

    response = client.get(reverse("trending"), {"topic": "continual-learning"})

    assert list(response.context["page"]) == [matched]
    assert b"Trending in Continual learning" in response.content
