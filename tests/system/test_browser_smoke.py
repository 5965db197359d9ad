"""The trending page in a real browser: it renders and axe-core finds no violations."""

import pytest

from tests.support.factories import PaperFactory


@pytest.mark.django_db(transaction=True)
def test_the_trending_page_renders_and_passes_axe(live_server, page, axe):
    # Created while Playwright is running on this thread (see tests/support/browser.py).
    PaperFactory(title="Sparse attention, revisited", authors=["Ada Lovelace"])

    page.goto(live_server.url + "/")

    assert "Paperboy" in page.title()
    assert page.get_by_text("Sparse attention, revisited").is_visible()
    violations = axe(page)
    assert violations == [], [(v["id"], v["help"], len(v["nodes"])) for v in violations]
