"""Sending digests: a batch of scheduled ones, or one now from the admin.

The work is batched for throughput: a whole batch of digests is composed in a fixed
number of queries, rendered from per-paper parts cached in the process, and written
as SMTP bytes (mailing.mime). What stays per digest are the state changes that
exactly-once needs (digest.ledger).

Crashes: a digest is committed as "sending" (with its ledger) only once the mail server
holds the whole message but the dot that ends it (mailing.smtp), or, through an ESP,
just before the request. A worker killed before that leaves it "claimed", and it is
sent again; killed after, it stays "sending" and is never sent again, though it was
most likely delivered. A task lost with its worker or with the broker is found by its
lease running out (digest.scheduling.sweep). No transaction is open while a mail server
or an ESP is talked to: on SQLite that would hold the one write lock for every other
writer.
"""

import datetime as dt
import logging
import smtplib
import threading
import time
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field

from anymail.exceptions import AnymailError
from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    close_old_connections,
    connection,
    transaction,
)
from django.utils import timezone

from digest import ledger, pacing, rendering
from digest.compose import compose, compose_many
from digest.ledger import Failure, Start
from digest.models import Digest, DigestItem
from digest.previews import unsaved
from mailing import retry, transport
from mailing.transport import Outbox, OutcomeUnknown
from subscriptions.deliverability import is_suppressed, suppress, suppressed_among
from subscriptions.models import Subscriber, Suppression

log = logging.getLogger(__name__)

STAGES = ("compose", "render", "build", "send", "record")


@dataclass
class BatchResult:
    owner: str = ""
    sent: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    last_error: str = ""
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def timing(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def merge(self, other: "BatchResult") -> None:
        for name in ("sent", "skipped", "failed", "retry", "unknown"):
            getattr(self, name).extend(getattr(other, name))
            getattr(self, name).sort()
        for stage, seconds in other.seconds.items():
            self.seconds[stage] += seconds
        self.last_error = other.last_error or self.last_error

    def unknown_outcome(self, digest: Digest, exc: Exception) -> None:
        ledger.unknown(digest, exc, self.owner)
        self.unknown.append(digest.pk)

    def failure(self, digest: Digest, exc: Exception, started: bool) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        outcome = ledger.failed(digest, exc, self.owner, started)
        if outcome is Failure.RETRY:
            self.retry.append(digest.pk)
        elif outcome is Failure.FAILED:
            self.failed.append(digest.pk)


def send_batch(
    digest_ids: list[int], now: dt.datetime | None = None, owner: str | None = None
) -> BatchResult:
    """Send the claimed digests among ``digest_ids`` that this run (``owner``, a new
    one unless given) can take, over up to PAPERBOY_SEND_CONCURRENCY connections at
    once (digest.pacing).

    Composition is done for the whole batch up front; then each connection takes the
    next digest, which goes from claimed to sending to its outcome. An error before the
    message was handed over (the mail server refusing or down, the database busy) puts
    the digest back to "claimed" for the retry. No answer after it was handed over
    leaves it "unknown". A connection's failure touches only its own digest.
    """
    now = now or timezone.now()
    result = BatchResult(owner=owner or ledger.new_owner())
    renew = ledger.Renewal(result.owner)
    ledger.take(digest_ids, result.owner, timezone.now())
    with result.timing("compose"):
        digests = list(
            Digest.objects.filter(
                pk__in=digest_ids, status=Digest.Status.CLAIMED, owner=result.owner
            )
            .select_related("subscriber")
            .order_by("pk")
        )
        subscribers = [digest.subscriber for digest in digests]
        suppressed = suppressed_among([subscriber.email for subscriber in subscribers])
        composed = compose_many(subscribers, until=now, exclude=[d.pk for d in digests])
    batch = Batch(digests, composed, suppressed, renew, pacing.in_flight(), pacing.rate())
    lanes = [Lane(batch, BatchResult(owner=result.owner)) for _ in range(_lanes(len(digests)))]
    if len(lanes) == 1:
        lanes[0].run()
    else:
        threads = [threading.Thread(target=lane.run_in_thread) for lane in lanes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # This thread's connection sat idle through the batch: the server may have
        # dropped it meanwhile (CONN_HEALTH_CHECKS looks before its next use).
        close_old_connections()
    for lane in lanes:
        result.merge(lane.result)
    errors = [lane.error for lane in lanes if lane.error is not None]
    log.info(
        "sent batch: %d digests (%d sent, %d skipped, %d failed, %d to retry, %d unknown) "
        "in %.3fs: compose %.3fs, render %.3fs, build %.3fs, send %.3fs, record %.3fs",
        len(digests),
        len(result.sent),
        len(result.skipped),
        len(result.failed),
        len(result.retry),
        len(result.unknown),
        sum(result.seconds.values()),
        *(result.seconds[stage] for stage in STAGES),
    )
    if errors:
        raise errors[0]
    return result


def _lanes(digests: int) -> int:
    """Connections for a batch. One inside the caller's transaction (an eager task, a
    test): other threads' database connections could not see what it holds."""
    if connection.in_atomic_block:
        return 1
    return max(1, min(settings.PAPERBOY_SEND_CONCURRENCY, digests))


@dataclass
class Batch:
    """What a batch's connections share: the digests still to send (each taken once),
    what was composed for them, and the pace."""

    digests: list[Digest]
    composed: dict[int, list]
    suppressed: set[str]
    renew: ledger.Renewal
    in_flight: pacing.InFlight
    rate: pacing.Rate | None
    held: list[int] = field(init=False)
    queue: deque = field(init=False)
    # Taken by a connection for its work in Python (rendering, building, recording) and
    # from the commit of "sending" to the dot, and let go while it waits on the network.
    # So the thread that has just committed a digest is never kept from writing its dot
    # by another thread's rendering: the interpreter would let that one run for up to
    # its switch interval (5 ms), and a worker killed in that wait loses the digest.
    turn: threading.Lock = field(init=False)

    def __post_init__(self):
        self.held = [digest.pk for digest in self.digests]
        self.queue = deque(self.digests)
        self.turn = threading.Lock()

    def next(self) -> Digest | None:
        try:
            return self.queue.popleft()
        except IndexError:
            return None


class Lane:
    """One connection to the mail server or ESP, sending the batch's next digest until
    none is left."""

    def __init__(self, batch: Batch, result: BatchResult):
        self.batch, self.result = batch, result
        self.outbox = Outbox()
        self.error: BaseException | None = None
        # A digest that went out is recorded "sent" in the same commit that starts the
        # next one: one commit per digest, not two. Until then it is "sending", which
        # is already durable and never sent again.
        self.pending: tuple[Digest, str] | None = None
        self.holding = False  # the batch's turn (Batch.turn)

    @contextmanager
    def turn(self):
        self.batch.turn.acquire()
        self.holding = True
        try:
            yield
        finally:
            self.end_turn()

    def end_turn(self) -> None:
        if self.holding:
            self.holding = False
            self.batch.turn.release()

    def run_in_thread(self) -> None:
        try:
            self.run()
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()  # this thread's own

    def run(self) -> None:
        try:
            while (digest := self.batch.next()) is not None:
                self.send(digest)
        finally:
            if self.pending is not None:
                with self.turn():
                    ledger.sent(*self.pending, self.result.owner)
            self.outbox.close()

    def send(self, digest: Digest) -> None:
        result, outbox = self.result, self.outbox
        finishing, self.pending = self.pending, None
        started = on_the_wire = False
        try:
            with self.turn():
                self.batch.renew(self.batch.held)
                picks = self.batch.composed[digest.subscriber_id]
                blocked = digest.subscriber.email.lower() in self.batch.suppressed
                message = None
                if goes_out := ledger.goes_out(digest, picks, blocked):
                    with result.timing("render"):
                        rendered = rendering.render_digest(digest, picks)
                    with result.timing("build"):
                        message = rendering.message(digest, rendered, raw=outbox.raw)
            if goes_out:
                self.batch.in_flight.acquire()
                on_the_wire = True
                if self.batch.rate is not None:
                    self.batch.rate.take()
                # The message first, all but its final dot, and outside any
                # transaction; then the record of it going out, committed before the dot.
                with result.timing("send"):
                    outbox.stage(message)
            with self.turn():
                with result.timing("record"):
                    start = ledger.start(digest, picks, blocked, finishing, result.owner)
                finishing = None  # committed with it
                if start is not Start.SEND:
                    if message is not None:
                        outbox.close()  # mid-DATA: the server discards what it has
                    if start is Start.SETTLED:
                        result.skipped.append(digest.pk)
                    return
                started = True
                with result.timing("send"):
                    # The turn ends with the dot: the verdict is waited for without it.
                    message_id = outbox.release(message, handed_over=self.end_turn)
        except OutcomeUnknown as exc:
            result.unknown_outcome(digest, exc)
            outbox.close()
        except Exception as exc:
            if on_the_wire:
                self.batch.in_flight.release(slow_down=pacing.asks_to_slow_down(exc))
                on_the_wire = False
            if isinstance(exc, DatabaseError) and not connection.in_atomic_block:
                # The connection may be dead (a restart, a failover, a killed backend):
                # the writes below go on a new one, so that the digest delivered just
                # before is recorded "sent", not left "sending".
                connection.close()
            if finishing is not None:
                ledger.sent(*finishing, result.owner)  # rolled back with this one's failure
            if started and not isinstance(exc, smtplib.SMTPException | AnymailError):
                # Not a refusal from the server or the ESP, and the message may be out:
                # never sent twice.
                result.unknown_outcome(digest, exc)
            else:
                result.failure(digest, exc, started)
            # smtplib drops the connection on some errors (a 421, say); the next message
            # then opens a new one instead of failing on a dead socket.
            outbox.close()
        else:
            self.pending = (digest, message_id)
            result.sent.append(digest.pk)
        finally:
            if on_the_wire:
                self.batch.in_flight.release()


class CannotSend(Exception):
    """The digest may not go to this subscriber now; the message says why."""


def adhoc_period(now: dt.datetime) -> str:
    """A period key no schedule produces ("2026-11-28", "2026-W48"), within 16 characters."""
    return f"t{now:%Y%m%d%H%M%S}"


def send_test(subscriber: Subscriber, to: str | None, now: dt.datetime) -> int:
    """Send the digest the subscriber would get now; the number of papers sent, 0 when
    nothing is new (and nothing was sent).

    With an address (a curator's), a copy with "[Test] " before the subject, recorded
    nowhere: those papers still go out in the subscriber's next digest. Without one,
    a real delivery to the subscriber, recorded like a scheduled one (a sent digest and
    its ledger entries), so those papers never come again. Mail errors propagate.
    """
    if to is None:
        return _send_now(subscriber, now)
    picks = compose(subscriber, until=now)
    if not picks:
        return 0
    message = rendering.build_digest(unsaved(subscriber, now), picks)
    message.subject = f"[Test] {message.subject}"
    message.to = [to]
    # A mail client's "unsubscribe" button on the curator's copy would unsubscribe the
    # subscriber.
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post"):
        message.extra_headers.pop(name, None)
    transport.send_now(message)
    return len(picks)


def _send_now(subscriber: Subscriber, now: dt.datetime) -> int:
    if subscriber.status != Subscriber.Status.ACTIVE:
        raise CannotSend(f"{subscriber.email} is {subscriber.get_status_display().lower()}.")
    if is_suppressed(subscriber.email):
        raise CannotSend(f"{subscriber.email} is on the suppression list.")
    try:
        with transaction.atomic():
            digest = Digest.objects.create(
                subscriber=subscriber,
                period=adhoc_period(now),
                scheduled_for=now,
                status=Digest.Status.SENDING,
                attempts=1,
            )
    except IntegrityError:
        raise CannotSend("A digest was sent to them this very second; try again.") from None
    try:
        message = _prepare(digest, now)
    except IntegrityError:
        # A scheduled digest recorded some of these papers in the ledger meanwhile.
        digest.delete()
        raise CannotSend("Their scheduled digest is going out right now; try again.") from None
    if message is None:
        # Nothing went out, and a skipped digest would move the start of their next
        # digest's window: leave no trace.
        digest.refresh_from_db(fields=["status", "last_error"])
        digest.delete()
        if digest.status == Digest.Status.SUPPRESSED:
            raise CannotSend(f"{subscriber.email} was suppressed meanwhile.")
        if digest.last_error:
            raise CannotSend(f"Not sent: {digest.last_error}.")
        return 0
    try:
        transport.send_now(message)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        DigestItem.objects.filter(digest=digest).delete()
        ledger.set_status(digest, Digest.Status.FAILED, error)
        if retry.is_permanent_refusal(exc):
            suppress(subscriber.email, Suppression.Reason.REFUSED, detail=error)
        raise
    ledger.set_status(
        digest,
        Digest.Status.SENT,
        message_id=transport.message_id(message),
        sent_at=timezone.now(),
    )
    return DigestItem.objects.filter(digest=digest).count()


def _prepare(digest: Digest, now: dt.datetime):
    """Compose and record one digest; its message, or None when there is none."""
    picks = compose(digest.subscriber, until=now, digest=digest)
    if not ledger.settle(digest, picks, is_suppressed(digest.subscriber.email)):
        return None
    ledger.add_items(digest, picks)
    return rendering.build_digest(digest, picks)
