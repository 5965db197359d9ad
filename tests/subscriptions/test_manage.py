import datetime as dt
import json

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from digest.models import Digest, DigestItem, Feedback
from papers.models import Paper, Topic
from subscriptions.links import list_unsubscribe_headers
from subscriptions.models import DeliveryEvent, Subscriber
from subscriptions.tokens import Purpose, make_token
from tests.support.factories import DigestFactory, PaperFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


def url(name, subscriber, purpose=Purpose.MANAGE):
    return reverse(f"subscriptions:{name}", args=[make_token(subscriber, purpose)])


def preferences(**overrides):
    data = {
        "topics": [Topic.objects.get(slug="reinforcement-learning").pk],
        "interests": "world models",
        "frequency": "weekly",
        "weekday": "4",
        "send_hour": "18",
        "timezone": "America/New_York",
        "max_papers": "5",
    }
    data.update(overrides)
    return data


@pytest.fixture
def subscriber():
    subscriber = SubscriberFactory(email="ada@example.org", timezone="Europe/Paris")
    subscriber.topics.add(
        Topic.objects.get(slug="continual-learning"), Topic.for_interest("replay")
    )
    return subscriber


def test_the_manage_page_shows_current_preferences(client, subscriber):
    response = client.get(url("manage", subscriber))

    assert response.status_code == 200
    form = response.context["form"]
    assert [t.slug for t in form.initial["topics"]] == ["continual-learning"]
    assert form.initial["interests"] == "replay"
    assert form.initial["timezone"] == "Europe/Paris"
    assert b"ada@example.org" in response.content


@time_machine.travel(dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC), tick=False)
def test_preferences_are_changed_from_the_manage_page(client, subscriber):
    response = client.post(url("manage", subscriber), preferences())

    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert sorted(t.name for t in subscriber.topics.all()) == [
        "Reinforcement learning",
        "world models",
    ]
    assert (subscriber.frequency, subscriber.weekday, subscriber.send_hour) == ("weekly", 4, 18)
    assert (subscriber.timezone, subscriber.max_papers) == ("America/New_York", 5)
    # Friday 4 December, 18:00 in New York (UTC-5) is 23:00 UTC.
    assert subscriber.next_due_at == dt.datetime(2026, 12, 4, 23, tzinfo=dt.UTC)
    assert b"Your preferences are saved." in client.get(response["Location"]).content


def test_invalid_preferences_change_nothing(client, subscriber):
    response = client.post(
        url("manage", subscriber), preferences(topics=[], interests="", max_papers="99")
    )

    assert response.status_code == 400
    assert b"Pick at least one topic" in response.content
    subscriber.refresh_from_db()
    assert subscriber.max_papers == 10
    assert subscriber.topics.count() == 2


def test_pause_and_resume(client, subscriber):
    client.post(url("pause", subscriber))
    subscriber.refresh_from_db()
    assert (subscriber.status, subscriber.next_due_at) == (Subscriber.Status.PAUSED, None)

    client.post(url("resume", subscriber))
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.next_due_at is not None


def test_pausing_needs_a_post(client, subscriber):
    assert client.get(url("pause", subscriber)).status_code == 405
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def _delivery_event(recipient="", message_id="", event_id=None, event_type="delivered"):
    return DeliveryEvent.objects.create(
        esp="postmark",
        event_id=event_id or f"e{DeliveryEvent.objects.count()}",
        event_type=event_type,
        recipient=recipient,
        message_id=message_id,
    )


def test_the_data_export_holds_everything_about_the_subscriber(client, subscriber):
    digest = DigestFactory(
        subscriber=subscriber, period="2026-11-27", status=Digest.Status.SENT, message_id="<d1@x>"
    )
    DigestItem.objects.create(
        digest=digest, paper=PaperFactory(title="Sent paper"), position=1, reason="replay"
    )
    Feedback.objects.create(subscriber=subscriber, paper=digest.items.get().paper, vote=1)
    _delivery_event(recipient="ADA@example.org", event_type="opened")
    _delivery_event(message_id="<d1@x>", event_type="delivered")
    _delivery_event(recipient="someone-else@example.org", event_type="bounced")

    response = client.get(url("export", subscriber))

    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["email"] == "ada@example.org"
    assert data["preferences"]["topics"] == ["Continual learning"]
    assert data["preferences"]["interests"] == ["replay"]
    assert data["digests"][0]["papers"] == [
        {"title": "Sent paper", "arxiv_id": digest.items.get().paper.arxiv_id, "why": "replay"}
    ]
    assert [(v["paper"], v["vote"]) for v in data["feedback"]] == [("Sent paper", "up")]
    assert sorted(e["type"] for e in data["delivery_events"]) == ["delivered", "opened"]


def test_deleting_removes_the_subscriber_their_digests_and_ledger(client, subscriber):
    digest = DigestFactory(subscriber=subscriber, message_id="<mine@x>")
    DigestItem.objects.create(digest=digest, paper=PaperFactory(), position=1)
    _delivery_event(recipient="Ada@Example.org", event_type="opened")
    _delivery_event(message_id="<mine@x>", event_type="delivered")
    _delivery_event(recipient="someone-else@example.org", event_id="theirs")
    other = DigestFactory()
    DigestItem.objects.create(digest=other, paper=PaperFactory(), position=1)

    assert client.get(url("delete", subscriber)).status_code == 200
    assert Subscriber.objects.filter(pk=subscriber.pk).exists(), "a GET deletes nothing"
    response = client.post(url("delete", subscriber))

    assert response.status_code == 200
    assert not Subscriber.objects.filter(pk=subscriber.pk).exists()
    assert list(Digest.objects.all()) == [other]
    assert DigestItem.objects.count() == 1
    assert Paper.objects.count() == 2
    assert list(DeliveryEvent.objects.values_list("event_id", flat=True)) == ["theirs"]
    assert client.get(url("manage", subscriber)).status_code == 404


def test_get_never_unsubscribes(client, subscriber):
    response = client.get(url("unsubscribe", subscriber, Purpose.UNSUBSCRIBE))

    assert response.status_code == 200
    assert b"Unsubscribe?" in response.content
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_post_unsubscribes_at_once(client, subscriber):
    response = client.post(url("unsubscribe", subscriber, Purpose.UNSUBSCRIBE))

    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert (subscriber.status, subscriber.next_due_at) == (Subscriber.Status.UNSUBSCRIBED, None)


def test_one_click_unsubscribe_needs_no_cookie_or_csrf_token_and_is_idempotent(subscriber):
    # What a mail provider sends for RFC 8058: a bare POST, no cookies, no CSRF token.
    provider = Client(enforce_csrf_checks=True)
    target = url("unsubscribe", subscriber, Purpose.UNSUBSCRIBE)

    responses = [
        provider.post(
            target, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )
        for _ in range(2)
    ]

    assert [r.status_code for r in responses] == [200, 200]
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_an_unsubscribed_address_can_subscribe_again_with_double_opt_in(
    client, subscriber, django_capture_on_commit_callbacks
):
    client.post(url("unsubscribe", subscriber, Purpose.UNSUBSCRIBE))
    data = preferences(email="ada@example.org", website="")

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("subscriptions:signup"), data)

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING
    assert [m.subject for m in mail.outbox] == ["Confirm your Paperboy subscription"]


def test_unsubscribing_never_lifts_a_suppression(client):
    suppressed = SubscriberFactory(status=Subscriber.Status.SUPPRESSED)
    client.post(url("unsubscribe", suppressed, Purpose.UNSUBSCRIBE))
    suppressed.refresh_from_db()
    assert suppressed.status == Subscriber.Status.SUPPRESSED


@pytest.mark.parametrize("name", ["manage", "export", "delete"])
def test_tampered_tokens_get_a_clear_404(client, subscriber, name):
    token = make_token(subscriber, Purpose.MANAGE)
    eve = Subscriber.objects.create(email="eve@example.org")
    forged = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character changed
        token[: len(token) // 2],  # truncated
        f"{eve.key.hex}{token[32:]}",  # another subscriber's key with this signature
        "not-a-token",
    ]
    for bad in forged:
        response = client.get(reverse(f"subscriptions:{name}", args=[bad]))
        assert response.status_code == 404, bad
        assert b"This link is not valid" in response.content


def test_a_token_for_one_purpose_does_not_work_for_another(client, subscriber):
    confirm_token = make_token(subscriber, Purpose.CONFIRM)
    unsubscribe_token = make_token(subscriber, Purpose.UNSUBSCRIBE)

    assert client.get(reverse("subscriptions:manage", args=[confirm_token])).status_code == 404
    assert client.get(reverse("subscriptions:manage", args=[unsubscribe_token])).status_code == 404
    assert (
        client.post(
            reverse("subscriptions:unsubscribe", args=[make_token(subscriber, Purpose.MANAGE)])
        ).status_code
        == 404
    )
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_tokens_are_opaque_and_differ_between_subscribers(subscriber):
    other = SubscriberFactory()
    mine, theirs = make_token(subscriber, Purpose.MANAGE), make_token(other, Purpose.MANAGE)

    # What a token carries is the subscriber's random key: not their id, not their address.
    assert mine.split(":")[0] == subscriber.key.hex
    # Not the address, nor any part of it: "@" is no character of a key or a signature
    # (the local part alone, "ada", is three hex digits that a random key holds now and then).
    assert "@" not in mine and subscriber.email not in mine
    assert mine.split(":")[0] != theirs.split(":")[0]


def test_manage_and_unsubscribe_links_keep_working_for_years(client, subscriber):
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False):
        manage_url = url("manage", subscriber)
        unsubscribe_url = url("unsubscribe", subscriber, Purpose.UNSUBSCRIBE)
    with time_machine.travel(dt.datetime(2029, 1, 1, tzinfo=dt.UTC), tick=False):
        assert client.get(manage_url).status_code == 200
        assert client.get(unsubscribe_url).status_code == 200


def test_links_signed_before_a_key_rotation_keep_working_with_the_old_key_as_fallback(
    client, subscriber, settings
):
    settings.SECRET_KEY = "the-key-links-in-inboxes-were-signed-with"
    manage_url = url("manage", subscriber)
    https = list_unsubscribe_headers(subscriber)["List-Unsubscribe"].split(",")[0].strip("<>")
    one_click = https.removeprefix(settings.SITE_URL)

    settings.SECRET_KEY = "the-new-key"
    assert client.get(manage_url).status_code == 404  # without the old key: refused
    settings.SECRET_KEY_FALLBACKS = ["the-key-links-in-inboxes-were-signed-with"]

    assert client.get(manage_url).status_code == 200
    response = Client(enforce_csrf_checks=True).post(
        one_click, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_list_unsubscribe_headers_offer_https_mailto_and_one_click(subscriber, settings):
    settings.SITE_URL = "https://papers.example"
    settings.PAPERBOY_UNSUBSCRIBE_MAILTO = "unsubscribe@papers.example"

    headers = list_unsubscribe_headers(subscriber)

    https, mailto = [part.strip().strip("<>") for part in headers["List-Unsubscribe"].split(",")]
    token = make_token(subscriber, Purpose.UNSUBSCRIBE)
    assert https == f"https://papers.example/unsubscribe/{token}/"
    assert (
        mailto
        == f"mailto:unsubscribe@papers.example?subject=unsubscribe%20{token.replace(':', '%3A')}"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
