"""The delivery side of the admin: the digest log, imports, scheduling passes, schedules."""

import datetime as dt

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from digest import scheduling, sending
from digest.models import Digest, DigestItem, SchedulingPass
from digest.tasks import schedule_digests
from papers.models import ImportRun, Paper
from subscriptions.models import DeliveryEvent, Suppression
from tests.support.factories import (
    DigestFactory,
    PaperFactory,
    SubscriberFactory,
    TopicFactory,
    match,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)


def sent_digest(email="ada@example.org", title="Replay buffers at scale", **fields):
    """A digest as the pipeline leaves it: sent, with its paper in the ledger."""
    topic = TopicFactory(terms="replay buffer")
    subscriber = SubscriberFactory(email=email, next_due_at=NOW)
    subscriber.topics.add(topic)
    paper = PaperFactory(title=title, ingested_at=NOW - dt.timedelta(hours=2))
    match(paper, topic, terms=["replay buffer"])
    with time_machine.travel(NOW, tick=False):
        result = sending.send_batch(scheduling.claim_due(NOW), now=NOW)
    digest = Digest.objects.get(pk=result.sent[0])
    if fields:
        Digest.objects.filter(pk=digest.pk).update(**fields)
        digest.refresh_from_db()
    return digest


class TestDeliveryLog:
    def test_it_filters_by_status_and_date(self, admin_client):
        sent = DigestFactory(status=Digest.Status.SENT, scheduled_for=NOW)
        failed = DigestFactory(status=Digest.Status.FAILED, scheduled_for=NOW, last_error="550")
        old = DigestFactory(status=Digest.Status.FAILED, scheduled_for=NOW - dt.timedelta(days=3))
        url = reverse("admin:digest_digest_changelist")

        by_status = admin_client.get(url, {"status__exact": "failed"})
        by_day = admin_client.get(
            url,
            {
                "scheduled_for__gte": "2026-11-28 00:00:00+00:00",
                "scheduled_for__lt": "2026-11-29 00:00:00+00:00",
            },
        )
        by_hierarchy = admin_client.get(
            url, {"scheduled_for__year": 2026, "scheduled_for__month": 11, "scheduled_for__day": 25}
        )

        assert set(by_status.context["cl"].result_list) == {failed, old}
        assert set(by_day.context["cl"].result_list) == {sent, failed}
        assert list(by_hierarchy.context["cl"].result_list) == [old]

    def test_the_log_shows_attempts_errors_message_ids_and_esp_events(self, admin_client):
        digest = sent_digest(attempts=2, last_error="SMTPServerDisconnected: gone")
        Digest.objects.filter(pk=digest.pk).update(delivered_at=NOW + dt.timedelta(minutes=3))

        response = admin_client.get(reverse("admin:digest_digest_changelist"))

        html = response.content.decode()
        assert "ada@example.org" in html
        assert "SMTPServerDisconnected: gone" in html
        assert digest.message_id in html.replace("&lt;", "<").replace("&gt;", ">")
        assert "delivered 08:03" in html

    def test_a_search_finds_a_digest_by_message_id(self, admin_client):
        digest = sent_digest()
        sent_digest(email="bob@example.org", title="Another paper")

        response = admin_client.get(
            reverse("admin:digest_digest_changelist"), {"q": digest.message_id}
        )

        assert list(response.context["cl"].result_list) == [digest]

    def test_a_digest_page_lists_its_papers_and_the_esp_events(self, admin_client):
        digest = sent_digest()
        DeliveryEvent.objects.create(
            esp="postmark",
            event_id="e1",
            event_type="bounced",
            recipient="ada@example.org",
            message_id=digest.message_id,
            reject_reason="bounced",
        )
        DeliveryEvent.objects.create(
            esp="postmark", event_id="e2", event_type="delivered", message_id="<other@x>"
        )

        response = admin_client.get(reverse("admin:digest_digest_change", args=[digest.pk]))

        html = response.content.decode()
        assert "Replay buffers at scale" in html
        assert "bounced" in html
        assert "other@x" not in html

    def test_the_rendered_email_is_rebuilt_from_the_ledger(self, admin_client):
        digest = sent_digest()
        # Scores change after sending; the log shows what went out, not a recomposition.
        Paper.objects.update(title="Renamed later")
        url = reverse("admin:digest_digest_email", args=[digest.pk])

        html = admin_client.get(url)
        text = admin_client.get(url, {"format": "text"})

        assert html.status_code == 200
        assert "<html" in html.content.decode().lower()
        assert "Renamed later" in html.content.decode()  # the paper row, as it stands
        assert "replay buffer" in html.content.decode()  # the reason it was sent with
        assert text["Content-Type"].startswith("text/plain")
        assert text.content.decode().startswith("Subject: ")

    def test_a_digest_without_papers_has_no_email_to_show(self, admin_client):
        digest = DigestFactory(status=Digest.Status.SKIPPED)

        response = admin_client.get(reverse("admin:digest_digest_email", args=[digest.pk]))

        assert response.status_code == 302
        assert response["Location"] == reverse("admin:digest_digest_change", args=[digest.pk])

    def test_nobody_edits_or_deletes_the_log(self, admin_client):
        digest = sent_digest()

        change = admin_client.post(
            reverse("admin:digest_digest_change", args=[digest.pk]), {"status": "failed"}
        )
        delete = admin_client.post(
            reverse("admin:digest_digest_delete", args=[digest.pk]), {"post": "yes"}
        )

        assert change.status_code == 403
        assert delete.status_code == 403
        digest.refresh_from_db()
        assert digest.status == Digest.Status.SENT
        assert DigestItem.objects.filter(digest=digest).count() == 1

    def test_non_staff_cannot_see_an_email(self, client, django_user_model):
        digest = sent_digest()
        client.force_login(django_user_model.objects.create_user("reader", password="x" * 20))

        response = client.get(reverse("admin:digest_digest_email", args=[digest.pk]))

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


class TestImportFromTheAdmin:
    url = property(lambda self: reverse("admin:papers_importrun_import"))

    def test_an_uploaded_page_is_imported(self, admin_client, samples):
        upload = SimpleUploadedFile(
            "page.txt", (samples / "trending-papers-page.txt").read_bytes(), "text/plain"
        )

        response = admin_client.post(self.url, {"upload": upload, "format": "auto"}, follow=True)

        assert Paper.objects.count() == 72
        run = ImportRun.objects.get()
        assert (run.status, run.created, run.source) == ("succeeded", 72, "upload: page.txt")
        assert "Imported: 72 created" in response.content.decode()

    def test_an_error_of_the_servers_own_is_a_page_not_a_500(
        self, admin_client, samples, monkeypatch
    ):
        from papers import importers

        def broken(*args, **kwargs):
            raise RuntimeError("the database went away")

        monkeypatch.setattr(importers, "import_source", broken)
        upload = SimpleUploadedFile(
            "page.txt", (samples / "trending-papers-page.txt").read_bytes(), "text/plain"
        )

        response = admin_client.post(self.url, {"upload": upload, "format": "auto"})

        assert response.status_code == 200
        page = response.content.decode()
        assert "The import failed on the server" in page and "Nothing was imported" in page
        assert "the database went away" not in page
        assert not Paper.objects.exists()

    def test_a_bad_upload_names_its_problems_and_stores_nothing(self, admin_client):
        upload = SimpleUploadedFile("page.txt", b"Mar 17\n\n" + b"x" * 600 + b"\n", "text/plain")

        response = admin_client.post(self.url, {"upload": upload, "format": "hf-page"})

        assert response.status_code == 200
        assert "Nothing was imported" in response.content.decode()
        assert Paper.objects.count() == 0
        assert ImportRun.objects.get().status == ImportRun.Status.FAILED

    def test_an_oversized_upload_is_refused(self, admin_client, samples, settings):
        settings.PAPERBOY_MAX_IMPORT_BYTES = 1000
        upload = SimpleUploadedFile(
            "page.txt", (samples / "trending-papers-page.txt").read_bytes(), "text/plain"
        )

        response = admin_client.post(self.url, {"upload": upload, "format": "auto"})

        assert "larger than 1000 bytes" in response.content.decode()
        assert Paper.objects.count() == 0

    def test_a_url_is_fetched_and_imported(self, admin_client, feed_server, samples):
        folder, base = feed_server
        (folder / "daily.json").write_bytes((samples / "hf-daily-papers.json").read_bytes())

        admin_client.post(self.url, {"url": f"{base}/daily.json", "format": "auto"})

        assert Paper.objects.count() == 3

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "ftp://example.org/x"])
    def test_only_http_urls_are_fetched(self, admin_client, url):
        response = admin_client.post(self.url, {"url": url, "format": "auto"})

        assert response.status_code == 200
        assert response.context["form"].errors["url"]
        assert ImportRun.objects.count() == 0

    def test_it_wants_a_file_or_a_url(self, admin_client, samples):
        upload = SimpleUploadedFile("x.json", b"[]", "application/json")

        neither = admin_client.post(self.url, {"format": "auto"})
        both = admin_client.post(
            self.url, {"upload": upload, "url": "https://example.org/x", "format": "auto"}
        )

        for response in (neither, both):
            assert "Choose a file or give a URL" in response.content.decode()
        assert ImportRun.objects.count() == 0

    def test_the_feeds_button_imports_every_configured_feed(
        self, admin_client, feed_server, samples, settings, django_capture_on_commit_callbacks
    ):
        folder, base = feed_server
        (folder / "atom.xml").write_bytes((samples / "arxiv-atom.xml").read_bytes())
        settings.PAPERBOY_FEED_URLS = [f"{base}/atom.xml"]

        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:papers_importrun_import_feeds"))

        assert response.status_code == 302
        assert Paper.objects.count() == 2
        assert ImportRun.objects.get().source == f"{base}/atom.xml"

    def test_non_staff_cannot_import(self, client, django_user_model, samples):
        client.force_login(django_user_model.objects.create_user("reader", password="x" * 20))
        upload = SimpleUploadedFile(
            "page.txt", (samples / "trending-papers-page.txt").read_bytes(), "text/plain"
        )

        response = client.post(self.url, {"upload": upload, "format": "auto"})

        assert response.status_code == 302
        assert Paper.objects.count() == 0

    def test_staff_without_the_paper_permission_cannot_import(
        self, client, django_user_model, samples
    ):
        client.force_login(
            django_user_model.objects.create_user("intern", password="x" * 20, is_staff=True)
        )
        upload = SimpleUploadedFile(
            "page.txt", (samples / "trending-papers-page.txt").read_bytes(), "text/plain"
        )

        response = client.post(self.url, {"upload": upload, "format": "auto"})

        assert response.status_code == 403
        assert Paper.objects.count() == 0


class TestSchedulingPasses:
    def test_each_pass_is_recorded_with_what_it_claimed(self, django_capture_on_commit_callbacks):
        for n in range(3):
            SubscriberFactory(email=f"r{n}@example.org", next_due_at=NOW - dt.timedelta(hours=1))

        with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks():
            schedule_digests()
            schedule_digests()

        first, second = SchedulingPass.objects.order_by("pk")
        assert (first.started_at, first.claimed, first.requeued, first.error) == (NOW, 3, 0, "")
        assert first.finished_at == NOW
        assert second.claimed == 0

    def test_a_failed_pass_is_recorded_with_its_error(self, monkeypatch):
        def broken(now):
            raise RuntimeError("database went away")

        monkeypatch.setattr(scheduling, "claim_pages", broken)

        with pytest.raises(RuntimeError):
            schedule_digests()

        assert SchedulingPass.objects.get().error == "RuntimeError: database went away"

    def test_passes_older_than_30_days_are_pruned(self):
        SchedulingPass.objects.create(started_at=NOW - dt.timedelta(days=31))
        kept = SchedulingPass.objects.create(started_at=NOW - dt.timedelta(days=29))

        with time_machine.travel(NOW, tick=False):
            schedule_digests()

        assert SchedulingPass.objects.count() == 2
        assert SchedulingPass.objects.filter(pk=kept.pk).exists()

    def test_the_admin_lists_failed_passes(self, admin_client):
        SchedulingPass.objects.create(started_at=NOW, claimed=4)
        failed = SchedulingPass.objects.create(started_at=NOW, error="RuntimeError: boom")

        response = admin_client.get(
            reverse("admin:digest_schedulingpass_changelist"), {"error__isempty": "0"}
        )

        assert list(response.context["cl"].result_list) == [failed]


class TestSchedules:
    def test_paperboys_tasks_are_listed_with_what_they_do(self, admin_client):
        response = admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist"))

        html = response.content.decode()
        for name in ("Import paper feeds", "Schedule digests", "Process pending delivery events"):
            assert name in html
        assert "Claims every due digest once" in html
        assert 'id="schedules-help"' in html

    def test_a_curator_changes_how_often_digests_are_scheduled(self, admin_client):
        task = PeriodicTask.objects.get(name="Schedule digests")
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        form = admin_client.get(url).context["adminform"].form
        assert "Beat picks up a change" in form.fields["interval"].help_text
        every_minute = IntervalSchedule.objects.create(every=1, period="minutes")
        data = {
            name: value
            for name, value in {**form.initial, "regtask": task.task}.items()
            if value is not None
        }
        data |= {"interval": every_minute.pk, "enabled": "on", "args": "[]", "kwargs": "{}"}
        data.pop("last_run_at", None)
        data.pop("crontab_translation", None)

        response = admin_client.post(url, data)

        assert response.status_code == 302, response.context["adminform"].form.errors
        task.refresh_from_db()
        assert task.interval == every_minute

    def test_a_curator_pauses_the_feed_import(self, admin_client):
        task = PeriodicTask.objects.get(name="Import paper feeds")

        admin_client.post(
            reverse("admin:django_celery_beat_periodictask_changelist"),
            {"action": "disable_tasks", "_selected_action": [task.pk]},
        )

        task.refresh_from_db()
        assert task.enabled is False


def _queries(client, url) -> int:
    from django.db import connection

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "name",
    [
        "digest_digest",
        "digest_digestitem",
        "papers_importrun",
        "digest_schedulingpass",
        "django_celery_beat_periodictask",
        "subscriptions_suppression",
        "subscriptions_deliveryevent",
    ],
)
def test_changelist_queries_stay_flat_as_rows_grow(admin_client, name):
    url = reverse(f"admin:{name}_changelist")

    def add_rows(count):
        for _ in range(count):
            digest = DigestFactory(status=Digest.Status.SENT, message_id="<m@x>")
            DigestItem.objects.create(digest=digest, paper=PaperFactory(), position=1)
            ImportRun.objects.create(source="x", format="auto", status="succeeded", started_at=NOW)
            SchedulingPass.objects.create(started_at=NOW, claimed=1)
            event = DeliveryEvent.objects.create(
                esp="x", event_id=f"e{digest.pk}", event_type="bounced", message_id="<m@x>"
            )
            Suppression.objects.create(
                email=digest.subscriber.email, reason="bounced", source_event=event
            )
            PeriodicTask.objects.create(
                name=f"task {PeriodicTask.objects.count()}",
                task="papers.import_feeds",
                interval=IntervalSchedule.objects.get_or_create(every=1, period="hours")[0],
            )

    add_rows(10)
    few = _queries(admin_client, url)
    add_rows(190)
    many = _queries(admin_client, url)

    assert few == many
