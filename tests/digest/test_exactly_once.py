"""Exactly one digest per subscriber and period, whatever runs twice: two schedulers
claiming at the same moment, two workers sending the same batches, a worker and beat
processes ticking over and over. Against PostgreSQL and Redis in CI."""

import datetime as dt
import threading
import uuid
from collections import Counter

import pytest
from django.db import connection, connections
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from digest import scheduling, sending
from digest.models import Digest
from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory, match
from tests.support.processes import CeleryProcess, database_url

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(target, count=2):
    """Start ``count`` threads (each with its own database connection) at one barrier."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(index):
        try:
            barrier.wait()
            results[index] = target()
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.parametrize(
    "owners",
    [("task-a", "task-b"), ("task-a", "task-a")],
    ids=["two-tasks", "one-task-delivered-twice"],
)
def test_two_schedulers_and_two_senders_at_once_send_each_digest_once(smtp_mailer, owners):
    """Two tasks, or two copies of one task (redelivered while it still ran): the second
    share its owner, so only the status decides who starts each digest."""
    now = timezone.now()
    topic = TopicFactory()
    paper = PaperFactory(ingested_at=now - dt.timedelta(hours=1))
    match(paper, topic)
    subscribers = [SubscriberFactory(next_due_at=now - dt.timedelta(minutes=1)) for _ in range(60)]
    for subscriber in subscribers:
        subscriber.topics.add(topic)

    claims = run_together(lambda: scheduling.claim_due(now))

    assert sorted(claims[0] + claims[1]) == sorted(Digest.objects.values_list("pk", flat=True))
    assert Digest.objects.count() == 60
    everything = claims[0] + claims[1]
    senders = iter(owners)
    run_together(lambda: sending.send_batch(everything, now=now, owner=next(senders)))

    received = Counter(m.rcpt_tos[0] for m in smtp_mailer.wait_for(60))
    assert received == Counter({s.email: 1 for s in subscribers})
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.Status.SENT}


@pytest.mark.celery_worker
def test_a_real_worker_and_beat_deliver_one_digest_and_a_second_pass_sends_nothing(
    smtp_server, settings
):
    now = timezone.now()
    topic = TopicFactory()
    match(PaperFactory(title="Delivered by beat", ingested_at=now - dt.timedelta(hours=1)), topic)
    subscriber = SubscriberFactory(email="beat@example.org", next_due_at=now)
    subscriber.topics.add(topic)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    # The migration's schedule (present unless a transactional test emptied the tables),
    # ticking every second; the other periodic tasks are beside the point here.
    PeriodicTask.objects.update_or_create(
        name="Schedule digests",
        defaults={"task": "digest.schedule_digests", "interval": every_second, "enabled": True},
    )
    PeriodicTask.objects.exclude(name="Schedule digests").update(enabled=False)
    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}",
        "SITE_URL": "https://papers.example",
        # A queue of our own, so that no other worker on this machine takes the tasks.
        "PAPERBOY_QUEUE": f"test{uuid.uuid4().hex}",
        "PAPERBOY_MATCHING": "lexical",  # as in the test process
    }
    worker = CeleryProcess(
        ["worker", "--concurrency", "2", "--without-gossip", "--without-mingle"], env
    )
    beat = CeleryProcess(["beat", "--max-interval", "1"], env)
    try:
        worker.wait_for(r"digest\.schedule_digests\[.*\] succeeded in .*: 1$", 90, regex=True)
        worker.wait_for(r"digest\.send_digests\[.*\] succeeded in .*'sent': 1", 60, regex=True)
        [message] = smtp_server.wait_for(1, timeout=30)
        # Passes after the send claim nothing (each logs how many digests it claimed).
        for _ in range(2):
            worker.wait_for(r"digest\.schedule_digests\[.*\] succeeded in .*: 0$", 60, regex=True)
    finally:
        beat.stop()
        worker.stop()

    assert message.rcpt_tos == ("beat@example.org",)
    assert "Delivered by beat" in message.parsed.get_body(("plain",)).get_content()
    assert len(smtp_server.messages) == 1
    digest = Digest.objects.get()
    assert digest.status == Digest.Status.SENT
