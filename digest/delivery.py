"""The scheduling pass and the sending of digests.

Exactly once per period rests on two database facts, not on Celery: a digest row is
unique per subscriber and period, and only the process whose conditional UPDATE
moved a subscriber's next_due_at may create it. A batch then sends only the digests
it moves from "claimed" to "sending" itself, so a duplicated tick, a second beat, a
redelivered or retried task never sends a digest twice.
"""

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass, field

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from django.core import mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from digest import emails
from digest.compose import compose
from digest.models import Digest, DigestItem
from subscriptions.deliverability import is_suppressed, suppress
from subscriptions.models import Subscriber, Suppression
from subscriptions.schedule import next_due, period_key

log = logging.getLogger(__name__)

CLAIM_PAGE = 500
SEND_BATCH = 100
# A claimed digest no task has picked up for this long was lost (say, a crash between
# claiming and enqueuing); the next pass enqueues it again. Digests a task has tried
# (attempts > 0) are waiting out a retry, and stay with that task.
STALE_CLAIM = dt.timedelta(minutes=30)


def claim(subscriber: Subscriber, now: dt.datetime) -> Digest | None:
    """Claim the subscriber's due period, or None if another process already did."""
    due = subscriber.next_due_at
    with transaction.atomic():
        moved = Subscriber.objects.filter(
            pk=subscriber.pk, status=Subscriber.Status.ACTIVE, next_due_at=due
        ).update(next_due_at=next_due(subscriber, max(now, due)))
        if moved != 1:
            return None
        try:
            with transaction.atomic():
                return Digest.objects.create(
                    subscriber=subscriber, period=period_key(subscriber, due), scheduled_for=due
                )
        except IntegrityError:
            # This period already has its digest (the subscriber moved their hour within it).
            return None


def claim_due(now: dt.datetime) -> list[int]:
    """Claim every due subscriber, a page at a time (keyset pagination, bounded memory)."""
    claimed: list[int] = []
    last_pk = 0
    while page := list(
        Subscriber.objects.due(now).filter(pk__gt=last_pk).order_by("pk")[:CLAIM_PAGE]
    ):
        last_pk = page[-1].pk
        claimed += [digest.pk for subscriber in page if (digest := claim(subscriber, now))]
    return claimed


def stale_claims(now: dt.datetime) -> list[int]:
    return list(
        Digest.objects.filter(
            status=Digest.Status.CLAIMED, attempts=0, created_at__lt=now - STALE_CLAIM
        ).values_list("pk", flat=True)[:10_000]
    )


def batches(ids: list[int], size: int = SEND_BATCH) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


@dataclass
class BatchResult:
    sent: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    last_error: str = ""


def _start(digest_id: int) -> Digest | None:
    """Move a claimed digest to "sending"; None if another task has it."""
    moved = Digest.objects.filter(pk=digest_id, status=Digest.Status.CLAIMED).update(
        status=Digest.Status.SENDING, attempts=F("attempts") + 1
    )
    if moved != 1:
        return None
    return Digest.objects.select_related("subscriber").get(pk=digest_id)


def _finish(digest: Digest, status: str, error: str = "", **fields) -> None:
    Digest.objects.filter(pk=digest.pk).update(status=status, last_error=error[:2000], **fields)


def _prepare(digest: Digest, now: dt.datetime):
    """Compose and record the ledger; the message to send, or None when there is none."""
    subscriber = digest.subscriber
    # The suppression list is checked at send time too: a bounce or complaint may have
    # come in after this digest was claimed.
    if subscriber.status == Subscriber.Status.SUPPRESSED or is_suppressed(subscriber.email):
        _finish(digest, Digest.Status.SUPPRESSED)
        return None
    if subscriber.status != Subscriber.Status.ACTIVE:
        _finish(digest, Digest.Status.SKIPPED, "the subscriber is no longer active")
        return None
    picks = compose(subscriber, until=now, digest=digest)
    if not picks:
        _finish(digest, Digest.Status.SKIPPED)
        return None
    with transaction.atomic():
        DigestItem.objects.bulk_create(
            DigestItem(
                digest=digest,
                subscriber=subscriber,
                paper=pick.paper,
                position=position,
                score=pick.score,
                reason=pick.reason,
                topic_ids=[topic.pk for topic in pick.topics],
            )
            for position, pick in enumerate(picks, 1)
        )
    return emails.build_digest(digest, picks)


def _permanent_recipient_failure(exc: BaseException) -> bool:
    if isinstance(exc, AnymailRecipientsRefused):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code >= 500 for code, _ in exc.recipients.values())
    return False


def send_batch(digest_ids: list[int], now: dt.datetime | None = None) -> BatchResult:
    """Send the claimed digests among ``digest_ids`` over one connection.

    One digest at a time goes from claimed to sending to its outcome, so an error
    (the mail server down, the database busy) leaves at most the digest in hand in
    doubt, and that one goes back to "claimed" for the retry.
    """
    now = now or timezone.now()
    result = BatchResult()
    # Opened by the first send (and again after a failure), closed at the end.
    connection = mail.mailers.default
    try:
        for digest_id in digest_ids:
            digest = _start(digest_id)
            if digest is None:
                continue
            try:
                message = _prepare(digest, now)
                if message is None:
                    result.skipped.append(digest.pk)
                    continue
                connection.send_messages([message])
            except Exception as exc:
                _failed(digest, exc, result)
                # smtplib drops the connection on some errors (a 421, say); the next
                # message then opens a new one instead of failing on a dead socket.
                connection.close()
            else:
                _finish(
                    digest,
                    Digest.Status.SENT,
                    message_id=_message_id(message),
                    sent_at=timezone.now(),
                )
                result.sent.append(digest.pk)
    finally:
        connection.close()
    return result


def _message_id(message) -> str:
    """The id the ESP's webhooks will report: anymail's, else our Message-ID header."""
    status = getattr(message, "anymail_status", None)
    esp_id = getattr(status, "message_id", None)
    return esp_id if isinstance(esp_id, str) else message.extra_headers["Message-ID"]


def _failed(digest: Digest, exc: Exception, result: BatchResult) -> None:
    error = f"{type(exc).__name__}: {exc}"
    result.last_error = error
    if emails.is_transient(exc) or not isinstance(exc, smtplib.SMTPException | AnymailError):
        # Mail trouble worth waiting out, or our own (say, the database was busy while
        # composing): either way nothing went out, so the digest is tried again.
        DigestItem.objects.filter(digest=digest).delete()
        _finish(digest, Digest.Status.CLAIMED, error)
        result.retry.append(digest.pk)
        return
    DigestItem.objects.filter(digest=digest).delete()
    _finish(digest, Digest.Status.FAILED, error)
    result.failed.append(digest.pk)
    if _permanent_recipient_failure(exc):
        suppress(digest.subscriber.email, Suppression.Reason.REFUSED, detail=error)
    log.warning("digest %s to subscriber %s failed: %s", digest.pk, digest.subscriber_id, error)


def give_up(digest_ids: list[int], error: str) -> None:
    """After the last retry: failed, so that no later pass picks them up again."""
    DigestItem.objects.filter(digest__in=digest_ids).delete()
    Digest.objects.filter(pk__in=digest_ids, status=Digest.Status.CLAIMED).update(
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
