"""The database facts that exactly-once rests on: who holds a digest, and its moves
from "claimed" to "sending" (with its papers in the ledger) to an outcome.

A sending run takes the claimed digests no other live run holds (``take``), under
its task's id, and renews their lease as it goes (``Renewal``). Every change after
that is a compare-and-set on the status and that owner, so a run that lost a digest
(its lease ran out and a task queued again took it) changes nothing of it, whatever
its mail server answers; a digest "sending", "sent" or "unknown" never goes back. A
copy of the same task (redelivered, or its retry) shares the owner and takes the
digests back at once; two copies running at once still start each digest once, the
status deciding.

The statements each digest makes are plain SQL: through the ORM they cost about 1 ms
of CPU more per digest, a tenth of the whole run at 100,000 digests.
"""

import datetime as dt
import enum
import json
import logging
import smtplib
import threading
import time
import uuid

from anymail.exceptions import AnymailError
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from digest.models import Digest, DigestItem
from digest.picks import Pick
from mailing import retry
from subscriptions.deliverability import suppress
from subscriptions.models import Subscriber, Suppression

log = logging.getLogger(__name__)


def lease(now: dt.datetime, extra: float = 0) -> dt.datetime:
    return now + dt.timedelta(seconds=settings.PAPERBOY_CLAIM_LEASE + extra)


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


class Renewal:
    """A run renews its leases every third of the lease, however slow its mail server:
    timed by the clock from when it took them, not from the moment it composes for."""

    def __init__(self, owner: str):
        self.owner = owner
        self.every = settings.PAPERBOY_CLAIM_LEASE / 3
        self.last = time.monotonic()
        self.lock = threading.Lock()  # a batch's connections share it

    def __call__(self, digest_ids: list[int]) -> None:
        with self.lock:
            if time.monotonic() - self.last <= self.every:
                return
            self.last = time.monotonic()
        # Those put back to "claimed" for the retry too: the task renews them for its
        # countdown, and no pass may queue them sooner.
        renew(digest_ids, self.owner, timezone.now())


def _execute(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.format(digest=Digest._meta.db_table, item=DigestItem._meta.db_table), params
        )
        return cursor.rowcount


# A digest the server accepted is "sent" even if a scheduling pass, seeing its lease
# run out meanwhile, recorded it "unknown".
_SENT = (
    "UPDATE {digest} SET status = %s, last_error = '', message_id = %s, sent_at = %s "
    "WHERE id = %s AND owner = %s AND status IN (%s, %s)"
)
_START = (
    "UPDATE {digest} SET status = %s, attempts = attempts + 1, leased_until = %s "
    "WHERE id = %s AND status = %s AND owner = %s"
)
LEDGER_COLUMNS = "digest_id, subscriber_id, paper_id, position, score, reason, topic_ids"

# What ``start`` writes when the digest goes out, as one PostgreSQL statement: one round
# trip and an implicit commit instead of BEGIN, three statements and COMMIT. Workers
# spent most of their time waiting on those round trips (py-spy, bench.digests).
_START_AT_ONCE = """
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
ONE_STATEMENT_VENDORS = {"postgresql"}  # data-modifying WITH; SQLite has none


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


def _start_params(digest: Digest, owner: str) -> list:
    return [
        Digest.Status.SENDING,
        connection.ops.adapt_datetimefield_value(lease(timezone.now())),
        digest.pk,
        Digest.Status.CLAIMED,
        owner,
    ]


def sent(digest: Digest, message_id: str, owner: str) -> None:
    _execute(_SENT, _sent_params((digest, message_id), owner))


def goes_out(digest: Digest, picks: list[Pick], suppressed: bool) -> bool:
    """Whether the digest has a message to send; if not, ``settle`` says why."""
    return bool(picks) and not suppressed and digest.subscriber.status == Subscriber.Status.ACTIVE


class Start(enum.Enum):
    SEND = "send"  # "sending" now, its papers in the ledger: hand the message over
    SETTLED = "settled"  # nothing to send: recorded skipped or suppressed
    LOST = "lost"  # the owner does not hold it (any more): leave it alone


def start(
    digest: Digest,
    picks: list[Pick],
    suppressed: bool,
    finishing: tuple[Digest, str] | None,
    owner: str,
) -> Start:
    """Record the previous digest sent (``finishing``), take this one to "sending" and
    its papers into the ledger, in one commit just before the message is handed over;
    or settle it when it does not go out."""
    if goes_out(digest, picks, suppressed) and connection.vendor in ONE_STATEMENT_VENDORS:
        return Start.SEND if _start_at_once(digest, picks, finishing, owner) else Start.LOST
    with transaction.atomic():
        if finishing is not None:
            sent(*finishing, owner)
        if _execute(_START, _start_params(digest, owner)) != 1:
            return Start.LOST
        if not settle(digest, picks, suppressed):
            return Start.SETTLED
        add_items(digest, picks)
    return Start.SEND


def _start_at_once(
    digest: Digest, picks: list[Pick], finishing: tuple[Digest, str] | None, owner: str
) -> bool:
    rows, ledger = _ledger_values(digest, picks)
    sql = _START_AT_ONCE.format(
        digest=Digest._meta.db_table,
        item=DigestItem._meta.db_table,
        columns=LEDGER_COLUMNS,
        rows=rows,
    )
    params = [*_sent_params(finishing, owner), *_start_params(digest, owner), *ledger]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] == 1


def set_status(digest: Digest, status: str, error: str = "", **fields) -> None:
    Digest.objects.filter(pk=digest.pk).update(status=status, last_error=error[:2000], **fields)


def settle(digest: Digest, picks: list[Pick], suppressed: bool) -> bool:
    """Whether the digest goes out; if not, record why (suppressed, skipped)."""
    subscriber = digest.subscriber
    # The suppression list is checked at send time too: a bounce or complaint may have
    # come in after this digest was claimed.
    if subscriber.status == Subscriber.Status.SUPPRESSED or suppressed:
        set_status(digest, Digest.Status.SUPPRESSED)
        return False
    if subscriber.status != Subscriber.Status.ACTIVE:
        set_status(digest, Digest.Status.SKIPPED, "the subscriber is no longer active")
        return False
    if not picks:
        set_status(digest, Digest.Status.SKIPPED)
        return False
    return True


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


def add_items(digest: Digest, picks: list[Pick]) -> None:
    """The ledger: these papers never go to this subscriber again."""
    placeholders, params = _ledger_values(digest, picks)
    _execute(f"INSERT INTO {{item}} ({LEDGER_COLUMNS}) VALUES {placeholders}", params)  # noqa: S608


def unknown(digest: Digest, exc: Exception, owner: str) -> None:
    """The server had the message but never answered: it may well have delivered it, so
    it is not sent again and its papers stay in the ledger. Sending it again would risk
    a duplicate in every such case to save a rare lost digest."""
    error = f"{type(exc).__name__}: {exc}"
    Digest.objects.filter(pk=digest.pk, owner=owner, status=Digest.Status.SENDING).update(
        status=Digest.Status.UNKNOWN,
        last_error=f"{error}; it may have been delivered, not resent"[:2000],
    )
    log.warning(
        "digest %s to subscriber %s: outcome unknown: %s", digest.pk, digest.subscriber_id, error
    )


class Failure(enum.Enum):
    RETRY = "retry"  # back to "claimed" for the task's retry
    FAILED = "failed"
    LOST = "lost"  # another run has it now: nothing changed


def failed(digest: Digest, exc: Exception, owner: str, started: bool) -> Failure:
    """Nothing went out: back to "claimed" for the retry (mail trouble worth waiting
    out, or our own, say the database was busy), or "failed". Only while ``owner``
    still holds the digest in the state it left it in (``started``: "sending"), and
    its ledger goes with it: another run may have sent it meanwhile."""
    error = f"{type(exc).__name__}: {exc}"
    again = retry.is_transient(exc) or not isinstance(exc, smtplib.SMTPException | AnymailError)
    with transaction.atomic():
        moved = Digest.objects.filter(
            pk=digest.pk,
            owner=owner,
            status=Digest.Status.SENDING if started else Digest.Status.CLAIMED,
        ).update(
            status=Digest.Status.CLAIMED if again else Digest.Status.FAILED,
            last_error=error[:2000],
        )
        if moved and started:
            DigestItem.objects.filter(digest=digest).delete()
    if not moved:
        log.info("digest %s: %s, but another run has it now", digest.pk, error)
        return Failure.LOST
    if again:
        return Failure.RETRY
    if retry.is_permanent_refusal(exc):
        suppress(digest.subscriber.email, Suppression.Reason.REFUSED, detail=error)
    log.warning("digest %s to subscriber %s failed: %s", digest.pk, digest.subscriber_id, error)
    return Failure.FAILED


def give_up(digest_ids: list[int], owner: str, error: str) -> None:
    """After the last retry: failed, so that no later pass picks them up again. A
    claimed digest has no ledger rows: they are written only as it goes out."""
    Digest.objects.filter(pk__in=digest_ids, owner=owner, status=Digest.Status.CLAIMED).update(
        status=Digest.Status.FAILED, last_error=f"gave up after retries: {error}"[:2000]
    )
