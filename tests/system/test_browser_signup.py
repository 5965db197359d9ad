"""A new reader goes from the trending page to a confirmed subscription to an
unsubscribe, using only a real browser and the mail that arrives over SMTP."""

import re

import pytest

from papers.models import Topic
from subscriptions.models import Subscriber
from tests.support.factories import PaperFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("starter_topics")]


@pytest.fixture
def site(live_server, settings, smtp_mailer):
    settings.SITE_URL = live_server.url
    PaperFactory(title="Offline Experience Replay for Continual Offline Reinforcement Learning")
    return live_server.url


def link(message, path: str) -> str:
    text = message.parsed.get_body(("plain",)).get_content()
    return re.search(rf"(http\S+{path}\S+)", text).group(1)


def test_a_reader_subscribes_confirms_changes_topics_and_unsubscribes(
    site, browser, smtp_mailer, axe
):
    context = browser.new_context(timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.goto(site + "/")
    assert axe(page) == []

    page.get_by_label("Email address").fill("ada@example.org")
    page.get_by_label("Continual learning").check()
    page.get_by_label("Your own interests").fill("world models, <b>bold</b> ideas")
    page.get_by_label("Weekly", exact=True).check()
    page.get_by_label("Day (weekly digests)").select_option(label="Friday")
    page.get_by_label("Send at (your time)").select_option("7")
    # Pre-filled from the browser, because JavaScript is on.
    assert page.get_by_label("Time zone").input_value() == "Asia/Tokyo"
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()

    [confirmation] = smtp_mailer.wait_for(1)
    assert confirmation.rcpt_tos == ("ada@example.org",)
    assert confirmation.parsed["Subject"] == "Confirm your Paperboy subscription"
    subscriber = Subscriber.objects.get()
    assert (subscriber.status, subscriber.timezone, subscriber.frequency, subscriber.weekday) == (
        "pending",
        "Asia/Tokyo",
        "weekly",
        4,
    )

    page.goto(link(confirmation, "/confirm/"))
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_role("heading", name="You're subscribed").wait_for()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.consent_user_agent.startswith("Mozilla/")

    page.get_by_role("link", name="Manage your subscription").click()
    page.get_by_role("heading", name="Your subscription", exact=True).first.wait_for()
    assert axe(page) == []
    assert (
        page.get_by_label("Your own interests").input_value() == "<b>bold</b> ideas, world models"
    )
    page.get_by_label("Continual learning").uncheck()
    page.get_by_label("Reinforcement learning").check()
    page.get_by_role("button", name="Save preferences").click()
    page.get_by_text("Your preferences are saved.").wait_for()
    assert sorted(t.name for t in subscriber.topics.all()) == [
        "<b>bold</b> ideas",
        "Reinforcement learning",
        "world models",
    ]

    page.get_by_role("link", name="Unsubscribe").click()
    page.get_by_role("heading", name="Unsubscribe?").wait_for()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE, "showing the page changes nothing"
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You're unsubscribed").wait_for()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    # The confirmation, then the welcome that confirming sent; nothing else.
    subjects = [message.parsed["Subject"] for message in smtp_mailer.messages]
    assert len(subjects) == 2
    assert subjects[1] == "Welcome to Paperboy"
    context.close()


def test_the_signup_works_without_javascript(site, browser, smtp_mailer):
    context = browser.new_context(java_script_enabled=False, timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.goto(site + "/subscribe/")
    assert page.get_by_label("Time zone").input_value() == "UTC"

    page.get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_text("Enter a valid email address.").wait_for()
    page.get_by_text("Pick at least one topic or type an interest.").wait_for()
    assert page.get_by_label("Email address").get_attribute("aria-invalid") == "true"
    assert Subscriber.objects.count() == 0

    page.get_by_label("Email address").fill("grace@example.org")
    page.get_by_label("In-context learning").check()
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    smtp_mailer.wait_for(1)
    assert Subscriber.objects.get().topics.get() == Topic.objects.get(slug="in-context-learning")
    context.close()


def test_the_signup_page_and_its_errors_pass_axe(site, page, axe):
    page.goto(site + "/subscribe/")
    assert axe(page) == []

    page.get_by_label("Email address").fill("ada@example.org\nBcc: eve@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_text("Pick at least one topic or type an interest.").wait_for()

    assert axe(page) == []
