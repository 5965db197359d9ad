"""What the sources say about a paper, in a real browser: the trending page (with the
has-code filter) and a digest's view-in-browser page show it, pass axe-core, and are
saved as full-page screenshots in var/screenshots/ to look at."""

import datetime as dt
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from digest import sending
from digest.links import view_url
from digest.models import Digest
from papers.models import Topic
from tests.support.factories import PaperFactory, SubscriberFactory, match
from tests.support.paths import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("starter_topics")]

SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture
def papers():
    """Created while Playwright is running on this thread (see tests/support/browser.py)."""
    topic = Topic.objects.get(slug="continual-learning")
    coded = PaperFactory(
        from_hugging_face=True,
        title="Sparse Replay Buffers for Continual Learning",
        abstract="We revisit replay buffers. " * 30,
        ai_summary="Sparse replay buffers keep continual learners from forgetting old tasks.",
        code_url="https://github.com/example/sparse-replay",
        code_stars=1234,
        project_url="https://sparse-replay.example.org/",
        authors=["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
        upvotes=42,
    )
    bare = PaperFactory(
        title="Replay Without Code",
        abstract="A replay buffer paper with nothing but its abstract.",
        authors=["Barbara Liskov"],
        upvotes=0,
    )
    for paper in (coded, bare):
        match(paper, topic, terms=["replay buffer"])
    return coded, bare


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def no_violations(axe, page) -> None:
    violations = axe(page)
    assert violations == [], [(v["id"], v["help"], len(v["nodes"])) for v in violations]


def test_the_trending_page_shows_the_sources_and_filters_by_code(live_server, page, axe, papers):
    coded, bare = papers

    page.goto(live_server.url + "/")

    article = page.locator("article", has_text=coded.title)
    assert article.get_by_text("AI summary:").is_visible()
    assert article.get_by_text("Sparse replay buffers keep continual learners").is_visible()
    assert article.get_by_text("Ada Lovelace, Alan Turing, Grace Hopper et al.").is_visible()
    # Each link names its paper to a screen reader, which may list every link on the page.
    pdf = article.get_by_role("link", name=f"PDF {coded.title}", exact=True)
    code = article.get_by_role("link", name=f"Code {coded.title}", exact=True)
    project = article.get_by_role("link", name=f"Project page {coded.title}", exact=True)
    assert pdf.get_attribute("href") == coded.pdf_link and pdf.is_visible()
    assert code.get_attribute("href") == coded.code_url and code.is_visible()
    assert article.get_by_text("(1,234 stars)").is_visible()
    assert project.get_attribute("href") == coded.project_url and project.is_visible()
    # The abstract is folded away under the summary, a click away.
    abstract = article.get_by_text("We revisit replay buffers.")
    assert not abstract.is_visible()
    article.locator("summary", has_text="Abstract").click()
    assert abstract.is_visible()
    bare_article = page.locator("article", has_text=bare.title)
    assert bare_article.get_by_text("A replay buffer paper with nothing but").is_visible()
    assert bare_article.locator(".upvotes").count() == 0
    no_violations(axe, page)
    screenshot(page, "trending.png")

    page.get_by_label("Topic").select_option(label="Continual learning")
    page.get_by_label("Only papers with code").check()
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("heading", name="Trending in Continual learning with code").wait_for()

    assert urlsplit(page.url).query == "topic=continual-learning&code=1"
    assert page.get_by_label("Only papers with code").is_checked()
    assert page.locator("article").count() == 1
    assert page.get_by_role("heading", name=coded.title).is_visible()
    assert page.get_by_text(bare.title).count() == 0
    no_violations(axe, page)
    screenshot(page, "trending-has-code.png")


def test_a_digests_view_in_browser_page_shows_the_sources(live_server, page, axe, papers, settings):
    settings.SITE_URL = live_server.url
    coded, bare = papers
    subscriber = SubscriberFactory(email="ada@example.org")
    subscriber.topics.add(Topic.objects.get(slug="continual-learning"))
    now = timezone.now() + dt.timedelta(minutes=1)
    digest = Digest.objects.create(subscriber=subscriber, period="today", scheduled_for=now)
    assert sending.send_batch([digest.pk], now=now).sent == [digest.pk]

    page.goto(view_url(digest))

    paper = page.locator(".paper", has_text=coded.title)
    assert paper.get_by_text(
        "AI summary: Sparse replay buffers keep continual learners from forgetting old tasks."
    ).is_visible()
    assert paper.get_by_text("Ada Lovelace, Alan Turing, Grace Hopper et al.").is_visible()
    for name, href in [
        ("Abstract", coded.url),
        ("PDF", coded.pdf_link),
        ("Code", coded.code_url),
        ("Project page", coded.project_url),
    ]:
        link = paper.get_by_role("link", name=name, exact=True)
        assert link.is_visible() and link.get_attribute("href") == href
    assert paper.get_by_text("(1,234 stars)").is_visible()
    assert paper.get_by_text("Why: Continual learning: mentions replay buffer.").is_visible()
    assert paper.get_by_text("▲ 42 upvotes").is_visible()
    plain = page.locator(".paper", has_text=bare.title)
    assert plain.get_by_text("A replay buffer paper with nothing but its abstract.").is_visible()
    assert "▲" not in plain.inner_text()
    assert plain.get_by_role("link", name="Code", exact=True).count() == 0
    assert plain.get_by_role("link", name="Abstract", exact=True).count() == 0
    no_violations(axe, page)
    screenshot(page, "digest.png")
