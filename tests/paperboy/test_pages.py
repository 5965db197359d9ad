import re
from html import unescape
from urllib.parse import parse_qsl

import pytest
from django.urls import reverse

from paperboy.views import PAPERS_PER_PAGE
from papers.importers import import_source
from papers.models import Topic
from tests.support.factories import PaperFactory, match

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


def papers_on(response) -> list[str]:
    return [paper.title for paper in response.context["page"]]


def link(html: str, href: str, text: str, after: str = "") -> bool:
    """Whether the page has a link to ``href`` that reads ``text``, followed by ``after``."""
    pattern = f'<a [^>]*href="{re.escape(href)}"[^>]*>{re.escape(text)}</a>{re.escape(after)}'
    return re.search(pattern, html) is not None


def test_the_trending_page_shows_what_the_sources_say(client):
    PaperFactory(
        from_hugging_face=True,
        title="Sparse replay",
        arxiv_id="2411.01234",
        abstract="The full abstract, in a details element.",
        code_stars=1234,
    )
    PaperFactory(title="Nothing but a title", arxiv_id=None, abstract="", upvotes=0)

    response = client.get(reverse("trending"))

    html = response.content.decode()
    assert "<strong>AI summary:</strong> Sparse things stay sparse" in html
    assert (
        "<summary>Abstract<" in html and "<p>The full abstract, in a details element.</p>" in html
    )
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in html
    assert "Edsger Dijkstra" not in html
    assert link(html, "https://arxiv.org/pdf/2411.01234", "PDF")
    assert link(html, "https://github.com/example/sparse-things", "Code", after=" (1,234 stars)")
    assert link(html, "https://sparse-things.example.org/", "Project page")
    assert html.count('class="upvotes"') == 1, "no ▲ 0 for the paper without upvotes"
    assert "> 42<" in html
    # Without an arXiv id, a PDF, code or a project page, there is nothing to link.
    bare = html.split("Nothing but a title")[1].split("</article>")[0]
    assert "PDF" not in bare and "Code" not in bare and 'class="meta"' not in bare


def test_the_has_code_filter_keeps_papers_with_code(client):
    topic = Topic.objects.get(slug="continual-learning")
    with_code = PaperFactory(title="With code", code_url="https://github.com/a/b")
    match(with_code, topic)
    without = PaperFactory(title="Without code")
    match(without, topic)
    elsewhere = PaperFactory(title="With code, another topic", code_url="https://github.com/c/d")

    everything = client.get(reverse("trending"))
    code = client.get(reverse("trending"), {"code": "1"})
    both = client.get(reverse("trending"), {"code": "1", "topic": "continual-learning"})

    assert papers_on(everything) == [elsewhere.title, without.title, with_code.title]
    assert papers_on(code) == [elsewhere.title, with_code.title]
    assert papers_on(both) == [with_code.title]
    assert b"Trending in Continual learning with code" in both.content
    assert b'name="code" value="1" checked' in both.content
    assert b'name="code" value="1" checked' not in everything.content


@pytest.mark.parametrize(
    "query",
    [
        {"code": "yes"},
        {"code": ""},
        {"code": "1\x00"},
        {"code": ["1", "2"]},
        {"topic": "no-such-topic"},
        {"topic": "\x00'\"<"},
        {"page": "-1"},
        {"page": "9" * 40},
        {"code": "0", "topic": "", "page": "junk"},
    ],
)
def test_bad_filter_values_show_every_paper_and_never_fail(client, query):
    PaperFactory(title="With code", code_url="https://github.com/a/b")
    PaperFactory(title="Without code")

    response = client.get(reverse("trending"), query)

    assert response.status_code == 200
    assert sorted(papers_on(response)) == ["With code", "Without code"]
    assert response.context["filters"] == ""


def test_pagination_keeps_the_topic_and_the_code_filter(client):
    topic = Topic.objects.get(slug="continual-learning")
    for n in range(PAPERS_PER_PAGE + 3):
        match(PaperFactory(title=f"Coded {n}", code_url=f"https://github.com/a/{n}"), topic)
        match(PaperFactory(title=f"Uncoded {n}"), topic)

    first = client.get(reverse("trending"), {"topic": "continual-learning", "code": "1"})
    next_link = re.search(rb'href="\?([^"]+)" rel="next"', first.content).group(1)
    query = dict(parse_qsl(unescape(next_link.decode())))
    second = client.get(reverse("trending"), query)
    previous_link = re.search(rb'href="\?([^"]+)" rel="prev"', second.content).group(1)

    assert query == {"topic": "continual-learning", "code": "1", "page": "2"}
    assert len(papers_on(first)) == PAPERS_PER_PAGE
    assert len(papers_on(second)) == 3
    assert all(title.startswith("Coded ") for title in papers_on(first) + papers_on(second))
    assert dict(parse_qsl(unescape(previous_link.decode()))) == {
        "topic": "continual-learning",
        "code": "1",
        "page": "1",
    }


def test_pagination_without_filters_carries_none(client):
    for n in range(PAPERS_PER_PAGE + 1):
        PaperFactory(title=f"Paper {n}")

    first = client.get(reverse("trending"), {"code": "junk"})

    assert b'href="?page=2" rel="next"' in first.content
