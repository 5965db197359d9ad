"""Several messages in flight per batch (digest.pacing): over SMTP connections and ESP
requests at once, one hung connection holding up nothing but its own digest, a request
to slow down halving what is in flight, and a cap on messages per second that all
processes share. Counted per address at a real SMTP server, or per request at a real
HTTP server standing in for the ESP."""

import smtplib
import threading
import time

import pytest
from anymail.exceptions import AnymailAPIError

from digest import pacing, sending
from digest.models import Digest, SendingSecond
from tests.digest.test_delivery_guarantees import addresses, due

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_batch_keeps_as_many_messages_in_flight_as_the_setting_says(smtp_mailer, settings):
    settings.PAPERBOY_SEND_CONCURRENCY = 4
    ids = due(8)
    # Each reply takes a while, as from a server far away: four connections overlap.
    smtp_mailer.slow(0.3)

    result = sending.send_batch(ids)

    assert smtp_mailer.peak_in_transaction == 4
    assert result.sent == sorted(ids)
    assert smtp_mailer.received_per_address() == dict.fromkeys(addresses(ids), 1)


def test_one_hung_connection_holds_up_only_its_own_digest(smtp_mailer, settings):
    settings.PAPERBOY_SEND_CONCURRENCY = 4
    settings.MAILERS["default"]["OPTIONS"]["timeout"] = 3
    ids = due(8)
    stuck = Digest.objects.select_related("subscriber").get(pk=ids[0])
    smtp_mailer.hang_after_data(stuck.subscriber.email)
    arrivals = []
    smtp_mailer.on_message(lambda count: arrivals.append(time.monotonic()))

    result = sending.send_batch(ids)

    # All eight reached the server before the hung connection gave up, 3 s after its
    # message: the other seven did not wait for it.
    assert len(arrivals) == 8 and max(arrivals) - min(arrivals) < 3
    assert result.sent == sorted(ids[1:])
    assert result.unknown == [stuck.pk]
    assert set(Digest.objects.filter(pk__in=ids[1:]).values_list("status", flat=True)) == {
        Digest.Status.SENT
    }
    stuck.refresh_from_db()
    assert stuck.status == Digest.Status.UNKNOWN
    assert smtp_mailer.received_per_address() == dict.fromkeys(addresses(ids), 1)


def test_no_connection_renders_while_another_is_between_its_commit_and_its_dot(
    smtp_mailer, settings, monkeypatch
):
    """A thread whose commit of "sending" has returned writes its dot before any other
    thread renders: a rendering thread would hold the interpreter for up to its switch
    interval, and a worker killed meanwhile loses the digest (bench.turn)."""
    from digest import ledger, rendering
    from mailing import smtp

    settings.PAPERBOY_SEND_CONCURRENCY = 4
    ids = due(24)
    timeline, lock = [], threading.Lock()

    def mark(event):
        with lock:
            timeline.append((event, threading.get_ident()))

    def spied(function, before, after):
        def call(*args, **kwargs):
            if before:
                mark(before)
            try:
                return function(*args, **kwargs)
            finally:
                if after:
                    mark(after)

        return call

    render_digest = rendering.render_digest

    def slow_render(*args, **kwargs):
        # Rendering a long digest: pure Python for a while, holding the interpreter.
        sum(i * i for i in range(300_000))
        return render_digest(*args, **kwargs)

    monkeypatch.setattr(rendering, "render_digest", spied(slow_render, "render", "rendered"))
    # From the start of the commit: when in it the row becomes durable is not seen here.
    monkeypatch.setattr(ledger, "start", spied(ledger.start, "committing", None))
    end_data = smtp.end_data

    def dot(connection, handed_over=None):
        def sent():
            mark("dot")
            if handed_over:
                handed_over()

        end_data(connection, sent)

    monkeypatch.setattr(smtp, "end_data", dot)

    result = sending.send_batch(ids)

    assert result.sent == sorted(ids)
    assert len({thread for _, thread in timeline}) == 4
    in_window: set[int] = set()
    for event, thread in timeline:
        if event == "committing":
            in_window.add(thread)
        elif event == "dot":
            in_window.discard(thread)
        elif event == "render":
            assert not in_window - {thread}, "rendered while another was about to write its dot"
    assert [event for event, _ in timeline].count("dot") == 24


def test_esp_requests_go_out_at_once_and_each_digest_once(esp_server, settings):
    settings.PAPERBOY_SEND_CONCURRENCY = 4
    esp_server.delay = 0.3
    ids = due(8)

    result = sending.send_batch(ids)

    assert esp_server.peak_in_flight == 4
    assert result.sent == sorted(ids)
    assert esp_server.requests_per_address() == dict.fromkeys(addresses(ids), 1)


def test_a_batch_inside_a_transaction_sends_from_this_thread(smtp_mailer, settings):
    """An eager task or a caller's transaction: other threads could not see its rows."""
    from django.db import transaction

    settings.PAPERBOY_SEND_CONCURRENCY = 4
    ids = due(3)

    with transaction.atomic():
        result = sending.send_batch(ids)

    assert smtp_mailer.peak_in_transaction == 1
    assert result.sent == sorted(ids)


@pytest.mark.parametrize(
    ("error", "slow_down"),
    [
        (smtplib.SMTPDataError(421, b"4.3.2 Too many connections"), True),
        (smtplib.SMTPSenderRefused(421, b"4.7.0 Slow down", "digest@example.org"), True),
        (smtplib.SMTPRecipientsRefused({"a@example.org": (421, b"busy")}), True),
        (AnymailAPIError("rate limited", status_code=429), True),
        (smtplib.SMTPDataError(451, b"4.7.1 Greylisted"), False),
        (smtplib.SMTPRecipientsRefused({"a@example.org": (550, b"no such user")}), False),
        (AnymailAPIError("server error", status_code=500), False),
        (ConnectionRefusedError(), False),
    ],
)
def test_only_a_421_or_a_429_asks_to_slow_down(error, slow_down):
    assert pacing.asks_to_slow_down(error) is slow_down


def test_a_request_to_slow_down_halves_what_is_in_flight_and_successes_win_it_back():
    limit = pacing.InFlight(8)
    for _ in range(8):
        limit.acquire()
    limit.release(slow_down=True)

    assert limit.allowed == 4
    for _ in range(7):
        limit.release()
    # Back by one for each run of successes as long as the limit, never past the most.
    assert limit.allowed == 5
    for _ in range(40):
        limit.acquire()
        limit.release()
    assert limit.allowed == 8
    limit.acquire()
    limit.release(slow_down=True)
    limit.acquire()
    limit.release(slow_down=True)
    assert limit.allowed == 2


def test_a_process_remembers_a_slow_down_for_its_next_batch(settings):
    settings.PAPERBOY_SEND_CONCURRENCY = 8
    first = pacing.in_flight()
    first.acquire()
    first.release(slow_down=True)

    assert pacing.in_flight().allowed == 4


class Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self, now: float):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


@pytest.mark.parametrize("counted_in", ["database", "cache"])
def test_the_cap_on_messages_per_second_holds_across_processes(counted_in):
    clock = Clock(1_000_000.25)
    # Two processes' limits, counting in the same place.
    first = pacing.Rate(3, counted_in, clock=clock, sleep=clock.sleep)
    second = pacing.Rate(3, counted_in, clock=clock, sleep=clock.sleep)

    for rate in (first, second, first):
        rate.take()
    assert clock.slept == []
    second.take()  # the fourth in this second waits for the next one
    first.take()

    assert clock.slept == [0.75]
    if counted_in == "database":
        sent = dict(SendingSecond.objects.values_list("second", "sent"))
        assert sent == {1_000_000: 3, 1_000_001: 2}


def test_the_cap_is_counted_in_redis_where_the_cache_is_redis(settings):
    settings.PAPERBOY_SEND_RATE = 10
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # never connected to here
        }
    }
    assert pacing.rate().counted_in == "cache"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert pacing.rate().counted_in == "database"
