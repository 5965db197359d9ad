"""The scheduling pass and the sending of digests.

Exactly once per period rests on database facts, not on Celery: a digest row is unique
per subscriber and period, and only the process that holds a due subscriber's row
(locked, or on SQLite the one writer) moves its next_due_at and creates that period's
digest. A batch then sends only the digests it moves from "claimed" to "sending"
itself, so a duplicated tick, a second beat, a redelivered or retried task never sends
a digest twice.

The work is batched for throughput: claims a page of subscribers at a time in a few
statements, composes a whole batch of digests in a fixed number of queries, renders
from per-paper parts cached in the process, and writes SMTP messages as bytes
(digest.mime). What stays per digest are the state changes that exactly-once needs.

Ownership: a sending run takes the claimed digests no other live run holds
(``take``), under its task's id, and renews their lease as it goes. Every change after
that is a compare-and-set on the status and that token, so a run that lost a digest
(its lease ran out and a task queued again took it) changes nothing of it, whatever
its mail server answers; a digest "sending", "sent" or "unknown" never goes back. A
copy of the same task (redelivered, or its retry) shares the token and takes the
digests back at once; two copies running at once still start each digest once, the
status deciding.

Crashes: a digest is committed as "sending" (with its ledger) only once the mail server
holds the whole message but the dot that ends it (digest.smtp), or, through an ESP,
just before the request. A worker killed before that leaves it "claimed", and it is
sent again; killed after, it stays "sending" and is never sent again, though it was
most likely delivered. A task lost with its worker or with the broker is found by its
lease running out (``sweep``). No transaction is open while a mail server or an ESP
is talked to: on SQLite that would hold the one write lock for every other writer.
"""

import datetime as dt
import json
import logging
import smtplib
import ssl
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core import mail
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from urllib3.exceptions import NewConnectionError

from digest import emails, mime, smtp
from digest.compose import Pick, compose, compose_many
from digest.models import Digest, DigestItem
from subscriptions.deliverability import is_suppressed, suppress, suppressed_among
from subscriptions.models import Subscriber, Suppression
from subscriptions.schedule import next_due, period_key

log = logging.getLogger(__name__)

CLAIM_PAGE = 1000
SEND_BATCH = 100
# At most this many lost digests are queued again per scheduling pass.
SWEEP_LIMIT = 10_000


def lease(now: dt.datetime, extra: float = 0) -> dt.datetime:
    return now + dt.timedelta(seconds=settings.PAPERBOY_CLAIM_LEASE + extra)


def _claim_locked(subscribers: list[Subscriber], now: dt.datetime) -> list[int]:
    """Move each subscriber's next_due_at on and create the period's digest; the ids of
    the digests created. Call with the subscribers' rows locked, in a transaction."""
    due = {subscriber.pk: subscriber.next_due_at for subscriber in subscribers}
    periods = {}
    for subscriber in subscribers:
        periods[subscriber.pk] = period_key(subscriber, subscriber.next_due_at)
        subscriber.next_due_at = next_due(subscriber, max(now, subscriber.next_due_at))
    Subscriber.objects.bulk_update(subscribers, ["next_due_at"])
    # A period that has its digest already (the subscriber moved their hour within it)
    # gets no second one.
    taken = set(
        Digest.objects.filter(subscriber_id__in=due, period__in=set(periods.values())).values_list(
            "subscriber_id", "period"
        )
    )
    leased_until = lease(now)
    created = Digest.objects.bulk_create(
        Digest(subscriber_id=pk, period=period, scheduled_for=due[pk], leased_until=leased_until)
        for pk, period in periods.items()
        if (pk, period) not in taken
    )
    return [digest.pk for digest in created]


def claim(subscriber: Subscriber, now: dt.datetime) -> Digest | None:
    """Claim the subscriber's due period, or None if another process already did."""
    with transaction.atomic():
        locked = list(
            Subscriber.objects.select_for_update()
            .active()
            .filter(pk=subscriber.pk, next_due_at=subscriber.next_due_at)
        )
        ids = _claim_locked(locked, now) if locked else []
    return Digest.objects.get(pk=ids[0]) if ids else None


def claim_pages(now: dt.datetime) -> Iterator[list[int]]:
    """Claim every due subscriber, a page at a time, yielding each page's digest ids
    as soon as it is committed (keyset pagination: bounded memory at any size).

    Rows another process holds are skipped, not waited for: that process claims them.
    """
    last_pk = 0
    while True:
        with transaction.atomic():
            page = list(
                Subscriber.objects.due(now)
                .filter(pk__gt=last_pk)
                .order_by("pk")
                .select_for_update(skip_locked=True)[:CLAIM_PAGE]
            )
            if not page:
                return
            ids = _claim_locked(page, now)
        last_pk = page[-1].pk
        yield ids


def claim_due(now: dt.datetime) -> list[int]:
    return [digest_id for page in claim_pages(now) for digest_id in page]


@dataclass
class Sweep:
    requeue: list[int]
    unknown: int


def sweep(now: dt.datetime, queue_empty: bool) -> Sweep:
    """Digests whose task was lost: a worker killed outright (Redis would give its task
    to another only after the visibility timeout), Redis restarted without persistence,
    a crash between claiming and queuing.

    A claimed digest whose lease ran out is queued again, its owner cleared for the
    task queued now, and its lease renewed so that the next pass leaves it to that
    task. One a run had taken is queued again at once: that run renews its leases as
    it goes, so it stopped. One still waiting for its first run is queued again only
    when nothing waits in the queue: behind a long queue a lease runs out with its task
    still waiting, and queuing it again would only pile up work. Sending twice is
    impossible either way (a run sends only what it owns and moves out of "claimed").

    A digest left "sending" past its lease was handed to the mail server by a worker
    that died before it heard the answer: it is recorded as unknown, not sent again.
    """
    unknown = Digest.objects.filter(status=Digest.Status.SENDING, leased_until__lt=now).update(
        status=Digest.Status.UNKNOWN,
        last_error="the worker stopped after handing it to the mail server and before "
        "the answer; it may have been delivered, so it is not sent again",
    )
    lost = Digest.objects.filter(status=Digest.Status.CLAIMED, leased_until__lt=now)
    if not queue_empty:
        lost = lost.exclude(owner="")
    with transaction.atomic():
        ids = list(
            lost.select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", flat=True)[:SWEEP_LIMIT]
        )
        Digest.objects.filter(pk__in=ids).update(owner="", leased_until=lease(now))
    return Sweep(ids, unknown)


def new_owner() -> str:
    return uuid.uuid4().hex


def take(digest_ids: list[int], owner: str, now: dt.datetime) -> None:
    """Make ``owner`` the holder of those claimed digests among ``digest_ids`` that no
    other live run holds: still waiting for their first run, held by ``owner`` already
    (the same task redelivered after its pool process died, or retried after losing
    its database connection), or whose run's lease ran out."""
    Digest.objects.filter(pk__in=digest_ids, status=Digest.Status.CLAIMED).filter(
        Q(owner="") | Q(owner=owner) | Q(leased_until__lt=now)
    ).update(owner=owner, leased_until=lease(now))


def renew(digest_ids: list[int], owner: str, now: dt.datetime, extra: float = 0) -> None:
    """``owner`` still answers for its digests among ``digest_ids`` (``extra`` seconds
    more while its task waits to retry: the retry, the same task, takes them again)."""
    Digest.objects.filter(
        pk__in=digest_ids,
        owner=owner,
        status__in=[Digest.Status.CLAIMED, Digest.Status.SENDING],
    ).update(leased_until=lease(now, extra))


def batches(ids: list[int], size: int = SEND_BATCH) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


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


# The statements each digest makes, in plain SQL: through the ORM they cost about
# 1 ms of CPU more per digest, a tenth of the whole run at 100,000 digests.
def _execute(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.format(digest=Digest._meta.db_table, item=DigestItem._meta.db_table), params
        )
        return cursor.rowcount


def _start(digest_id: int, owner: str) -> bool:
    """Move a claimed digest that ``owner`` holds to "sending"; False if it does not."""
    moved = _execute(
        "UPDATE {digest} SET status = %s, attempts = attempts + 1, leased_until = %s "
        "WHERE id = %s AND status = %s AND owner = %s",
        [
            Digest.Status.SENDING,
            connection.ops.adapt_datetimefield_value(lease(timezone.now())),
            digest_id,
            Digest.Status.CLAIMED,
            owner,
        ],
    )
    return moved == 1


def _finish(digest: Digest, status: str, error: str = "", **fields) -> None:
    Digest.objects.filter(pk=digest.pk).update(status=status, last_error=error[:2000], **fields)


# A digest the server accepted is "sent" even if a scheduling pass, seeing its lease
# run out meanwhile, recorded it "unknown".
_SENT = (
    "UPDATE {digest} SET status = %s, last_error = '', message_id = %s, sent_at = %s "
    "WHERE id = %s AND owner = %s AND status IN (%s, %s)"
)


def _sent_params(finishing: tuple[Digest, str] | None, owner: str) -> list:
    digest, message_id = finishing if finishing is not None else (None, "")
    return [
        Digest.Status.SENT,
        message_id,
        connection.ops.adapt_datetimefield_value(timezone.now()),
        digest.pk if digest is not None else None,
        owner,
        Digest.Status.SENDING,
        Digest.Status.UNKNOWN,
    ]


def _sent(digest: Digest, message_id: str, owner: str) -> None:
    _execute(_SENT, _sent_params((digest, message_id), owner))


def _begin(
    digest: Digest,
    picks: list[Pick],
    suppressed: bool,
    finishing: tuple[Digest, str] | None,
    owner: str,
) -> bool | None:
    """Record the previous digest sent, take this one and record its papers in the
    ledger, in one transaction that commits just before the message is handed over.
    True to send it, False when there is nothing to send (settled as skipped or
    suppressed), None when ``owner`` does not hold it."""
    with transaction.atomic():
        if finishing is not None:
            _sent(*finishing, owner)
        if not _start(digest.pk, owner):
            return None
        if not _settle(digest, picks, suppressed):
            return False
        _record(digest, picks)
    return True


def _settle(digest: Digest, picks: list[Pick], suppressed: bool) -> bool:
    """Whether the digest goes out; if not, record why (suppressed, skipped)."""
    subscriber = digest.subscriber
    # The suppression list is checked at send time too: a bounce or complaint may have
    # come in after this digest was claimed.
    if subscriber.status == Subscriber.Status.SUPPRESSED or suppressed:
        _finish(digest, Digest.Status.SUPPRESSED)
        return False
    if subscriber.status != Subscriber.Status.ACTIVE:
        _finish(digest, Digest.Status.SKIPPED, "the subscriber is no longer active")
        return False
    if not picks:
        _finish(digest, Digest.Status.SKIPPED)
        return False
    return True


LEDGER_COLUMNS = "digest_id, subscriber_id, paper_id, position, score, reason, topic_ids"


def _ledger_values(digest: Digest, picks: list[Pick]) -> tuple[str, list]:
    """The VALUES rows of a digest's ledger: their placeholders and parameters."""
    params = []
    for position, pick in enumerate(picks, 1):
        params += [
            digest.pk,
            digest.subscriber_id,
            pick.paper.pk,
            position,
            pick.score,
            pick.reason,
            json.dumps([topic.pk for topic in pick.topics]),
        ]
    return ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(picks)), params


def _record(digest: Digest, picks: list[Pick]) -> None:
    """The ledger: these papers never go to this subscriber again."""
    placeholders, params = _ledger_values(digest, picks)
    _execute(f"INSERT INTO {{item}} ({LEDGER_COLUMNS}) VALUES {placeholders}", params)  # noqa: S608


ONE_STATEMENT_VENDORS = {"postgresql"}  # data-modifying WITH; SQLite has none

# What _begin writes when the digest goes out, as one PostgreSQL statement: one round
# trip and an implicit commit instead of BEGIN, three statements and COMMIT. Workers
# spent most of their time waiting on those round trips (py-spy, bench.digests).
_BEGIN_AT_ONCE = """
WITH finished AS (
    UPDATE {digest} SET status = %s, last_error = '', message_id = %s, sent_at = %s
    WHERE id = %s AND owner = %s AND status IN (%s, %s)
), started AS (
    UPDATE {digest} SET status = %s, attempts = attempts + 1, leased_until = %s
    WHERE id = %s AND status = %s AND owner = %s
    RETURNING id
), ledger AS (
    INSERT INTO {item} ({columns})
    SELECT digest_id, subscriber_id, paper_id, position, score, reason, topic_ids::jsonb
    FROM (VALUES {rows}) AS v ({columns})
    WHERE EXISTS (SELECT 1 FROM started)
)
SELECT count(*) FROM started
"""


def _begin_at_once(
    digest: Digest, picks: list[Pick], finishing: tuple[Digest, str] | None, owner: str
) -> bool:
    """_begin for a digest that goes out (it has picks, its subscriber is active and not
    suppressed), in one statement. True when ``owner`` holds it."""
    rows, ledger = _ledger_values(digest, picks)
    sql = _BEGIN_AT_ONCE.format(
        digest=Digest._meta.db_table,
        item=DigestItem._meta.db_table,
        columns=LEDGER_COLUMNS,
        rows=rows,
    )
    params = [
        *_sent_params(finishing, owner),
        Digest.Status.SENDING,
        connection.ops.adapt_datetimefield_value(lease(timezone.now())),
        digest.pk,
        Digest.Status.CLAIMED,
        owner,
        *ledger,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] == 1


def _prepare(digest: Digest, now: dt.datetime):
    """Compose and record one digest; its message, or None when there is none."""
    picks = compose(digest.subscriber, until=now, digest=digest)
    if not _settle(digest, picks, is_suppressed(digest.subscriber.email)):
        return None
    _record(digest, picks)
    return emails.build_digest(digest, picks)


def _permanent_recipient_failure(exc: BaseException) -> bool:
    if isinstance(exc, AnymailRecipientsRefused):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code >= 500 for code, _ in exc.recipients.values())
    return False


class Outbox:
    """The default mailer, one connection for a batch, and each message handed over in
    two steps around the commit that records it as going out: ``begin`` before it,
    ``commit`` after.

    Over SMTP a digest goes as bytes built by digest.mime, and ``begin`` sends all of
    it but the final dot (digest.smtp). Other mailers (ESPs, the file outbox, tests'
    locmem) get Django's message object, all of it in ``commit``."""

    def __init__(self):
        self.mailer = mail.mailers.default
        self.raw = isinstance(self.mailer, SMTPBackend)
        self.in_data = False

    def build(self, digest: Digest, rendered: tuple[str, str, str]):
        """The message to send: bytes over SMTP, else Django's message object."""
        if self.raw:
            return emails.digest_bytes(digest, rendered)
        return emails.build_digest(digest, rendered=rendered)

    def begin(self, digest: Digest, message) -> None:
        if not self.raw:
            return
        if self.mailer.connection is None:
            self.mailer.open()
        envelope_from = mime.address(settings.DIGEST_FROM_EMAIL)[1]
        to = mime.address(digest.subscriber.email)[1]
        self.in_data = True
        smtp.begin(self.mailer.connection, envelope_from, to, message[1])

    def commit(self, message) -> str:
        """Hand the message over; the message id the ESP's webhooks will report.
        ``smtp.OutcomeUnknown`` when it may have been delivered without a word back."""
        if not self.raw:
            try:
                self.mailer.send_messages([message])
            except AnymailRecipientsRefused:
                raise  # the ESP answered: it will not send to them
            except Exception as exc:
                if _never_reached_esp(exc):
                    raise
                raise smtp.OutcomeUnknown(f"{type(exc).__name__}: {exc}") from exc
            return _message_id(message)
        self.in_data = False
        smtp.commit(self.mailer.connection)
        return message[0]

    def close(self) -> None:
        if self.in_data and self.mailer.connection is not None:
            # Inside DATA a QUIT would be read as part of the message: drop the
            # connection instead, and the server discards what it has of it.
            self.mailer.connection.close()
            self.mailer.connection = None
        self.in_data = False
        self.mailer.close()


# Failed before the request could leave: no connection (refused, DNS, a connect
# timeout, the proxy), or a request that could not be made at all.
_BEFORE_SENDING = (
    NewConnectionError,
    requests.exceptions.ConnectTimeout,
    requests.exceptions.ProxyError,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    # A certificate that fails verification fails the handshake; other TLS errors may
    # come while the answer is read, after the request went out.
    ssl.SSLCertVerificationError,
)


def _never_reached_esp(exc: Exception) -> bool:
    """Whether an ESP call certainly did not send the message: the ESP refused it (4xx,
    429 included), or the request never left. Anything else (a 5xx, no answer, an
    answer anymail could not read, an error of another kind) may have been accepted,
    and the digest is "unknown" rather than sent twice."""
    if not isinstance(exc, AnymailError):
        return False
    if not isinstance(exc, AnymailAPIError):
        # Raised by anymail itself before any call: an address it cannot send to, a
        # feature the ESP lacks, a payload it cannot serialize, its configuration.
        return True
    if exc.status_code is not None:
        return 400 <= exc.status_code < 500
    return _caused_by(exc, _BEFORE_SENDING)


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or what it wraps (requests' ConnectionError wraps urllib3's
    MaxRetryError, whose ``reason`` is the error itself) is one of ``kinds``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, kinds):
            return True
        reason = getattr(error, "reason", None)
        wrapped = [reason, error.__cause__, error.__context__, *error.args]
        todo.extend(item for item in wrapped if isinstance(item, BaseException))
    return False


def send_batch(
    digest_ids: list[int], now: dt.datetime | None = None, owner: str | None = None
) -> BatchResult:
    """Send the claimed digests among ``digest_ids`` that this run (``owner``, a new
    one unless given) can take, over one connection.

    Composition is done for the whole batch up front; then one digest at a time goes
    from claimed to sending to its outcome. An error before the message was handed
    over (the mail server refusing or down, the database busy) puts the digest back to
    "claimed" for the retry. No answer after it was handed over leaves it "unknown".
    """
    now = now or timezone.now()
    result = BatchResult(owner=owner or new_owner())
    # Renewed well before the lease runs out, however slow the mail server; the lease
    # runs from the clock, not from ``now`` (the moment composed for).
    renew_every = settings.PAPERBOY_CLAIM_LEASE / 3
    renewed = time.monotonic()
    take(digest_ids, result.owner, timezone.now())
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
    outbox = Outbox()
    # A digest that went out is recorded "sent" in the same commit that starts the
    # next one: one commit per digest, not two. Until then it is "sending", which is
    # already durable and never sent again.
    pending: tuple[Digest, str] | None = None
    try:
        for digest in digests:
            finishing, pending = pending, None
            started = False
            try:
                if time.monotonic() - renewed > renew_every:
                    # Those put back to "claimed" for the retry too: the task renews
                    # them for its countdown, and no pass may queue them sooner.
                    renew([d.pk for d in digests], result.owner, timezone.now())
                    renewed = time.monotonic()
                picks = composed[digest.subscriber_id]
                blocked = digest.subscriber.email.lower() in suppressed
                message = None
                if picks and not blocked and digest.subscriber.status == Subscriber.Status.ACTIVE:
                    with result.timing("render"):
                        rendered = emails.render_digest(digest, picks)
                    with result.timing("build"):
                        message = outbox.build(digest, rendered)
                    # The message first, all but its final dot, and outside any
                    # transaction; then the record of it going out, committed before
                    # the dot.
                    with result.timing("send"):
                        outbox.begin(digest, message)
                with result.timing("record"):
                    if message is not None and connection.vendor in ONE_STATEMENT_VENDORS:
                        go = _begin_at_once(digest, picks, finishing, result.owner) or None
                    else:
                        go = _begin(digest, picks, blocked, finishing, result.owner)
                finishing = None  # committed with it
                if not go and message is not None:
                    outbox.close()  # mid-DATA: the server discards what it has
                if go is None:
                    continue
                if not go:
                    result.skipped.append(digest.pk)
                    continue
                started = True
                with result.timing("send"):
                    message_id = outbox.commit(message)
            except smtp.OutcomeUnknown as exc:
                _unknown(digest, exc, result)
                outbox.close()
            except Exception as exc:
                if isinstance(exc, DatabaseError) and not connection.in_atomic_block:
                    # The connection may be dead (a restart, a failover, a killed
                    # backend): the writes below go on a new one, so that the digest
                    # delivered just before is recorded "sent", not left "sending".
                    connection.close()
                if finishing is not None:
                    _sent(*finishing, result.owner)  # rolled back with this one's failure
                if started and not isinstance(exc, smtplib.SMTPException | AnymailError):
                    # Not a refusal from the server or the ESP, and the message may be
                    # out: never sent twice.
                    _unknown(digest, exc, result)
                else:
                    _failed(digest, exc, result, started)
                # smtplib drops the connection on some errors (a 421, say); the next
                # message then opens a new one instead of failing on a dead socket.
                outbox.close()
            else:
                pending = (digest, message_id)
                result.sent.append(digest.pk)
    finally:
        if pending is not None:
            _sent(*pending, result.owner)
        outbox.close()
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
        *(result.seconds[stage] for stage in ("compose", "render", "build", "send", "record")),
    )
    return result


def _message_id(message) -> str:
    """The id the ESP's webhooks will report: anymail's, else our Message-ID header."""
    status = getattr(message, "anymail_status", None)
    esp_id = getattr(status, "message_id", None)
    return esp_id if isinstance(esp_id, str) else message.extra_headers["Message-ID"]


def _unknown(digest: Digest, exc: Exception, result: BatchResult) -> None:
    """The server had the message but never answered: it may well have delivered it, so
    it is not sent again and its papers stay in the ledger. Sending it again would risk
    a duplicate in every such case to save a rare lost digest."""
    error = f"{type(exc).__name__}: {exc}"
    Digest.objects.filter(pk=digest.pk, owner=result.owner, status=Digest.Status.SENDING).update(
        status=Digest.Status.UNKNOWN,
        last_error=f"{error}; it may have been delivered, not resent"[:2000],
    )
    result.unknown.append(digest.pk)
    log.warning(
        "digest %s to subscriber %s: outcome unknown: %s", digest.pk, digest.subscriber_id, error
    )


def _failed(digest: Digest, exc: Exception, result: BatchResult, started: bool) -> None:
    """Nothing went out: back to "claimed" for the retry (mail trouble worth waiting
    out, or our own, say the database was busy), or "failed". Only while this run
    still holds the digest in the state it left it in (``started``: "sending"), and
    its ledger goes with it: another run may have sent it meanwhile."""
    error = f"{type(exc).__name__}: {exc}"
    result.last_error = error
    retry = emails.is_transient(exc) or not isinstance(exc, smtplib.SMTPException | AnymailError)
    with transaction.atomic():
        moved = Digest.objects.filter(
            pk=digest.pk,
            owner=result.owner,
            status=Digest.Status.SENDING if started else Digest.Status.CLAIMED,
        ).update(
            status=Digest.Status.CLAIMED if retry else Digest.Status.FAILED,
            last_error=error[:2000],
        )
        if moved and started:
            DigestItem.objects.filter(digest=digest).delete()
    if not moved:
        log.info("digest %s: %s, but another run has it now", digest.pk, error)
        return
    if retry:
        result.retry.append(digest.pk)
        return
    result.failed.append(digest.pk)
    if _permanent_recipient_failure(exc):
        suppress(digest.subscriber.email, Suppression.Reason.REFUSED, detail=error)
    log.warning("digest %s to subscriber %s failed: %s", digest.pk, digest.subscriber_id, error)


def give_up(digest_ids: list[int], owner: str, error: str) -> None:
    """After the last retry: failed, so that no later pass picks them up again. A
    claimed digest has no ledger rows: they are written only as it goes out."""
    Digest.objects.filter(pk__in=digest_ids, owner=owner, status=Digest.Status.CLAIMED).update(
        status=Digest.Status.FAILED, last_error=f"gave up after retries: {error}"[:2000]
    )


PREVIEW_PERIOD = "preview"


def preview(subscriber: Subscriber, now: dt.datetime) -> tuple[str, str, str] | None:
    """The digest the subscriber would get now, rendered: (subject, text, html); None
    when nothing is new. Writes nothing."""
    picks = compose(subscriber, until=now)
    if not picks:
        return None
    # Unsaved: a preview claims nothing and records nothing.
    digest = Digest(subscriber=subscriber, period=PREVIEW_PERIOD, scheduled_for=now, pk=0)
    return emails.render_digest(digest, picks)


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
    digest = Digest(subscriber=subscriber, period=PREVIEW_PERIOD, scheduled_for=now, pk=0)
    message = emails.build_digest(digest, picks)
    message.subject = f"[Test] {message.subject}"
    message.to = [to]
    # A mail client's "unsubscribe" button on the curator's copy would unsubscribe the
    # subscriber.
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post"):
        message.extra_headers.pop(name, None)
    _send_one(message)
    return len(picks)


def _send_one(message) -> None:
    connection = mail.mailers.default
    try:
        connection.send_messages([message])
    finally:
        connection.close()


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
        _send_one(message)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        DigestItem.objects.filter(digest=digest).delete()
        _finish(digest, Digest.Status.FAILED, error)
        if _permanent_recipient_failure(exc):
            suppress(subscriber.email, Suppression.Reason.REFUSED, detail=error)
        raise
    _finish(digest, Digest.Status.SENT, message_id=_message_id(message), sent_at=timezone.now())
    return DigestItem.objects.filter(digest=digest).count()


def preview_bytes(subscriber: Subscriber, now: dt.datetime) -> bytes:
    """The raw message of the digest the subscriber would get now, as an SMTP server
    receives it. Writes nothing; the benchmark's ceiling sends it."""
    picks = compose(subscriber, until=now)
    digest = Digest(subscriber=subscriber, period=PREVIEW_PERIOD, scheduled_for=now, pk=0)
    return emails.digest_bytes(digest, emails.render_digest(digest, picks))[1]
