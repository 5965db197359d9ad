"""The subscribers in the admin: filters, bulk actions, the CSV export, the digest preview
and test sends, and queries that stay flat however many subscribers there are."""

import csv
import datetime as dt
import io
from html.parser import HTMLParser

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core import admin as core_admin
from digest import compose as composing
from digest.models import Digest, DigestItem
from papers.models import Topic
from subscriptions import admin as subscriber_admin
from subscriptions import deliverability
from subscriptions.models import Subscriber, Suppression
from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory, match

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.UTC)
CHANGELIST = reverse("admin:subscriptions_subscriber_changelist")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def reader(frozen):
    """An active subscriber with one topic and two new papers matched to it."""
    topic = TopicFactory(name="Replay methods", terms="replay buffer")
    subscriber = SubscriberFactory(email="ada@example.org", next_due_at=NOW)
    subscriber.topics.add(topic)
    for title in ["Replay buffers at scale", "Forgetting, measured"]:
        match(PaperFactory(title=title, ingested_at=NOW - dt.timedelta(hours=2)), topic)
    return subscriber


def change_url(subscriber, view="change"):
    return reverse(f"admin:subscriptions_subscriber_{view}", args=[subscriber.pk])


def results(response) -> set[str]:
    return {subscriber.email for subscriber in response.context["cl"].result_list}


def action(name, *subscribers, **extra) -> dict:
    return {"action": name, "_selected_action": [s.pk for s in subscribers], **extra}


class _FormFields(HTMLParser):
    """The name/value pairs a browser would submit from a page's last POST form."""

    def __init__(self):
        super().__init__()
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.fields = []
        elif tag == "input" and attrs.get("type") != "submit" and attrs.get("name"):
            self.fields.append((attrs["name"], attrs.get("value") or ""))


def submit(client, page, **fields):
    """Submit the form of ``page`` as a browser would, with ``fields`` filled in."""
    parser = _FormFields()
    parser.feed(page.content.decode())
    data: dict[str, list[str]] = {}
    for name, value in parser.fields:
        data.setdefault(name, []).append(value)
    data |= {name: [value] for name, value in fields.items()}
    # A form without an action posts back to the page's own URL, filters and all.
    return client.post(page.wsgi_request.get_full_path(), data)


def many_subscribers(count: int, topics: list[Topic]) -> None:
    """``count`` subscribers with every one of ``topics``, in a handful of queries."""
    start = Subscriber.objects.count()
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=f"bulk{start + n}@example.org", status="pending") for n in range(count)
    )
    Through = Subscriber.topics.through
    Through.objects.bulk_create(
        Through(subscriber_id=s.pk, topic_id=t.pk) for s in subscribers for t in topics
    )


def queries(client, path, data=None, method="get") -> int:
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(path, data or {})
        if isinstance(response, StreamingHttpResponse):
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(captured)


class TestList:
    def test_it_filters_by_status_frequency_and_timezone(self, admin_client):
        SubscriberFactory(email="ada@example.org", frequency="weekly", timezone="Europe/Paris")
        SubscriberFactory(email="bob@example.org", status="paused", confirmed_at=NOW)
        SubscriberFactory(email="cy@example.org", status="pending", confirmed_at=None)

        assert results(admin_client.get(CHANGELIST, {"status__exact": "paused"})) == {
            "bob@example.org"
        }
        assert results(admin_client.get(CHANGELIST, {"frequency__exact": "weekly"})) == {
            "ada@example.org"
        }
        assert results(admin_client.get(CHANGELIST, {"timezone": "Europe/Paris"})) == {
            "ada@example.org"
        }

    def test_the_topic_filter_lists_curated_topics_yet_takes_any_topic_id(self, admin_client):
        curated = TopicFactory(name="Curated one")
        interest = Topic.for_interest("tiny transformers")
        ada = SubscriberFactory(email="ada@example.org")
        ada.topics.add(curated, interest)
        SubscriberFactory(email="bob@example.org").topics.add(curated)

        unfiltered = admin_client.get(CHANGELIST)
        by_interest = admin_client.get(CHANGELIST, {"topics__id__exact": interest.pk})

        [topic_filter] = [
            spec for spec in unfiltered.context["cl"].filter_specs if spec.title == "topic"
        ]
        listed = {name for _, name in topic_filter.lookup_choices}
        assert "Curated one" in listed and "tiny transformers" not in listed
        assert listed == set(Topic.objects.curated().values_list("name", flat=True))
        assert results(by_interest) == {"ada@example.org"}
        # The interest picked by id shows as the active choice.
        assert "tiny transformers" in by_interest.content.decode()
        assert results(admin_client.get(CHANGELIST, {"topics__id__exact": curated.pk})) == {
            "ada@example.org",
            "bob@example.org",
        }

    def test_a_topic_filter_that_is_not_an_id_is_refused_not_a_crash(self, admin_client):
        response = admin_client.get(CHANGELIST, {"topics__id__exact": "x"})

        assert response.status_code == 302 and "e=1" in response["Location"]

    def test_search_finds_a_subscriber_by_email(self, admin_client):
        SubscriberFactory(email="ada@example.org")
        SubscriberFactory(email="bob@example.net")

        assert results(admin_client.get(CHANGELIST, {"q": "example.net"})) == {"bob@example.net"}

    def test_the_list_shows_topic_names_and_how_many_more(self, admin_client):
        ada = SubscriberFactory(email="ada@example.org")
        ada.topics.add(*[TopicFactory(name=f"Subject {n}") for n in range(7)])

        html = admin_client.get(CHANGELIST, {"q": "ada@"}).content.decode()

        assert "Subject 0, Subject 1, Subject 2, Subject 3, Subject 4 (+2)" in html

    def test_the_list_makes_as_many_queries_for_200_subscribers_as_for_10(self, admin_client):
        topics = [TopicFactory() for _ in range(4)]
        many_subscribers(10, topics)
        few = queries(admin_client, CHANGELIST)
        many_subscribers(190, topics)
        many = queries(admin_client, CHANGELIST)
        filtered = queries(admin_client, CHANGELIST, {"topics__id__exact": topics[0].pk})

        assert Subscriber.objects.count() == 200
        assert few == many == filtered


class TestEditing:
    def test_changing_the_schedule_recomputes_when_the_next_digest_is_due(
        self, admin_client, frozen
    ):
        ada = SubscriberFactory(email="ada@example.org", next_due_at=NOW)
        ada.topics.add(topic := TopicFactory())
        form = {
            "email": "ada@example.org",
            "status": "active",
            "frequency": "weekly",
            "weekday": "2",
            "send_hour": "9",
            "timezone": "Europe/Paris",
            "max_papers": "10",
            "topics": [topic.pk],
        }

        response = admin_client.post(change_url(ada), form)

        assert response.status_code == 302
        ada.refresh_from_db()
        # Saturday 28 November 2026, 07:30 in Paris: the next Wednesday at 09:00 there.
        assert ada.next_due_at == dt.datetime(2026, 12, 2, 8, tzinfo=dt.UTC)

    def test_pausing_clears_the_next_due_time_and_resuming_sets_it(self, admin_client, frozen):
        ada = SubscriberFactory(email="ada@example.org", next_due_at=NOW)
        form = {
            "email": "ada@example.org",
            "frequency": "daily",
            "weekday": "0",
            "send_hour": "8",
            "timezone": "UTC",
            "max_papers": "10",
        }

        admin_client.post(change_url(ada), form | {"status": "paused"})
        ada.refresh_from_db()
        assert ada.status == "paused" and ada.next_due_at is None

        admin_client.post(change_url(ada), form | {"status": "active"})
        ada.refresh_from_db()
        assert ada.next_due_at == dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)

    def test_an_unconfirmed_subscriber_cannot_be_made_active_by_hand(self, admin_client):
        cy = SubscriberFactory(email="cy@example.org", status="pending", confirmed_at=None)
        form = {
            "email": "cy@example.org",
            "status": "active",
            "frequency": "daily",
            "weekday": "0",
            "send_hour": "8",
            "timezone": "UTC",
            "max_papers": "10",
        }

        response = admin_client.post(change_url(cy), form)

        assert response.status_code == 200
        assert "confirmed their address" in response.content.decode()
        cy.refresh_from_db()
        assert cy.status == "pending"

    def test_a_subscriber_added_by_hand_waits_for_confirmation(self, admin_client):
        topic = TopicFactory()
        add = reverse("admin:subscriptions_subscriber_add")
        form = {
            "email": "new@Example.ORG",
            "status": "pending",
            "frequency": "daily",
            "weekday": "0",
            "send_hour": "8",
            "timezone": "UTC",
            "max_papers": "10",
            "topics": [topic.pk],
        }

        assert admin_client.get(add).status_code == 200
        response = admin_client.post(add, form)

        assert response.status_code == 302
        added = Subscriber.objects.get(email="new@example.org")
        assert added.next_due_at is None and list(added.topics.all()) == [topic]

    def test_the_consent_record_is_read_only(self, admin_client):
        ada = SubscriberFactory(email="ada@example.org", consent_ip="192.0.2.1")

        form = admin_client.get(change_url(ada)).context["adminform"].form

        for name in ["confirmed_at", "consent_at", "consent_ip", "consent_user_agent", "key"]:
            assert name not in form.fields


class TestActions:
    def test_resending_the_confirmation_asks_first_then_mails_pending_subscribers_only(
        self, admin_client, django_capture_on_commit_callbacks
    ):
        pending = SubscriberFactory(email="cy@example.org", status="pending", confirmed_at=None)
        active = SubscriberFactory(email="ada@example.org")
        data = action("resend_confirmation", pending, active)

        asked = admin_client.post(CHANGELIST, data)
        assert asked.status_code == 200 and asked.templates[0].name == "admin/confirm_action.html"
        assert mail.outbox == []

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            done = submit(admin_client, asked)

        assert done.status_code == 302
        assert len(callbacks) == 1, "queued after commit"
        assert [m.to for m in mail.outbox] == [["cy@example.org"]]

    def test_select_across_suppresses_every_subscriber_the_filter_selects(self, admin_client):
        many_subscribers(3, [])
        SubscriberFactory(email="ada@example.org")
        first = Subscriber.objects.filter(status="pending").first()
        data = action("suppress", first, select_across="1", index="0")

        asked = admin_client.post(f"{CHANGELIST}?status__exact=pending", data)
        assert "<strong>3</strong>" in asked.content.decode()
        assert Suppression.objects.count() == 0

        submit(admin_client, asked, detail="bulk import by mistake")

        assert Suppression.objects.count() == 3
        assert not Suppression.objects.with_email("ada@example.org").exists()

    def test_suppressing_asks_for_a_reason_then_suppresses_through_the_list(self, admin_client):
        ada = SubscriberFactory(email="ada@example.org", next_due_at=NOW)
        bob = SubscriberFactory(email="bob@example.org")

        asked = admin_client.post(CHANGELIST, action("suppress", ada))
        no_reason = submit(admin_client, asked, detail=" ")
        assert "Give a reason." in no_reason.content.decode()
        assert Suppression.objects.count() == 0

        done = submit(admin_client, asked, detail="asked us by phone")

        assert done.status_code == 302
        suppression = Suppression.objects.active().get()
        assert (suppression.email, suppression.reason, suppression.detail) == (
            "ada@example.org",
            Suppression.Reason.MANUAL,
            "asked us by phone",
        )
        ada.refresh_from_db()
        bob.refresh_from_db()
        assert (ada.status, ada.next_due_at) == (Subscriber.Status.SUPPRESSED, None)
        assert bob.status == Subscriber.Status.ACTIVE

    def test_lifting_a_suppression_asks_for_a_reason_and_pauses_the_subscriber(self, admin_client):
        ada = SubscriberFactory(email="Ada@example.org")
        deliverability.suppress("ada@EXAMPLE.org", Suppression.Reason.BOUNCED)

        asked = admin_client.post(CHANGELIST, action("lift_suppression", ada))
        assert Suppression.objects.active().exists()
        done = submit(admin_client, asked, reason="mailbox fixed")

        assert done.status_code == 302
        suppression = Suppression.objects.get()
        assert suppression.lifted_reason == "mailbox fixed"
        ada.refresh_from_db()
        assert ada.status == Subscriber.Status.PAUSED

    def test_non_staff_cannot_run_actions_and_nothing_changes(self, client, django_user_model):
        ada = SubscriberFactory(email="ada@example.org")
        client.force_login(django_user_model.objects.create_user("reader", password="x" * 20))

        response = client.post(
            CHANGELIST, action("suppress", ada, confirmed="yes", detail="no right to")
        )
        export = client.post(CHANGELIST, action("export_csv", ada))

        assert response.status_code == 302 and export.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
        assert Suppression.objects.count() == 0
        ada.refresh_from_db()
        assert ada.status == Subscriber.Status.ACTIVE


class TestExport:
    def test_the_export_is_csv_with_every_column_and_no_formulas(self, admin_client, frozen):
        ada = SubscriberFactory(
            email="=cmd@example.org", frequency="weekly", weekday=2, timezone="Asia/Tokyo"
        )
        ada.topics.add(
            TopicFactory(name="Replay methods"),
            Topic.for_interest("+1 trick"),
            Topic.for_interest('@SUM(A1) "quoted", with commas'),
        )
        SubscriberFactory(email="bob@example.org", status="pending", confirmed_at=None)

        response = admin_client.post(CHANGELIST, action("export_csv", *Subscriber.objects.all()))

        assert isinstance(response, StreamingHttpResponse)
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"].startswith("attachment;")
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows[0] == subscriber_admin.EXPORT_COLUMNS
        by_email = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
        assert by_email["'=cmd@example.org"] == {
            "email": "'=cmd@example.org",
            "status": "active",
            "frequency": "weekly",
            "weekday": "Wednesday",
            "send_hour": "8",
            "timezone": "Asia/Tokyo",
            "max_papers": "10",
            "topics": '\'+1 trick; @SUM(A1) "quoted", with commas; Replay methods',
            "created_at": "2026-11-28T06:30:00+00:00",
            "confirmed_at": "2026-11-28T06:30:00+00:00",
        }
        assert by_email["bob@example.org"]["confirmed_at"] == ""
        assert by_email["bob@example.org"]["topics"] == ""

    @pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@A1", "\tx", "\rx"])
    def test_cells_a_spreadsheet_would_run_are_quoted(self, cell):
        assert core_admin.spreadsheet_safe(cell) == f"'{cell}"

    def test_the_export_queries_are_flat_in_rows_and_bounded_by_pages(
        self, admin_client, monkeypatch
    ):
        topics = [TopicFactory() for _ in range(3)]
        export_all = {"action": "export_csv", "select_across": "1", "index": "0"}
        many_subscribers(10, topics)
        export_all["_selected_action"] = [Subscriber.objects.first().pk]
        few = queries(admin_client, CHANGELIST, export_all, method="post")
        many_subscribers(190, topics)
        many = queries(admin_client, CHANGELIST, export_all, method="post")
        monkeypatch.setattr(core_admin, "PAGE", 50)
        paged = queries(admin_client, CHANGELIST, export_all, method="post")

        assert few == many
        # Two queries a page (its rows, their topics), one more to find the end.
        assert paged == many - 2 + (4 * 2 + 1)

    def test_the_export_has_every_row_across_pages(self, admin_client, monkeypatch):
        monkeypatch.setattr(core_admin, "PAGE", 7)
        many_subscribers(30, [TopicFactory(name="Only topic")])
        export_all = {"action": "export_csv", "select_across": "1", "index": "0"}
        export_all["_selected_action"] = [Subscriber.objects.first().pk]

        response = admin_client.post(CHANGELIST, export_all)

        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert sorted(row["email"] for row in rows) == sorted(
            Subscriber.objects.values_list("email", flat=True)
        )
        assert {row["topics"] for row in rows} == {"Only topic"}


class TestPreview:
    def test_the_preview_is_the_digest_they_would_get_now_and_writes_nothing(
        self, admin_client, reader
    ):
        response = admin_client.get(change_url(reader, "preview"))

        html = response.content.decode()
        assert response.status_code == 200
        assert "Replay buffers at scale" in html and "Forgetting, measured" in html
        assert "script-src" not in response["Content-Security-Policy"]
        assert Digest.objects.count() == 0 and DigestItem.objects.count() == 0

    def test_the_change_page_links_to_the_preview_and_the_test_send(self, admin_client, reader):
        html = admin_client.get(change_url(reader)).content.decode()

        assert change_url(reader, "preview") in html
        assert change_url(reader, "send_test") in html

    def test_nothing_new_says_so(self, admin_client, frozen):
        quiet = SubscriberFactory(email="quiet@example.org")
        quiet.topics.add(TopicFactory())

        response = admin_client.get(change_url(quiet, "preview"))

        assert response.status_code == 200
        assert "Nothing new for quiet@example.org" in response.content.decode()

    def test_non_staff_get_the_login_page(self, client, django_user_model, reader):
        client.force_login(django_user_model.objects.create_user("reader", password="x" * 20))

        for view in ["preview", "send_test"]:
            response = client.get(change_url(reader, view))
            assert response["Location"].startswith(reverse("admin:login"))
        response = client.post(change_url(reader, "send_test"), {"to": "subscriber"})
        assert response["Location"].startswith(reverse("admin:login"))
        assert Digest.objects.count() == 0


class TestSendTest:
    @pytest.fixture
    def curator(self, admin_client, admin_user):
        admin_user.email = "curator@paperboy.test"
        admin_user.save()
        return admin_client

    def test_the_page_offers_both_destinations_in_a_csrf_protected_form(self, curator, reader):
        html = curator.get(change_url(reader, "send_test")).content.decode()

        assert 'name="csrfmiddlewaretoken"' in html
        assert "Send a test copy to curator@paperboy.test" in html
        assert "Send it to ada@example.org" in html

    def test_a_copy_to_the_curator_is_marked_and_recorded_nowhere(
        self, curator, reader, smtp_mailer
    ):
        response = curator.post(change_url(reader, "send_test"), {"to": "me"}, follow=True)

        [received] = smtp_mailer.wait_for(1)
        message = received.parsed
        assert received.rcpt_tos == ("curator@paperboy.test",)
        assert message["To"] == "curator@paperboy.test"
        assert message["Subject"].startswith("[Test] Your papers for")
        assert message["List-Unsubscribe"] is None
        assert "Replay buffers at scale" in message.get_body(("html",)).get_content()
        assert Digest.objects.count() == 0 and DigestItem.objects.count() == 0
        assert "Sent a test copy (2 paper(s)) to curator@paperboy.test" in (
            response.content.decode()
        )
        assert len(composing.compose(reader, until=NOW)) == 2, "still owed to the subscriber"

    def test_a_send_to_the_subscriber_is_recorded_like_a_scheduled_digest(
        self, curator, reader, smtp_mailer
    ):
        response = curator.post(change_url(reader, "send_test"), {"to": "subscriber"})

        assert response.status_code == 302
        [received] = smtp_mailer.wait_for(1)
        message = received.parsed
        assert received.rcpt_tos == ("ada@example.org",)
        assert not message["Subject"].startswith("[Test]")
        assert message["List-Unsubscribe"]
        assert "Forgetting, measured" in message.get_body(("html",)).get_content()
        digest = Digest.objects.get()
        assert digest.status == Digest.Status.SENT and digest.sent_at == NOW
        assert digest.message_id == message["Message-ID"]
        assert digest.period.startswith("t") and len(digest.period) <= 16
        assert {item.paper.title for item in DigestItem.objects.filter(digest=digest)} == {
            "Replay buffers at scale",
            "Forgetting, measured",
        }
        assert composing.compose(reader, until=NOW + dt.timedelta(days=1)) == []

    def test_a_suppressed_subscriber_is_refused(self, curator, reader, smtp_mailer):
        Suppression.objects.create(email="ada@example.org", reason=Suppression.Reason.MANUAL)

        response = curator.post(change_url(reader, "send_test"), {"to": "subscriber"}, follow=True)

        assert "ada@example.org is on the suppression list" in response.content.decode()
        assert smtp_mailer.messages == []
        assert Digest.objects.count() == 0 and DigestItem.objects.count() == 0

    def test_an_inactive_subscriber_is_refused(self, curator, reader, smtp_mailer):
        Subscriber.objects.filter(pk=reader.pk).update(status="paused")

        response = curator.post(change_url(reader, "send_test"), {"to": "subscriber"}, follow=True)

        assert "Not sent: ada@example.org is paused." in response.content.decode()
        assert smtp_mailer.messages == [] and Digest.objects.count() == 0

    def test_a_curator_without_an_address_is_told_so(
        self, admin_client, admin_user, reader, smtp_mailer
    ):
        admin_user.email = ""
        admin_user.save()

        response = admin_client.post(change_url(reader, "send_test"), {"to": "me"}, follow=True)

        assert "Your account has no email address" in response.content.decode()
        assert smtp_mailer.messages == []

    def test_a_mail_server_error_is_a_message_and_the_digest_is_marked_failed(
        self, curator, reader, smtp_mailer
    ):
        smtp_mailer.fail_next(1, "451 4.3.0 Try again later")

        response = curator.post(change_url(reader, "send_test"), {"to": "subscriber"}, follow=True)

        assert response.status_code == 200
        assert "The mail server did not take the digest" in response.content.decode()
        digest = Digest.objects.get()
        assert digest.status == Digest.Status.FAILED and "451" in digest.last_error
        assert DigestItem.objects.count() == 0
        assert len(composing.compose(reader, until=NOW)) == 2, "the papers are still owed"

    def test_nothing_new_sends_nothing_and_records_nothing(self, curator, frozen, smtp_mailer):
        quiet = SubscriberFactory(email="quiet@example.org")
        quiet.topics.add(TopicFactory())

        response = curator.post(change_url(quiet, "send_test"), {"to": "subscriber"}, follow=True)

        assert "Nothing new for quiet@example.org" in response.content.decode()
        assert smtp_mailer.messages == [] and Digest.objects.count() == 0


class TestPermissions:
    def test_staff_who_may_only_view_can_preview_but_not_send(
        self, client, django_user_model, reader, smtp_mailer
    ):
        from django.contrib.auth.models import Permission

        viewer = django_user_model.objects.create_user(
            "viewer", email="viewer@paperboy.test", password="x" * 20, is_staff=True
        )
        viewer.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
        client.force_login(viewer)

        preview = client.get(change_url(reader, "preview"))
        send = client.post(change_url(reader, "send_test"), {"to": "subscriber"})
        suppress = client.post(
            CHANGELIST, action("suppress", reader, confirmed="yes", detail="not mine to do")
        )

        assert preview.status_code == 200 and "Replay buffers at scale" in preview.text
        assert send.status_code == 403
        assert Suppression.objects.count() == 0 and smtp_mailer.messages == []
        assert suppress.status_code == 302, "no such action for them: back to the list"


class TestDeliveryEvents:
    def test_an_event_links_to_its_digest_in_one_query_for_the_page(self, admin_client):
        from subscriptions.models import DeliveryEvent

        url = reverse("admin:subscriptions_deliveryevent_changelist")
        digest = Digest.objects.create(
            subscriber=SubscriberFactory(),
            period="2026-11-28",
            scheduled_for=NOW,
            status=Digest.Status.SENT,
            message_id="<digest.1@paperboy.test>",
        )
        # An unsent digest has no message id: events without one must not match it.
        Digest.objects.create(subscriber=digest.subscriber, period="2026-11-29", scheduled_for=NOW)

        def event(n, message_id):
            DeliveryEvent.objects.create(
                esp="TestESP",
                event_id=f"evt-{n}",
                event_type="delivered",
                recipient="reader0@example.org",
                message_id=message_id,
            )

        event(0, digest.message_id)
        event(1, "")
        few = queries(admin_client, url)
        for n in range(2, 40):
            event(n, digest.message_id if n % 2 else "")
        many = queries(admin_client, url)

        html = admin_client.get(url).content.decode()
        link = reverse("admin:digest_digest_change", args=[digest.pk])
        assert few == many
        assert html.count(f'href="{link}"') == 20


def test_bulk_delete_is_not_offered_but_deleting_one_subscriber_is(admin_client):
    ada = SubscriberFactory(email="ada@example.org")

    choices = dict(admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    response = admin_client.post(change_url(ada, "delete"), {"post": "yes"})

    assert "delete_selected" not in choices and "export_csv" in choices
    assert response.status_code == 302 and not Subscriber.objects.exists()
