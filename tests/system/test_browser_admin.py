"""A curator in a real browser: logs in, features a paper, previews a subscriber's digest."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory, match

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def curator(django_user_model):
    django_user_model.objects.create_superuser("curator", "curator@example.org", "s3cret-pass-1")
    return "curator", "s3cret-pass-1"


def log_in(page, url, curator):
    page.goto(url + "/admin/")
    page.get_by_label("Username").fill(curator[0])
    page.get_by_label("Password").fill(curator[1])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def test_a_curator_features_a_paper_and_sees_it_in_a_subscribers_preview(
    live_server, page, curator, axe
):
    topic = TopicFactory(name="Replay methods", terms="replay buffer")
    reader = SubscriberFactory(email="ada@example.org", max_papers=1)
    reader.topics.add(topic)
    recent = timezone.now() - dt.timedelta(hours=2)
    leading = PaperFactory(title="The paper that leads on relevance", ingested_at=recent)
    quiet = PaperFactory(title="A quieter paper worth featuring", ingested_at=recent)
    match(leading, topic, score=2.5)
    match(quiet, topic, score=1.2)

    log_in(page, live_server.url, curator)
    assert axe(page) == []

    # The papers list: tick the quieter paper, run "feature", confirm.
    page.get_by_role("link", name="Papers", exact=True).click()
    page.get_by_role("row").filter(has_text=quiet.title).get_by_role("checkbox").check()
    page.get_by_label("Action:").select_option(label="Feature the selected papers…")
    page.get_by_role("button", name="Run").click()
    page.get_by_role("heading", name="Feature these papers?").wait_for()
    page.get_by_role("button", name="Yes, go ahead").click()
    page.get_by_text("Featured 1 paper").wait_for()
    quiet.refresh_from_db()
    assert quiet.featured

    # The subscriber's page: "Preview the next digest" opens the email in a new tab.
    page.goto(f"{live_server.url}/admin/subscriptions/subscriber/{reader.pk}/change/")
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Preview the next digest").click()
    preview = opened.value
    preview.wait_for_load_state()

    assert preview.get_by_role("link", name=quiet.title).is_visible()
    assert preview.get_by_text(leading.title).count() == 0  # one paper, and featuring won
