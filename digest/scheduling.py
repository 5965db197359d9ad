"""The scheduling pass: claim each due subscriber's period once, and find the digests
whose task was lost.

Exactly once per period rests on database facts, not on Celery: a digest row is unique
per subscriber and period, and only the process that holds a due subscriber's row
(locked, or on SQLite the one writer) moves its next_due_at and creates that period's
digest. Claiming goes a page of subscribers at a time, in a few statements per page.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import transaction

from digest.ledger import lease
from digest.models import Digest
from subscriptions.models import Subscriber
from subscriptions.schedule import next_due, period_key

CLAIM_PAGE = 1000
# Digests per sending task.
BATCH_SIZE = 100
# At most this many lost digests are queued again per scheduling pass.
SWEEP_LIMIT = 10_000


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


def batches(ids: list[int], size: int = BATCH_SIZE) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
