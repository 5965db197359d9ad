"""The admin's front page: subscribers, today's digests, complaints, imports, the pass, charts."""

import datetime as dt
import re

import pytest
import time_machine
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from digest.models import SchedulingPass
from papers.models import ImportRun
from subscriptions.models import DeliveryEvent, Subscriber, Suppression
from tests.support.factories import DigestFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 28, 15, tzinfo=dt.UTC)
INDEX = "/admin/"


def subscriber(status, **fields):
    confirmed = {} if status == Subscriber.Status.PENDING else {"confirmed_at": NOW}
    return SubscriberFactory(status=status, **({"confirmed_at": None} | confirmed | fields))


def dashboard(client):
    with time_machine.travel(NOW, tick=False):
        response = client.get(INDEX)
    assert response.status_code == 200
    return response, response.context["dashboard"]


def test_it_counts_subscribers_by_status(admin_client):
    for status, count in [("active", 3), ("pending", 2), ("paused", 1), ("suppressed", 1)]:
        for _ in range(count):
            subscriber(status)
    Suppression.objects.create(email="gone@example.org", reason="bounced")
    Suppression.objects.create(email="back@example.org", reason="bounced", lifted_at=NOW)

    _, figures = dashboard(admin_client)

    assert figures["subscribers"] == {
        "active": 3,
        "pending": 2,
        "paused": 1,
        "suppressed": 1,
        "unsubscribed": 0,
    }
    assert figures["suppressed_addresses"] == 1


def test_it_counts_todays_digests_by_outcome(admin_client):
    today = NOW.replace(hour=6)
    outcomes = [("sent", 4), ("unknown", 1), ("skipped", 2), ("failed", 1), ("claimed", 1)]
    for status, count in outcomes:
        for _ in range(count):
            DigestFactory(status=status, scheduled_for=today)
    DigestFactory(status="failed", scheduled_for=NOW - dt.timedelta(days=1))
    DigestFactory(status="sent", scheduled_for=NOW + dt.timedelta(hours=1))  # not yet due

    response, figures = dashboard(admin_client)

    assert figures["digests_today"] == {
        "sent": 4,
        "unknown": 1,
        "skipped": 2,
        "failed": 1,
        "suppressed": 0,
    }
    assert figures["digests_in_flight"] == 1
    # Each figure links to the log, filtered to that outcome and today.
    assert (
        "/admin/digest/digest/?status__exact=failed&amp;scheduled_for__year=2026"
        "&amp;scheduled_for__month=11&amp;scheduled_for__day=28" in response.content.decode()
    )


def test_a_complaint_rate_over_the_warning_stands_out(admin_client, settings):
    settings.PAPERBOY_COMPLAINT_RATE_WARNING = 0.001
    for n in range(400):
        DeliveryEvent.objects.create(esp="x", event_id=f"d{n}", event_type="delivered")
    DeliveryEvent.objects.create(esp="x", event_id="c1", event_type="complained")

    response, figures = dashboard(admin_client)

    assert figures["complaint_rate"] == pytest.approx(1 / 400)
    assert figures["complaint_rate_high"] is True
    html = response.content.decode()
    assert "0.250 %" in html
    assert "paperboy-alert" in html
    assert "Above 0.1 %" in html


def test_a_low_complaint_rate_does_not(admin_client):
    for n in range(2000):
        DeliveryEvent.objects.create(esp="x", event_id=f"d{n}", event_type="delivered")
    DeliveryEvent.objects.create(esp="x", event_id="c1", event_type="complained")

    response, figures = dashboard(admin_client)

    assert figures["complaint_rate_high"] is False
    assert "paperboy-alert" not in response.content.decode()


def test_it_shows_the_last_imports_and_the_last_scheduling_pass(admin_client):
    ImportRun.objects.create(
        source="https://feeds.example/old",
        format="hf-json",
        status="succeeded",
        created=1,
        started_at=NOW,
    )
    ImportRun.objects.create(
        source="https://feeds.example/daily.json",
        format="hf-json",
        status="succeeded",
        created=12,
        updated=3,
        unchanged=40,
        started_at=NOW,
    )
    ImportRun.objects.create(
        source="https://feeds.example/broken.xml",
        format="auto",
        status="failed",
        error="invalid XML at line 3, column 1",
        started_at=NOW,
    )
    SchedulingPass.objects.create(started_at=NOW - dt.timedelta(hours=1), claimed=1)
    SchedulingPass.objects.create(
        started_at=NOW - dt.timedelta(minutes=4), finished_at=NOW, claimed=250, requeued=2
    )

    response, figures = dashboard(admin_client)

    html = response.content.decode()
    assert "12 new, 3 updated, 40 unchanged" in html
    assert "invalid XML at line 3" in html
    assert "250 claimed, 2 queued again" in html
    assert figures["last_pass"].claimed == 250


def test_without_any_pass_it_asks_whether_beat_runs(admin_client):
    response, _ = dashboard(admin_client)

    assert "is Celery beat running?" in response.content.decode()


def test_the_charts_count_signups_and_digests_sent_per_day_for_30_days(admin_client):
    for days_ago, signups in [(0, 2), (3, 5), (29, 1), (30, 7)]:
        with time_machine.travel(NOW - dt.timedelta(days=days_ago), tick=False):
            for _ in range(signups):
                subscriber("pending")
    with time_machine.travel(NOW - dt.timedelta(days=90), tick=False):
        reader = subscriber("active")
    for days_ago, sent in [(0, 3), (1, 6)]:
        for n in range(sent):
            moment = NOW - dt.timedelta(days=days_ago)
            DigestFactory(
                subscriber=reader, period=f"{days_ago}-{n}", status="sent", sent_at=moment
            )
    DigestFactory(subscriber=reader, status="failed")  # never sent: not counted

    response, figures = dashboard(admin_client)

    signups, digests = figures["charts"]
    assert len(signups.bars) == len(digests.bars) == 30
    assert signups.bars[-1].day == NOW.date()
    assert [bar.value for bar in signups.bars if bar.value] == [1, 5, 2]  # day 30 is out
    assert signups.total == 8 and signups.peak == 5
    assert [bar.value for bar in digests.bars][-2:] == [6, 3]
    # The tallest bar fills the chart; the others are in proportion.
    tallest = max(digests.bars, key=lambda bar: bar.value)
    assert tallest.height == digests.height and tallest.y == 0
    assert digests.bars[-1].height == pytest.approx(digests.height / 2)

    svgs = re.findall(r"<svg viewBox=.*?</svg>", response.content.decode(), re.S)
    assert len(svgs) == 2
    assert all(svg.count("<rect ") == 30 for svg in svgs)
    assert "<title>Sat 28 Nov: 3</title>" in svgs[1]


def test_the_page_loads_nothing_from_elsewhere(admin_client):
    response, _ = dashboard(admin_client)

    html = response.content.decode()
    sources = re.findall(r'<(?:script|link|img)\b[^>]*?(?:src|href)="([^"]+)"', html)
    assert sources
    assert all(source.startswith("/static/") for source in sources), sources


def test_the_dashboard_costs_the_same_queries_with_more_rows(admin_client):
    from django.db import connection

    def count():
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
            assert admin_client.get(INDEX).status_code == 200
        return len(queries)

    def add(n):
        for _ in range(n):
            subscriber("active")
            DigestFactory(status="sent", sent_at=NOW, scheduled_for=NOW)
            ImportRun.objects.create(source="x", format="auto", status="succeeded", started_at=NOW)
            SchedulingPass.objects.create(started_at=NOW)

    add(10)
    few = count()
    add(190)

    assert count() == few


def test_only_staff_see_the_dashboard(client, django_user_model):
    assert client.get(INDEX).status_code == 302
    client.force_login(django_user_model.objects.create_user("reader", password="x" * 20))

    response = client.get(INDEX)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
