"""Composing and sending digests: ledger, ranking, skipping, headers, links, SMTP faults."""

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command

from digest import scheduling, sending
from digest.compose import compose
from digest.models import Digest, DigestItem, Feedback
from papers.importers import import_source
from papers.models import Paper, PaperTopic
from subscriptions.models import Subscriber
from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory, match

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)


@pytest.fixture
def reader(settings):
    settings.SITE_URL = "https://papers.example"
    settings.PAPERBOY_UNSUBSCRIBE_MAILTO = "unsubscribe@papers.example"
    topic = TopicFactory(name="Replay methods", slug="replay-test", terms="replay buffer")
    subscriber = SubscriberFactory(email="ada@example.org", next_due_at=NOW, max_papers=3)
    subscriber.topics.add(topic)
    return subscriber, topic


def new_paper(topic, score=2.0, hours_ago=2, **fields):
    paper = PaperFactory(ingested_at=NOW - dt.timedelta(hours=hours_ago), **fields)
    match(paper, topic, score=score, terms=["replay buffer"])
    return paper


def send_due():
    return sending.send_batch(scheduling.claim_due(NOW), now=NOW)


class TestComposition:
    def test_it_picks_new_matching_papers_ranked_and_capped(self, reader):
        subscriber, topic = reader
        low = new_paper(topic, score=1.1)
        high = new_paper(topic, score=5.0)
        trending = new_paper(topic, score=1.1, upvotes=400)
        featured = new_paper(topic, score=1.1, featured=True)
        new_paper(topic, hours_ago=30)  # before the window: first digest looks back one day
        PaperFactory(ingested_at=NOW - dt.timedelta(hours=1))  # matches nothing

        picks = compose(subscriber, until=NOW)

        assert [p.paper for p in picks] == [high, trending, featured]
        assert low not in [p.paper for p in picks]
        assert picks[0].reason == "Replay methods: mentions replay buffer."

    def test_hidden_excluded_and_unmatched_papers_stay_out_pinned_ones_go_in(self, reader):
        subscriber, topic = reader
        new_paper(topic, hidden=True)
        excluded = new_paper(topic)
        PaperTopic.objects.filter(paper=excluded).update(curation="excluded")
        pinned = PaperFactory(ingested_at=NOW - dt.timedelta(hours=1))
        match(pinned, topic, score=0.1, curation="pinned")

        assert [p.paper for p in compose(subscriber, until=NOW)] == [pinned]

    def test_papers_already_sent_in_any_version_never_come_back(self, reader, tmp_path):
        subscriber, topic = reader
        feed = tmp_path / "feed.xml"
        entry = (
            "<entry><id>http://arxiv.org/abs/2401.04088v{v}</id>"
            "<title>Mixtral of Experts</title></entry>"
        )
        with time_machine.travel(NOW - dt.timedelta(days=2), tick=False):
            feed.write_text(f"<feed xmlns='http://www.w3.org/2005/Atom'>{entry.format(v=1)}</feed>")
            import_source(str(feed))
        paper = Paper.objects.get()
        # Pinned, so that rescoring the new version keeps the paper in the topic.
        match(paper, topic, curation="pinned")
        earlier = Digest.objects.create(
            subscriber=subscriber, period="2026-11-26", scheduled_for=NOW - dt.timedelta(days=2)
        )
        DigestItem.objects.create(digest=earlier, paper=paper, position=1)

        feed.write_text(f"<feed xmlns='http://www.w3.org/2005/Atom'>{entry.format(v=2)}</feed>")
        import_source(str(feed))  # version 2 of the same paper: updated, same row
        Paper.objects.update(ingested_at=NOW - dt.timedelta(hours=1))

        assert PaperTopic.objects.matching().filter(paper=paper, topic=topic).exists()
        assert compose(subscriber, until=NOW) == []

    def test_the_window_starts_at_the_previous_digest(self, reader):
        subscriber, topic = reader
        Digest.objects.create(
            subscriber=subscriber,
            period="2026-11-27",
            scheduled_for=NOW - dt.timedelta(hours=5),
            status=Digest.Status.SENT,
        )
        old = new_paper(topic, hours_ago=6)
        fresh = new_paper(topic, hours_ago=4)

        picks = [p.paper for p in compose(subscriber, until=NOW)]

        assert fresh in picks and old not in picks

    def test_papers_held_back_by_a_failed_period_are_still_owed(self, reader):
        subscriber, topic = reader
        Digest.objects.create(
            subscriber=subscriber,
            period="2026-11-27",
            scheduled_for=NOW - dt.timedelta(hours=5),
            status=Digest.Status.FAILED,
        )
        owed = new_paper(topic, hours_ago=6)

        assert [p.paper for p in compose(subscriber, until=NOW)] == [owed]

    def test_a_mail_server_that_cannot_be_reached_leaves_every_digest_claimed(
        self, reader, settings
    ):
        import socket

        _, topic = reader
        new_paper(topic)
        with socket.socket() as closed:  # a port with nobody listening
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        settings.MAILERS = {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
            }
        }
        ids = scheduling.claim_due(NOW)

        result = sending.send_batch(ids, now=NOW)

        assert result.retry == ids
        digest = Digest.objects.get()
        assert digest.status == Digest.Status.CLAIMED, "ready for the retry, not stuck"
        assert "ConnectionRefusedError" in digest.last_error
        assert not DigestItem.objects.exists(), "the ledger holds only what went out"

    def test_feedback_lifts_liked_topics_and_sinks_disliked_ones(self, reader):
        subscriber, liked = reader
        disliked = TopicFactory(name="Diffusion", slug="diffusion-test")
        subscriber.topics.add(disliked)
        a = new_paper(liked, score=2.0)
        b = new_paper(disliked, score=2.5)
        assert [p.paper for p in compose(subscriber, until=NOW)] == [b, a]

        Feedback.objects.create(
            subscriber=subscriber, paper=PaperFactory(), vote=1, topic_ids=[liked.pk]
        )
        Feedback.objects.create(
            subscriber=subscriber, paper=PaperFactory(), vote=-1, topic_ids=[disliked.pk]
        )

        assert [p.paper for p in compose(subscriber, until=NOW)] == [a, b]


class TestSending:
    def test_nothing_new_sends_no_email_and_records_the_period_as_skipped(self, reader):
        result = send_due()

        assert mail.outbox == []
        digest = Digest.objects.get()
        assert (digest.status, result.skipped) == (Digest.Status.SKIPPED, [digest.pk])

    def test_a_digest_is_sent_once_and_its_papers_enter_the_ledger(self, reader):
        subscriber, topic = reader
        papers = [new_paper(topic, score=s) for s in (3, 2, 1.5)]

        send_due()
        send_due()

        [message] = mail.outbox
        assert message.to == ["ada@example.org"]
        digest = Digest.objects.get()
        assert digest.status == Digest.Status.SENT
        assert digest.message_id == message.extra_headers["Message-ID"]
        assert list(
            DigestItem.objects.filter(subscriber=subscriber).values_list("paper", flat=True)
        ) == [p.pk for p in papers]

    def test_a_redelivered_batch_sends_nothing_twice(self, reader):
        _, topic = reader
        new_paper(topic)
        ids = scheduling.claim_due(NOW)

        sending.send_batch(ids, now=NOW)
        sending.send_batch(ids, now=NOW)

        assert len(mail.outbox) == 1

    def test_a_subscriber_who_unsubscribed_after_the_claim_gets_nothing(self, reader):
        subscriber, topic = reader
        new_paper(topic)
        ids = scheduling.claim_due(NOW)
        Subscriber.objects.filter(pk=subscriber.pk).update(status=Subscriber.Status.UNSUBSCRIBED)

        sending.send_batch(ids, now=NOW)

        assert mail.outbox == []
        assert Digest.objects.get().status == Digest.Status.SKIPPED

    def test_the_send_command_dry_run_prints_and_sends_nothing(self, reader, capsys):
        _, topic = reader
        new_paper(topic, title="Replay buffers, revisited")

        with time_machine.travel(NOW, tick=False):
            call_command("send_digests", "--dry-run")

        out = capsys.readouterr().out
        assert "ada@example.org: 1 paper(s)" in out
        assert "Replay buffers, revisited" in out
        assert "why: Replay methods: mentions replay buffer." in out
        assert mail.outbox == [] and Digest.objects.count() == 0

    def test_the_send_command_sends_in_process(self, reader, capsys):
        _, topic = reader
        new_paper(topic)

        with time_machine.travel(NOW, tick=False):
            call_command("send_digests")
            call_command("send_digests")

        assert len(mail.outbox) == 1
        assert "1 digests claimed: 1 sent" in capsys.readouterr().out

    def test_preview_writes_html_and_text_and_records_nothing(self, reader, tmp_path):
        _, topic = reader
        new_paper(topic, title="A previewed paper")

        with time_machine.travel(NOW, tick=False):
            call_command("preview_digest", "ada@example.org", "--output", str(tmp_path))

        html = next(tmp_path.glob("*.html")).read_text()
        assert "A previewed paper" in html and 'style="' in html
        assert "A previewed paper" in next(tmp_path.glob("*.txt")).read_text()
        assert Digest.objects.count() == 0 and DigestItem.objects.count() == 0


class TestOverSMTP:
    """Through a real SMTP server on loopback, parsing what a mail client would see."""

    def test_the_message_has_both_parts_every_header_and_signed_absolute_links(
        self, reader, smtp_mailer, client
    ):
        _, topic = reader
        new_paper(topic, title="Offline <Experience> Replay", upvotes=7, authors=["Ada Lovelace"])

        send_due()

        [received] = smtp_mailer.wait_for(1)
        message = received.parsed
        assert message["To"] == "ada@example.org"
        assert message["From"] == "Paperboy digest <digest@localhost>"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["List-Id"] == "Paperboy digest <digest.papers.example>"
        assert re.fullmatch(r"<[^@>]+@papers\.example>", message["Message-ID"])
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https, mailto = [p.strip(" <>") for p in message["List-Unsubscribe"].split(",")]
        assert https.startswith("https://papers.example/unsubscribe/")
        assert mailto.startswith("mailto:unsubscribe@papers.example?subject=unsubscribe")
        assert "Offline <Experience> Replay" in message["Subject"]
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "Offline <Experience> Replay" in text
        assert "Offline &lt;Experience&gt; Replay" in html and "<Experience>" not in html
        assert "Why: Replay methods: mentions replay buffer." in text
        assert 'style="' in html, "CSS is inlined for mail clients"

        links = set(re.findall(r'href="([^"]+)"', html))
        ours = {link for link in links if link.startswith("https://papers.example/")}
        assert ours, links
        assert all(link.startswith(("https://", "http://arxiv", "https://arxiv")) for link in links)
        kinds = {urlsplit(link).path.split("/")[1] for link in ours}
        assert kinds == {"feedback", "digests", "manage", "unsubscribe"}
        for link in ours:
            assert client.get(urlsplit(link).path).status_code == 200, link
        assert https in links or https.replace("&", "&amp;") in html

        up = next(link for link in ours if "/feedback/" in link)
        client.post(urlsplit(up).path)
        client.post(urlsplit(up).path)
        assert Feedback.objects.get().topic_ids == [topic.pk]

    def test_a_421_is_retried_without_resending_what_went_out(
        self, reader, smtp_mailer, django_capture_on_commit_callbacks
    ):
        from paperboy.celery import app

        # Eager Celery runs the retry at once; the Retry it raises afterwards is its signal.
        # (The eager_celery fixture puts the setting back.)
        app.conf.task_eager_propagates = False
        _, topic = reader
        for i in range(2):
            extra = SubscriberFactory(email=f"extra{i}@example.org", next_due_at=NOW)
            extra.topics.add(topic)
        new_paper(topic)
        smtp_mailer.fail_next(1, "421 4.3.0 Try again later")

        from digest.tasks import schedule_digests

        with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
            schedule_digests.delay()

        received = smtp_mailer.wait_for(3)
        assert sorted(m.rcpt_tos[0] for m in received) == [
            "ada@example.org",
            "extra0@example.org",
            "extra1@example.org",
        ]
        assert set(Digest.objects.values_list("status", flat=True)) == {Digest.Status.SENT}
        assert sorted(Digest.objects.values_list("attempts", flat=True)) == [1, 1, 2]

    def test_a_refused_recipient_fails_that_digest_and_suppresses_the_address(
        self, reader, smtp_mailer
    ):
        subscriber, topic = reader
        other = SubscriberFactory(email="ok@example.org", next_due_at=NOW)
        other.topics.add(topic)
        new_paper(topic)
        smtp_mailer.refuse_recipient("ada@example.org", "550 5.1.1 No such user")

        result = send_due()

        assert [m.rcpt_tos for m in smtp_mailer.wait_for(1)] == [("ok@example.org",)]
        failed = Digest.objects.get(subscriber=subscriber)
        assert failed.status == Digest.Status.FAILED and "550" in failed.last_error
        assert result.failed == [failed.pk]
        subscriber.refresh_from_db()
        assert subscriber.status == Subscriber.Status.SUPPRESSED
        assert not DigestItem.objects.filter(subscriber=subscriber).exists()
        assert send_due().sent == []


class TestFeedbackAndViewLinks:
    def test_a_vote_is_recorded_once_and_can_be_changed(self, reader, client):
        from digest.links import feedback_url

        subscriber, _ = reader
        paper = PaperFactory(title="Liked paper")
        up = urlsplit(feedback_url(subscriber, paper, 1)).path
        down = urlsplit(feedback_url(subscriber, paper, -1)).path

        first, again = client.post(up), client.post(up)
        assert (first.status_code, again.status_code) == (200, 200)
        assert b"Thanks for the feedback" in first.content
        assert Feedback.objects.get().vote == 1
        client.post(down)
        assert Feedback.objects.get().vote == -1

    def test_a_link_scanner_opening_both_votes_casts_none(self, reader, client):
        """Safe Links and mail gateways fetch every link of a mail, HEAD or GET: the
        reader's vote takes one more click, a button that POSTs."""
        from digest.links import feedback_url

        subscriber, _ = reader
        paper = PaperFactory(title="Scanned paper")
        up = urlsplit(feedback_url(subscriber, paper, 1)).path
        down = urlsplit(feedback_url(subscriber, paper, -1)).path

        pages = [client.get(up), client.head(up), client.get(down), client.head(down)]

        assert [page.status_code for page in pages] == [200] * 4
        assert not Feedback.objects.exists()
        page = pages[0].content.decode()
        assert "More papers like this?" in page and "Scanned paper" in page
        assert '<form method="post">' in page and "Yes, more like this" in page
        assert client.post(up).status_code == 200
        assert Feedback.objects.get().vote == 1

    def test_the_page_in_the_browser_hands_out_no_control_of_the_subscription(
        self, reader, smtp_mailer
    ):
        """Its address gets shared (it is a link to a web page): no manage, unsubscribe
        or vote links on it, though the email has them all."""
        from django.test import Client

        _, topic = reader
        new_paper(topic, title="Shared with a colleague")
        send_due()
        [message] = smtp_mailer.wait_for(1)
        html = message.parsed.get_body(("html",)).get_content()
        view = next(link for link in re.findall(r'href="([^"]+)"', html) if "/digests/" in link)
        controls = ("/manage/", "/unsubscribe/", "/feedback/")
        assert all(control in html for control in controls)

        page = Client().get(urlsplit(view).path)

        assert page.status_code == 200
        shown = page.content.decode()
        assert "Shared with a colleague" in shown
        for control in (*controls, "/digests/"):
            assert control not in shown, control

    def test_forged_feedback_and_view_links_are_refused(self, reader, client):
        from django.core import signing

        from digest.links import FEEDBACK_SALT, VIEW_SALT, feedback_url, view_url

        subscriber, _ = reader
        paper = PaperFactory()
        digest = Digest.objects.create(subscriber=subscriber, period="p", scheduled_for=NOW)
        other = SubscriberFactory()
        forged = [
            feedback_url(subscriber, paper, 1)[:-3] + "xx/",
            "/feedback/"
            + signing.dumps({"s": other.key.hex, "p": paper.pk, "v": 5}, salt=FEEDBACK_SALT)
            + "/",
            "/feedback/"
            + signing.dumps({"s": other.key.hex, "p": paper.pk, "v": 1}, salt=VIEW_SALT)
            + "/",
            "/digests/" + signing.dumps({"s": other.key.hex, "d": digest.pk}, salt=VIEW_SALT) + "/",
            view_url(digest)[:-3] + "A/",
        ]
        for link in forged:
            assert client.get(urlsplit(link).path).status_code == 404, link
        assert Feedback.objects.count() == 0


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        ("smtp-421", True),
        ("smtp-451-recipient", True),
        ("smtp-550-recipient", False),
        ("smtp-554-data", False),
        ("disconnected", True),
        ("timeout", True),
        ("esp-429", True),
        ("esp-503", True),
        ("esp-no-response", True),
        ("esp-400", False),
        ("esp-refused", False),
    ],
)
def test_transient_errors_are_told_from_permanent_ones(error, transient):
    import smtplib

    from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

    from mailing.retry import is_transient

    exc = {
        "smtp-421": smtplib.SMTPDataError(421, b"Try again later"),
        "smtp-451-recipient": smtplib.SMTPRecipientsRefused(
            {"a@example.org": (451, b"Greylisted")}
        ),
        "smtp-550-recipient": smtplib.SMTPRecipientsRefused(
            {"a@example.org": (550, b"No such user")}
        ),
        "smtp-554-data": smtplib.SMTPDataError(554, b"Rejected"),
        "disconnected": smtplib.SMTPServerDisconnected("gone"),
        "timeout": TimeoutError(),
        "esp-429": AnymailAPIError("slow down", status_code=429),
        "esp-503": AnymailAPIError("unavailable", status_code=503),
        "esp-no-response": AnymailAPIError("connection reset"),
        "esp-400": AnymailAPIError("bad request", status_code=400),
        "esp-refused": AnymailRecipientsRefused("refused"),
    }[error]
    assert is_transient(exc) is transient


def test_send_now_sends_to_a_subscriber_whose_hour_has_not_come(reader, capsys):
    subscriber, topic = reader
    Subscriber.objects.filter(pk=subscriber.pk).update(next_due_at=None)
    new_paper(topic)

    with time_machine.travel(NOW, tick=False):
        call_command("send_digests", "--now", "--email", "ADA@example.org")

    assert [m.to for m in mail.outbox] == [["ada@example.org"]]
    subscriber.refresh_from_db()
    assert subscriber.next_due_at == NOW + dt.timedelta(days=1)
