"""How fast digests go out: how many messages a worker process has in flight, and how
many all processes together send per second.

A mail server 20 ms away costs a message two round trips at least (the envelope and the
body, then the dot, whose answer the exactly-once protocol waits for). One connection
at a time would spend most of its time waiting, so each process sends over several
connections at once (``PAPERBOY_SEND_CONCURRENCY``). An ESP's quota is per second for
the whole account: ``PAPERBOY_SEND_RATE`` caps all processes together, counted in Redis
or, on the embedded default, in the database. A 421 or a 429 (the server or the ESP
asking to slow down) halves the process's messages in flight; each run of successes as
long as the limit adds one back (additive increase, multiplicative decrease).
"""

import smtplib
import threading
import time
from collections.abc import Callable

from anymail.exceptions import AnymailAPIError
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import IntegrityError, transaction
from django.db.models import F

from digest.models import SendingSecond

# Seconds of counts kept in the database; older ones are deleted as new seconds start.
KEEP_SECONDS = 60


def asks_to_slow_down(exc: BaseException) -> bool:
    """A 421 (the server is busy, closing the connection) or an ESP's 429."""
    if isinstance(exc, AnymailAPIError):
        return exc.status_code == 429
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 421


class InFlight:
    """The messages a batch has on the wire at once: at most ``most``, fewer after a
    request to slow down."""

    def __init__(self, most: int, allowed: int | None = None):
        self.most = most
        self.allowed = min(most, allowed or most)
        self.in_flight = self.successes = 0
        self.changed = threading.Condition()

    def acquire(self) -> None:
        with self.changed:
            while self.in_flight >= self.allowed:
                self.changed.wait()
            self.in_flight += 1

    def release(self, slow_down: bool = False) -> None:
        with self.changed:
            self.in_flight -= 1
            if slow_down:
                self.allowed = max(1, self.allowed // 2)
                self.successes = 0
            elif self.allowed < self.most:
                self.successes += 1
                if self.successes >= self.allowed:
                    self.allowed += 1
                    self.successes = 0
            global _allowed
            _allowed = self.allowed
            self.changed.notify_all()


# The process's last limit: a slow-down outlives the batch that met it (a worker
# process runs one batch after another) and recovers as messages go out.
_allowed: int | None = None


def in_flight() -> InFlight:
    return InFlight(settings.PAPERBOY_SEND_CONCURRENCY, _allowed)


class Rate:
    """At most ``per_second`` messages in each second of the clock, over all processes.

    ``take`` blocks until the current second has a message to spare. Counting per
    second of the clock lets a burst straddle two seconds, but over any run of seconds
    the count stays within the cap.
    """

    def __init__(
        self,
        per_second: int,
        counted_in: str = "database",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.per_second, self.counted_in = per_second, counted_in
        self.count = self._in_cache if counted_in == "cache" else self._in_database
        self.clock, self.sleep = clock, sleep

    def take(self) -> None:
        while True:
            now = self.clock()
            second = int(now)
            if self.count(second):
                return
            self.sleep(second + 1 - now)

    # Each counts one message in ``second``; False when that second is full.
    def _in_cache(self, second: int) -> bool:
        cache, key = caches["default"], f"paperboy:sent:{second}"
        cache.add(key, 0, timeout=KEEP_SECONDS)
        return cache.incr(key) <= self.per_second  # Redis's INCR: atomic for all processes

    def _in_database(self, second: int) -> bool:
        seconds = SendingSecond.objects.filter(second=second, sent__lt=self.per_second)
        for _ in range(2):
            if seconds.update(sent=F("sent") + 1):
                return True
            try:
                with transaction.atomic():
                    SendingSecond.objects.create(second=second, sent=1)
            except IntegrityError:
                continue  # another process started this second meanwhile: count in it
            SendingSecond.objects.filter(second__lt=second - KEEP_SECONDS).delete()
            return True
        return False


def rate() -> Rate | None:
    """The cap on messages per second for all processes, counted in Redis where the
    cache is Redis, else in the database; None when there is none."""
    if not settings.PAPERBOY_SEND_RATE:
        return None
    shared = isinstance(caches["default"], RedisCache)
    return Rate(settings.PAPERBOY_SEND_RATE, "cache" if shared else "database")
