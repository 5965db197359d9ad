"""Faults: every due subscriber gets exactly one digest per period, whatever crashes.

Real worker and beat processes, a real SMTP server on loopback that counts what it
accepted per address, PostgreSQL and Redis (in CI). Each test runs a few thousand
digests or fewer; PAPERBOY_FAULTS=long runs ten times as many with more faults
(`make test-faults`).

What a crash can leave, by design (digest.sending, mailing.smtp): a digest is recorded
"sending" just before the final dot of DATA, so a worker killed before that point
leaves it to be sent again, and one killed after it leaves a digest that is never sent
again. The server has it in that case, and its record ends "unknown" rather than
"sent": the worker died before it could write down the answer.
"""

import datetime as dt
import os
import threading
import uuid
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from digest import scheduling, sending
from digest.models import Digest, DigestItem
from papers.models import Paper, PaperTopic, Topic
from subscriptions.models import Subscriber, Suppression
from tests.support.factories import PaperFactory
from tests.support.processes import CeleryProcess, database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

LONG = os.environ.get("PAPERBOY_FAULTS") == "long"
SCALE = 10 if LONG else 1
# Generous: a loaded 2-core machine, workers restarted several times.
DEADLINE = 600 * SCALE
# Messages each worker process has in flight (PAPERBOY_SEND_CONCURRENCY).
IN_FLIGHT = 4


def population(size: int) -> list[str]:
    """``size`` active subscribers due now, each following a topic with three new
    papers; their addresses."""
    now = timezone.now()
    topic = Topic.objects.create(name=f"Fault tolerance {uuid.uuid4().hex[:6]}")
    for n in range(3):
        paper = PaperFactory(title=f"Paper {n}", ingested_at=now - dt.timedelta(hours=1))
        PaperTopic.objects.create(paper=paper, topic=topic, score=2.0, matched_terms=["x"])
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(
            email=f"reader{n}@example.org",
            status=Subscriber.Status.ACTIVE,
            confirmed_at=now,
            consent_at=now,
            next_due_at=now - dt.timedelta(minutes=1),
        )
        for n in range(size)
    )
    Subscriber.topics.through.objects.bulk_create(
        Subscriber.topics.through(subscriber_id=s.pk, topic_id=topic.pk) for s in subscribers
    )
    return [s.email for s in subscribers]


def schedule_every_second() -> None:
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.update_or_create(
        name="Schedule digests",
        defaults={"task": "digest.schedule_digests", "interval": every_second, "enabled": True},
    )
    PeriodicTask.objects.exclude(name="Schedule digests").update(enabled=False)


def worker_env(smtp_server, **extra) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(connection.settings_dict),
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}",
        "SITE_URL": "https://papers.example",
        # A queue of our own, so that no other worker on this machine takes the tasks.
        "PAPERBOY_QUEUE": f"test{uuid.uuid4().hex}",
        # Lost tasks are found within seconds, and retries are not waited out.
        "PAPERBOY_CLAIM_LEASE": "5",
        "PAPERBOY_RETRY_DELAY": "0",
        # As in the test process: these tests are about delivery, not matching.
        "PAPERBOY_MATCHING": "lexical",
        # Several messages in flight per process, as in production.
        "PAPERBOY_SEND_CONCURRENCY": str(IN_FLIGHT),
        **extra,
    }


def worker(env, concurrency=2) -> CeleryProcess:
    return CeleryProcess(
        ["worker", "--concurrency", str(concurrency), "--without-gossip", "--without-mingle"],
        env,
    )


def beat(env) -> CeleryProcess:
    return CeleryProcess(["beat", "--max-interval", "1"], env)


def assert_each_got_exactly_one(smtp_server, addresses, *, failed=()):
    received = smtp_server.received_per_address()
    twice = {address: n for address, n in received.items() if n > 1}
    missing = set(addresses) - set(failed) - set(received)
    assert (twice, missing) == ({}, set())
    assert set(received) == set(addresses) - set(failed)
    # One digest per subscriber, and none is left to send.
    assert Digest.objects.count() == len(addresses)
    assert not Digest.objects.filter(status=Digest.Status.CLAIMED).exists()


def stop_all(*processes):
    for process in processes:
        process.stop()


@pytest.mark.parametrize("in_flight", [1, IN_FLIGHT])
def test_a_worker_killed_again_and_again_mid_run_loses_nothing_and_sends_nothing_twice(
    smtp_server, in_flight
):
    """Kill -9 the whole worker (main process and pool) at the two moments that matter:
    at RCPT, before the message went out, and right after the server took the message
    but before the worker heard "250". Then start a new one.

    With one message in flight, the only sender is exactly at the moment chosen, and
    every address gets its digest. With several, another connection of the killed
    worker may be in the instant between a digest's commit of "sending" and its dot
    (README, Guarantees): that digest is lost, and recorded as such, never sent twice."""
    addresses = population(2000 * SCALE)
    schedule_every_second()
    env = worker_env(smtp_server, PAPERBOY_SEND_CONCURRENCY=str(in_flight))
    kills = [("rcpt", 150), ("message", 500), ("rcpt", 900), ("message", 1300)]
    if LONG:
        kills = [(stage, at * SCALE) for stage, at in kills] + [
            (stage, at * SCALE + 7_000) for stage, at in kills
        ]
    # At most this many digests can be in that instant at a kill: each of the killed
    # worker's other connections, one digest each.
    may_lose = len(kills) * (in_flight - 1)
    current = {"worker": worker(env, concurrency=1)}
    killed = threading.Event()
    plan = list(kills)

    def maybe_kill(stage, count):
        if plan and plan[0] == (stage, count):
            plan.pop(0)
            current["worker"].kill()
            killed.set()

    def settled(received) -> bool:
        """Every address has its digest, or its digest was handed over by a worker that
        was killed (recorded "sending", then "unknown" once its lease runs out)."""
        missing = len(addresses) - len(received)
        if missing > may_lose:
            return False
        if missing == 0:
            return True
        handed_over = Digest.objects.filter(
            status__in=[Digest.Status.SENDING, Digest.Status.UNKNOWN]
        ).values_list("subscriber__email", flat=True)
        return len(set(addresses) - set(received) - set(handed_over)) == 0

    smtp_server.on_rcpt(lambda count: maybe_kill("rcpt", count))
    smtp_server.on_message(lambda count: maybe_kill("message", count))
    scheduler = beat(env)
    try:
        for _ in kills:
            assert killed.wait(DEADLINE), f"the run stalled before the kills {plan}"
            killed.clear()
            current["worker"] = worker(env, concurrency=1)
        smtp_server.wait_until(settled, timeout=DEADLINE)
    finally:
        # A warm shutdown: the last batch records its last digest sent.
        stop_all(scheduler, current["worker"])

    assert plan == []
    received = smtp_server.received_per_address()
    assert {address: n for address, n in received.items() if n > 1} == {}
    lost = set(addresses) - set(received)
    assert len(lost) <= may_lose
    assert Digest.objects.count() == len(addresses)
    statuses = Counter(Digest.objects.values_list("status", flat=True))
    # A digest a killed worker had handed over, or had sent without having committed
    # "sent" yet, is never sent again and is recorded as unknown (still "sending" until
    # its lease runs out); so is each one lost.
    assert set(statuses) <= {"sent", "sending", "unknown"}
    assert statuses["sending"] + statuses["unknown"] <= len(kills) * in_flight
    assert not Digest.objects.filter(subscriber__email__in=lost, status=Digest.Status.SENT).exists()


def test_two_beats_and_two_workers_send_each_digest_once(smtp_server):
    addresses = population(1500 * SCALE)
    schedule_every_second()
    env = worker_env(smtp_server)
    processes = [beat(env), beat(env), worker(env), worker(env)]
    try:
        smtp_server.wait_until(
            lambda received: sum(received.values()) >= len(addresses), timeout=DEADLINE
        )
    finally:
        stop_all(*processes)

    assert_each_got_exactly_one(smtp_server, addresses)
    assert set(Digest.objects.values_list("status", flat=True)) == {"sent"}


def test_a_flaky_mail_server_gets_everything_once_and_refused_recipients_are_suppressed(
    smtp_server,
):
    """30% of messages answered 421 or 451 after DATA, connections dropped at RCPT and
    after DATA now and then, and 550 for some recipients."""
    addresses = population(1000 * SCALE)
    refused = addresses[::97]
    for address in refused:
        smtp_server.refuse_recipient(address, "550 5.1.1 No such user")
    smtp_server.transient(rate=0.3, seed=8)
    smtp_server.drop(rate=0.03, stage="rcpt", seed=9)
    smtp_server.drop(rate=0.01, stage="data", seed=10)
    schedule_every_second()
    # At about one failure in three, 8 retries leave a digest given up once in 20,000:
    # a few percent of runs. More retries make that a non-event here.
    env = worker_env(smtp_server, PAPERBOY_SEND_RETRIES="30")
    processes = [beat(env), worker(env)]
    try:
        smtp_server.wait_until(
            lambda received: sum(received.values()) >= len(addresses) - len(refused),
            timeout=DEADLINE,
        )
    finally:
        stop_all(*processes)

    assert_each_got_exactly_one(smtp_server, addresses, failed=refused)
    assert smtp_server.refusals() > 0.2 * len(addresses)
    statuses = Counter(Digest.objects.values_list("status", flat=True))
    # A dropped connection after DATA is a digest the server has but never confirmed.
    assert statuses["unknown"] == smtp_server.drops("data")
    assert statuses["failed"] == len(refused)
    assert statuses["sent"] == len(addresses) - len(refused) - statuses["unknown"]
    suppressed = set(Suppression.objects.active().values_list("email", flat=True))
    assert suppressed == set(refused)


def test_redis_restarted_mid_run_loses_nothing(smtp_server, redis_server):
    """Redis killed and started again without persistence: every queued task is gone.
    The claims' leases run out and the scheduling pass queues them again."""
    addresses = population(1500 * SCALE)
    schedule_every_second()
    env = worker_env(smtp_server, REDIS_URL=redis_server.url)
    restart = threading.Event()
    smtp_server.on_message(lambda count: count == len(addresses) // 3 and restart.set())
    processes = [beat(env), worker(env)]
    try:
        assert restart.wait(DEADLINE)
        redis_server.restart()
        smtp_server.wait_until(
            lambda received: sum(received.values()) >= len(addresses), timeout=DEADLINE
        )
    finally:
        stop_all(*processes)

    assert_each_got_exactly_one(smtp_server, addresses)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite has no server connection to kill"
)
def test_database_connections_killed_mid_batch_are_retried_and_nothing_is_sent_twice(
    smtp_server,
):
    addresses = population(1500 * SCALE)
    schedule_every_second()
    env = worker_env(smtp_server)
    moments = [len(addresses) // 4, len(addresses) // 2, 3 * len(addresses) // 4]
    reached = threading.Semaphore(0)
    smtp_server.on_message(lambda count: count in moments and reached.release())
    processes = [beat(env), worker(env)]
    terminated = 0
    try:
        for _ in moments:
            assert reached.acquire(timeout=DEADLINE)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                terminated += cursor.fetchone()[0]
        smtp_server.wait_until(
            lambda received: sum(received.values()) >= len(addresses), timeout=DEADLINE
        )
    finally:
        stop_all(*processes)

    assert terminated >= len(moments)
    assert_each_got_exactly_one(smtp_server, addresses)
    statuses = Counter(Digest.objects.values_list("status", flat=True))
    # What was sent but not yet recorded "sent" when its connection died stays unknown:
    # at most one digest per worker process and kill.
    assert statuses["sent"] >= len(addresses) - 2 * len(moments)
    # The batch a killed connection interrupted was retried (on a new connection).
    processes[1].wait_for(r"send_digests\[.*\] retry: Retry in", 1, regex=True)


def test_no_answer_after_data_is_recorded_unknown_and_never_sent_again(smtp_server, settings):
    """The server took the message but its answer never came: it may have been
    delivered. Recorded as unknown, its papers kept in the ledger, and not sent again by
    a retry or a later pass."""
    mailer = smtp_server.mailer_settings()
    mailer["OPTIONS"]["timeout"] = 1
    settings.MAILERS = {"default": mailer}
    addresses = population(3)
    smtp_server.hang_after_data(addresses[1])
    ids = scheduling.claim_due(timezone.now())

    result = sending.send_batch(ids)
    again = sending.send_batch(ids)
    swept = scheduling.sweep(timezone.now() + dt.timedelta(hours=1), queue_empty=True)

    first, second, third = (Digest.objects.get(pk=pk) for pk in ids)
    assert (first.status, second.status, third.status) == ("sent", "unknown", "sent")
    assert (result.sent, result.unknown, result.retry) == ([first.pk, third.pk], [second.pk], [])
    assert "may have been delivered" in second.last_error
    assert again.sent == again.unknown == again.retry == [] and swept.requeue == []
    # Its papers count as sent: the next digest does not repeat them.
    assert DigestItem.objects.filter(digest=second).count() == Paper.objects.count()
    assert smtp_server.received_per_address() == Counter(dict.fromkeys(addresses, 1))
