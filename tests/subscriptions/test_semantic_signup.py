"""A reader who words an interest unlike any paper gets the paper they mean: through
the sign-up form, the confirmation link, the real embedding model and a real SMTP
server, reading the raw messages as a mail client does."""

import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from papers import importers
from subscriptions.models import Subscriber

pytestmark = [pytest.mark.django_db, pytest.mark.semantic]

SIGNUP = reverse("subscriptions:signup")


@pytest.fixture
def sample_page(samples, django_capture_on_commit_callbacks):
    importers.import_source(str(samples / "trending-papers-page.txt"))


def sign_up_and_confirm(client, address: str, interests: str, capture) -> Subscriber:
    data = {
        "email": address,
        "interests": interests,
        "frequency": "daily",
        "weekday": "0",
        "send_hour": "8",
        "timezone": "UTC",
        "max_papers": "10",
        "website": "",
    }
    with capture(execute=True):
        response = client.post(SIGNUP, data, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 302, response.content.decode()[:2000]
    subscriber = Subscriber.objects.get(email=address)
    from subscriptions.links import confirm_url

    path = re.sub(r"^https?://[^/]+", "", confirm_url(subscriber))
    # The confirmation makes the interests topics and queues their scoring (run here
    # when its transaction commits); the reader's browser follows the redirect after.
    with capture(execute=True):
        response = client.post(path, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 302
    response = client.get(response["Location"])
    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    return subscriber, response.content.decode()


def received(smtp_server, address: str):
    return [message.parsed for message in smtp_server.messages if address in message.rcpt_tos]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_an_interest_worded_differently_receives_the_paper_it_means(
    client, smtp_mailer, sample_page, django_capture_on_commit_callbacks
):
    address = "robots@example.org"
    _, page = sign_up_and_confirm(
        client, address, "robots learning from demonstrations", django_capture_on_commit_callbacks
    )
    # The confirmation page already says what the interest matches today.
    assert "Data Quality in Imitation Learning" in page

    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_digests", "--now", "--email", address)

    messages = received(smtp_mailer, address)
    subjects = [message["Subject"] for message in messages]
    assert "Welcome to Paperboy" in subjects
    digest = next(m for m in messages if m["Subject"] != "Welcome to Paperboy" and "List-Id" in m)
    text = text_of(digest)
    html = digest.get_body(preferencelist=("html",)).get_content()
    # Neither paper names "robots" or "demonstrations" as the reader wrote them.
    assert "Data Quality in Imitation Learning" in text
    assert "Inverse Dynamics Pretraining Learns Good Representations" in text
    assert "Why: Close in meaning to 'robots learning from demonstrations'." in text
    assert "Why: Close in meaning to &#x27;robots learning from demonstrations&#x27;." in html
    # The reader's interest is not a word-for-word match anywhere: nothing claims one.
    assert "mentions robots learning from demonstrations" not in text.lower()


def test_a_reader_whose_interests_match_nothing_is_told_so_with_suggestions(
    client, smtp_mailer, sample_page, django_capture_on_commit_callbacks
):
    address = "quantum@example.org"
    _, page = sign_up_and_confirm(
        client, address, "superconducting qubit fabrication", django_capture_on_commit_callbacks
    )
    assert "matches your topics yet" in page
    assert "Close to it:" in page

    welcome = next(
        m for m in received(smtp_mailer, address) if m["Subject"] == "Welcome to Paperboy"
    )
    text = text_of(welcome)
    assert "Nothing from the last 30 days matches your topics yet" in text
    suggestions = re.search(r"Close to it: (.+)\.", text).group(1).split(", ")
    from papers.models import Topic

    curated = set(Topic.objects.curated().values_list("name", flat=True))
    assert suggestions and set(suggestions) <= curated


def test_the_manage_page_previews_what_each_interest_matches(
    client, smtp_mailer, sample_page, django_capture_on_commit_callbacks
):
    from subscriptions.links import manage_url

    subscriber, _ = sign_up_and_confirm(
        client, "kd@example.org", "knowledge distillation", django_capture_on_commit_callbacks
    )
    page = client.get(re.sub(r"^https?://[^/]+", "", manage_url(subscriber))).content.decode()
    assert "What your topics match today" in page
    assert "Knowledge Distillation via Token-level Relationship Graph" in page
