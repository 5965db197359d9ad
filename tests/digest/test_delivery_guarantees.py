"""One digest per subscriber and period on the paths that do not crash but overlap or
stall: a run that lost its digests to another and is then refused by its mail server,
an ESP that takes a request and never answers, a batch slower than its lease, a slow
mail server while readers sign up and unsubscribe (SQLite's one write lock). Messages
are counted per address at a real SMTP server, or at a real HTTP server standing in
for the ESP."""

import datetime as dt
import threading

import pytest
from django.db import DatabaseError, connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest import ledger, scheduling, sending
from digest.models import Digest
from digest.tasks import send_digests
from mailing import transport
from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token
from tests.subscriptions.test_signup import form_data
from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory, match

pytestmark = pytest.mark.django_db(transaction=True)


def due(count: int) -> list[int]:
    """``count`` subscribers due now, each with a paper to get; their digests' ids."""
    now = timezone.now()
    topic = TopicFactory()
    match(PaperFactory(ingested_at=now - dt.timedelta(hours=1)), topic)
    for _ in range(count):
        SubscriberFactory(next_due_at=now - dt.timedelta(minutes=1)).topics.add(topic)
    return scheduling.claim_due(now)


def in_thread(target):
    """Run ``target`` in a thread of its own (its own database connection); its result."""
    outcome = {}

    def run():
        try:
            outcome["result"] = target()
        except Exception as exc:  # raised below, in the test's thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def retry(result: sending.BatchResult) -> sending.BatchResult:
    """What the task's retry does with what a run left to retry (digest.tasks): the
    same task, so the same owner."""
    ledger.renew(result.retry, result.owner, timezone.now())
    return sending.send_batch(result.retry, owner=result.owner)


def addresses(digest_ids):
    return sorted(
        Digest.objects.filter(pk__in=digest_ids).values_list("subscriber__email", flat=True)
    )


def test_a_run_that_lost_its_digests_and_is_then_refused_changes_nothing(
    smtp_mailer, monkeypatch, settings
):
    """Run A's lease runs out while it is still sending (a throttled relay); the next
    pass queues its digests again and run B sends them. Then A reaches them and the
    server, greylisting, answers A "451" at RCPT: A must not put them back to be sent
    again."""
    settings.PAPERBOY_SEND_CONCURRENCY = 1  # run A sends from this thread
    ids = due(3)
    first = Digest.objects.get(pk=ids[0])
    begin = transport.Outbox.stage
    overtaken = []

    def a_is_overtaken(outbox, message):
        if threading.current_thread() is threading.main_thread() and not overtaken:
            later = timezone.now() + dt.timedelta(seconds=settings.PAPERBOY_CLAIM_LEASE + 1)
            requeued = scheduling.sweep(later, queue_empty=True).requeue
            overtaken.append(in_thread(lambda: sending.send_batch(requeued)))
            smtp_mailer.refuse_recipient(first.subscriber.email, "451 4.7.1 Greylisted")
        begin(outbox, message)

    monkeypatch.setattr(transport.Outbox, "stage", a_is_overtaken)
    result = sending.send_batch(ids)
    smtp_mailer.accept_recipient(first.subscriber.email)
    retry(result)

    assert smtp_mailer.received_per_address() == dict.fromkeys(addresses(ids), 1)
    assert overtaken[0].sent == ids
    assert result.sent == result.retry == []
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.Status.SENT}
    assert all(Digest.objects.get(pk=pk).items.exists() for pk in ids)


def test_a_task_that_lost_its_database_connection_takes_its_digests_back_at_once(
    smtp_mailer, monkeypatch
):
    """The retry after a lost connection is the same run: it need not wait for the
    lease it holds to run out."""
    ids = due(2)
    compose_many = sending.compose_many
    calls = []

    def connection_lost_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise DatabaseError("server closed the connection unexpectedly")
        return compose_many(*args, **kwargs)

    monkeypatch.setattr(sending, "compose_many", connection_lost_once)
    # Eager Celery runs the retry at once, then reports the Retry instead of raising it
    # (the eager_celery fixture puts the setting back).
    send_digests.app.conf.task_eager_propagates = False
    send_digests.apply(args=[ids])

    assert len(calls) == 2
    assert smtp_mailer.received_per_address() == dict.fromkeys(addresses(ids), 1)
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.Status.SENT}


def test_an_esp_that_takes_the_request_and_never_answers_gets_it_once(esp_server, settings):
    """Once the request has left, no answer means the ESP may have it: "unknown", never
    sent again, as after the dot over SMTP."""
    esp_server.mode = "stall"
    settings.ANYMAIL["REQUESTS_TIMEOUT"] = 0.5
    ids = due(2)

    result = sending.send_batch(ids)
    retried = retry(result)
    swept = scheduling.sweep(timezone.now() + dt.timedelta(hours=1), queue_empty=True)

    assert result.unknown == ids
    assert (retried.sent, swept.requeue) == ([], [])
    assert esp_server.requests_per_address() == dict.fromkeys(addresses(ids), 1)
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.Status.UNKNOWN}


@pytest.mark.parametrize("mode", ["500", "unreadable"])
def test_an_esp_answer_that_is_not_a_refusal_may_have_sent_it(esp_server, mode):
    """A 5xx, or a 200 whose body anymail cannot read: the ESP may have it."""
    esp_server.mode = mode
    ids = due(1)

    result = sending.send_batch(ids)
    retry(result)

    assert result.unknown == ids
    assert esp_server.requests_per_address() == dict.fromkeys(addresses(ids), 1)


def test_an_esp_refusal_is_retried_or_failed_and_nothing_waits_in_the_ledger(esp_server):
    esp_server.mode = "429"
    ids = due(1)

    result = sending.send_batch(ids)
    esp_server.mode = "accept"
    retried = retry(result)

    assert (result.retry, retried.sent) == (ids, ids)
    assert esp_server.requests_per_address() == dict.fromkeys(addresses(ids), 2)


def _anymail_error(status=None, cause=None):
    from anymail.exceptions import AnymailAPIError

    try:
        try:
            if cause is not None:
                raise cause
        except Exception as exc:
            raise AnymailAPIError("failed", status_code=status) from exc
        raise AnymailAPIError("failed", status_code=status)
    except AnymailAPIError as error:
        return error


def _connection_error(reason):
    import requests
    from urllib3.exceptions import MaxRetryError

    return requests.exceptions.ConnectionError(MaxRetryError(None, "/email", reason))


def _classification_cases():
    import ssl

    import requests
    from anymail.exceptions import AnymailInvalidAddress
    from urllib3.exceptions import NameResolutionError, NewConnectionError, ProtocolError
    from urllib3.exceptions import SSLError as Urllib3SSLError

    verify = ssl.SSLCertVerificationError("certificate verify failed")
    return [
        ("429", _anymail_error(429), True),
        ("400", _anymail_error(400), True),
        ("500", _anymail_error(500), False),
        ("200-unreadable", _anymail_error(200), False),
        ("refused", _anymail_error(cause=_connection_error(NewConnectionError(None, "x"))), True),
        ("dns", _anymail_error(cause=_connection_error(NameResolutionError("h", None, "x"))), True),
        ("connect-timeout", _anymail_error(cause=requests.exceptions.ConnectTimeout()), True),
        ("proxy", _anymail_error(cause=requests.exceptions.ProxyError()), True),
        ("bad-url", _anymail_error(cause=requests.exceptions.InvalidURL()), True),
        ("read-timeout", _anymail_error(cause=requests.exceptions.ReadTimeout()), False),
        ("dropped", _anymail_error(cause=_connection_error(ProtocolError("reset"))), False),
        (
            "certificate",
            _anymail_error(cause=requests.exceptions.SSLError(_connection_error(verify))),
            True,
        ),
        (
            "tls-mid-answer",
            _anymail_error(cause=requests.exceptions.SSLError(Urllib3SSLError("EOF"))),
            False,
        ),
        ("no-cause", _anymail_error(), False),
        ("invalid-address", AnymailInvalidAddress("no @ in it"), True),
        ("not-anymail", AttributeError("response parsing"), False),
    ]


@pytest.mark.parametrize(
    ("case", "error", "never_left"),
    _classification_cases(),
    ids=[case for case, _, _ in _classification_cases()],
)
def test_only_a_refusal_or_an_error_before_the_request_left_means_not_sent(case, error, never_left):
    assert transport.never_reached_esp(error) is never_left


def test_an_esp_that_cannot_be_reached_gets_the_digest_on_the_retry(esp_server, settings):
    """Refused before the request left: nothing was sent, so the retry sends it."""
    ids = due(2)
    reachable = settings.ANYMAIL["POSTMARK_API_URL"]
    # A port nothing listens on: the connection is refused.
    settings.ANYMAIL["POSTMARK_API_URL"] = "http://127.0.0.1:9/"

    result = sending.send_batch(ids)
    settings.ANYMAIL["POSTMARK_API_URL"] = reachable
    retried = retry(result)

    assert (result.retry, result.unknown) == (ids, [])
    assert retried.sent == ids
    assert esp_server.requests_per_address() == dict.fromkeys(addresses(ids), 1)


def test_a_batch_slower_than_its_lease_keeps_its_digests(smtp_mailer, settings):
    """A relay that takes a while per reply: the batch outlasts its lease several times
    over, and the scheduling passes meanwhile neither queue its digests again nor take
    the one on the wire for lost."""
    settings.PAPERBOY_CLAIM_LEASE = 3
    smtp_mailer.slow(0.2)  # three replies a message: about 0.6 s each, 5 s for the batch
    ids = due(8)
    passes = []

    def scheduling_pass(count):
        # In a thread of its own: the ORM stays out of the server's event loop.
        passes.append(in_thread(lambda: scheduling.sweep(timezone.now(), queue_empty=True)))

    smtp_mailer.on_message(scheduling_pass)
    result = sending.send_batch(ids)

    assert result.sent == ids
    assert len(passes) == 8
    assert [(p.requeue, p.unknown) for p in passes] == [([], 0)] * 8
    assert smtp_mailer.received_per_address() == dict.fromkeys(addresses(ids), 1)
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.Status.SENT}


def test_readers_sign_up_and_unsubscribe_while_a_slow_mail_server_takes_digests(smtp_mailer):
    """No transaction stays open while the mail server is talked to. On SQLite a batch
    holding the one write lock across a 2 s reply made every other writer wait, and fail
    with "database is locked" (a 500) once past its busy timeout, here 1 s."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 1000")
    ids = due(2)
    topic = TopicFactory(name="Waiting for the lock")
    leaving = SubscriberFactory()
    smtp_mailer.slow(2)
    on_the_wire = threading.Event()
    smtp_mailer.on_rcpt(lambda count: on_the_wire.set())
    outcome = {}

    def send():
        try:
            outcome["result"] = sending.send_batch(ids)
        finally:
            connections.close_all()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert on_the_wire.wait(30)
        # The confirmation email goes out through the same slow server.
        signup = Client().post(
            reverse("subscriptions:signup"),
            form_data(email="newcomer@example.org", topics=[topic.pk]),
            REMOTE_ADDR="192.0.2.7",
        )
        unsubscribe = Client(enforce_csrf_checks=True).post(
            reverse("subscriptions:unsubscribe", args=[make_token(leaving, Purpose.UNSUBSCRIBE)]),
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
    finally:
        sender.join()

    assert (signup.status_code, unsubscribe.status_code) == (302, 200)
    assert Subscriber.objects.get(email="newcomer@example.org").status == Subscriber.Status.PENDING
    leaving.refresh_from_db()
    assert leaving.status == Subscriber.Status.UNSUBSCRIBED
    assert outcome["result"].sent == ids
    received = smtp_mailer.received_per_address()
    assert received == dict.fromkeys([*addresses(ids), "newcomer@example.org"], 1)
