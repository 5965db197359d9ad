"""The suppression list: checked at send time, lifted by admins, and the sweep that
acts on stored delivery events."""

import datetime as dt

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from digest import scheduling, sending
from digest.models import Digest
from subscriptions import deliverability
from subscriptions.models import DeliveryEvent, Subscriber, Suppression
from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory, match

pytestmark = pytest.mark.django_db


def bounce(address, event_id="evt-1", event_type="bounced"):
    event = AnymailTrackingEvent(event_type=event_type, event_id=event_id, recipient=address)
    tracking.send(sender=object, event=event, esp_name="TestESP")


@pytest.fixture
def due_reader():
    now = timezone.now()
    topic = TopicFactory()
    match(PaperFactory(ingested_at=now - dt.timedelta(hours=1)), topic)
    subscriber = SubscriberFactory(email="Ada@Example.org", next_due_at=now)
    subscriber.topics.add(topic)
    return subscriber, now


def test_a_bounce_recorded_first_and_processed_after_commit(
    due_reader, django_capture_on_commit_callbacks
):
    subscriber, _ = due_reader
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        bounce("ada@example.org")

    event = DeliveryEvent.objects.get()
    assert event.processed_at is None, "the receiver only records"
    assert len(callbacks) == 1
    callbacks[0]()
    event.refresh_from_db()
    assert event.processed_at is not None
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.SUPPRESSED
    assert Suppression.objects.active().get().source_event == event


def test_a_failure_while_processing_keeps_the_event_for_the_sweep(
    due_reader, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(deliverability, "suppress", broken)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        bounce("ada@example.org")
    event = DeliveryEvent.objects.get()
    assert event.processed_at is None

    monkeypatch.undo()
    DeliveryEvent.objects.update(received_at=timezone.now() - dt.timedelta(minutes=10))
    assert deliverability.process_pending() == 1
    assert Subscriber.objects.get().status == Subscriber.Status.SUPPRESSED


def test_a_suppressed_address_gets_no_digest_even_when_its_digest_was_claimed(due_reader):
    _, now = due_reader
    claimed = scheduling.claim_due(now)
    # The suppression list alone (say, added by an admin) stops the send.
    Suppression.objects.create(email="ada@example.org", reason=Suppression.Reason.MANUAL)

    sending.send_batch(claimed, now=now)

    assert mail.outbox == []
    assert Digest.objects.get().status == Digest.Status.SUPPRESSED


def test_a_suppressed_address_gets_no_confirmation_mail(client, django_capture_on_commit_callbacks):
    from papers.models import Topic

    Suppression.objects.create(email="eve@example.org", reason=Suppression.Reason.COMPLAINED)
    data = {
        "email": "EVE@example.org",
        "topics": [Topic.objects.curated().first().pk],
        "frequency": "daily",
        "weekday": "0",
        "send_hour": "8",
        "timezone": "UTC",
        "max_papers": "10",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("subscriptions:signup"), data)

    assert response.status_code == 302
    assert mail.outbox == []


def test_admins_lift_a_suppression_with_a_reason(admin_client, due_reader):
    subscriber, _ = due_reader
    deliverability.suppress("ada@example.org", Suppression.Reason.BOUNCED)
    suppression = Suppression.objects.get()
    changelist = reverse("admin:subscriptions_suppression_changelist")
    action = {"action": "lift", "_selected_action": [suppression.pk]}

    asked = admin_client.post(changelist, action)
    assert asked.status_code == 200 and b"Reason" in asked.content
    no_reason = admin_client.post(changelist, action | {"confirmed": "yes", "reason": " "})
    assert b"Give a reason." in no_reason.content
    assert Suppression.objects.active().exists()

    done = admin_client.post(
        changelist, action | {"confirmed": "yes", "reason": "mailbox fixed, asked by phone"}
    )

    assert done.status_code == 302
    suppression.refresh_from_db()
    assert suppression.lifted_reason == "mailbox fixed, asked by phone"
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PAUSED, "they resume themselves"


def test_admins_can_suppress_an_address_by_hand(admin_client, due_reader):
    subscriber, _ = due_reader
    response = admin_client.post(
        reverse("admin:subscriptions_suppression_add"),
        {"email": "ADA@example.org", "reason": "manual", "detail": "asked us by phone"},
    )

    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.SUPPRESSED
    assert Suppression.objects.active().get().detail == "asked us by phone"


def test_admins_see_the_complaint_rate_and_a_warning_above_one_in_a_thousand(admin_client):
    url = reverse("admin:subscriptions_deliveryevent_changelist")
    for i in range(1000):
        DeliveryEvent.objects.create(esp="TestESP", event_id=f"d{i}", event_type="delivered")
    DeliveryEvent.objects.create(esp="TestESP", event_id="c0", event_type="complained")

    calm = admin_client.get(url)
    assert "complaint rate, 7 days: 0.100% (1 / 1000 delivered)" in calm.content.decode()
    assert b"above 0.1%" not in calm.content

    DeliveryEvent.objects.create(esp="TestESP", event_id="c1", event_type="complained")
    worried = admin_client.get(url)
    assert b"above 0.1%" in worried.content


def test_a_refused_recipient_is_put_on_the_suppression_list(due_reader, smtp_mailer):
    _, now = due_reader
    smtp_mailer.refuse_recipient("Ada@example.org", "550 5.1.1 No such user")

    sending.send_batch(scheduling.claim_due(now), now=now)

    suppression = Suppression.objects.active().get()
    assert (suppression.email, suppression.reason) == ("Ada@example.org", "refused")
    assert "550" in suppression.detail


def test_deferrals_count_per_message_not_per_retry(
    due_reader, settings, django_capture_on_commit_callbacks
):
    settings.PAPERBOY_SOFT_BOUNCE_LIMIT = 3

    def deferral(event_id, message_id):
        event = AnymailTrackingEvent(
            event_type="deferred",
            event_id=event_id,
            recipient="ada@example.org",
            message_id=message_id,
        )
        with django_capture_on_commit_callbacks(execute=True):
            tracking.send(sender=object, event=event, esp_name="TestESP")

    for retry in range(5):  # one greylisted message, retried five times
        deferral(f"m1-{retry}", "m1")
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE

    deferral("m2-0", "m2")
    deferral("m3-0", "m3")
    assert Subscriber.objects.get().status == Subscriber.Status.SUPPRESSED
    assert Suppression.objects.active().get().reason == "soft_bounces"


def test_a_feed_that_breaks_the_importer_is_recorded_and_the_others_still_run(
    settings, feed_server, samples, monkeypatch
):
    from papers import importers, tasks
    from papers.models import ImportRun, Paper

    folder, base = feed_server
    (folder / "daily.json").write_bytes((samples / "hf-daily-papers.json").read_bytes())
    settings.PAPERBOY_FEED_URLS = [f"{base}/boom.json", f"{base}/daily.json"]
    real = importers.import_source

    def flaky(url, *args, **kwargs):
        if url.endswith("boom.json"):
            raise RuntimeError("database is locked")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(importers, "import_source", flaky)

    results = tasks.import_feeds()

    assert results[f"{base}/boom.json"] == "failed: RuntimeError: database is locked"
    assert Paper.objects.count() == 3
    assert ImportRun.objects.filter(status="failed").get().source == f"{base}/boom.json"
