"""A scheduling pass claims each due subscriber once, one period at a time; the sweep
queues a claimed digest again only once its lease has run out, and never one that may
have been sent."""

import datetime as dt

import pytest

from digest import ledger, scheduling
from digest.models import Digest
from subscriptions.models import Subscriber
from tests.support.factories import SubscriberFactory

UTC = dt.UTC


def at(*args):
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.django_db
class TestClaiming:
    def test_a_pass_claims_each_due_subscriber_once(self):
        now = at(2026, 11, 28, 7, 0)
        due = [SubscriberFactory(timezone="Europe/Paris", next_due_at=now) for _ in range(3)]
        SubscriberFactory(next_due_at=now + dt.timedelta(minutes=1))
        SubscriberFactory(status=Subscriber.Status.PAUSED, next_due_at=now)

        claimed = scheduling.claim_due(now)
        again = scheduling.claim_due(now)

        assert len(claimed) == 3 and again == []
        assert sorted(Digest.objects.values_list("subscriber_id", flat=True)) == [s.pk for s in due]
        assert set(Digest.objects.values_list("period", flat=True)) == {"2026-11-28"}
        for sub in due:
            sub.refresh_from_db()
            assert sub.next_due_at == at(2026, 11, 29, 7, 0)

    def test_a_late_pass_skips_missed_periods_instead_of_sending_a_backlog(self):
        sub = SubscriberFactory(next_due_at=at(2026, 11, 20, 8))

        scheduling.claim_due(at(2026, 11, 28, 9))

        sub.refresh_from_db()
        assert Digest.objects.get().period == "2026-11-20"
        assert sub.next_due_at == at(2026, 11, 29, 8)

    def test_moving_the_hour_within_a_day_never_gives_a_second_digest(self):
        sub = SubscriberFactory(next_due_at=at(2026, 11, 28, 8))
        scheduling.claim_due(at(2026, 11, 28, 8))
        Subscriber.objects.filter(pk=sub.pk).update(next_due_at=at(2026, 11, 28, 20), send_hour=20)

        assert scheduling.claim_due(at(2026, 11, 28, 20)) == []
        assert Digest.objects.count() == 1

    def test_a_claim_whose_lease_ran_out_is_queued_again_once_the_queue_is_empty(self, settings):
        settings.PAPERBOY_CLAIM_LEASE = 600
        SubscriberFactory(next_due_at=at(2026, 11, 28, 8))
        [digest_id] = scheduling.claim_due(at(2026, 11, 28, 8))

        assert scheduling.sweep(at(2026, 11, 28, 8, 9), queue_empty=True).requeue == []
        # Behind a queue its task may still be waiting: nothing is piled on.
        assert scheduling.sweep(at(2026, 11, 28, 8, 11), queue_empty=False).requeue == []
        assert scheduling.sweep(at(2026, 11, 28, 8, 11), queue_empty=True).requeue == [digest_id]
        # Queued again with a new lease: the next pass leaves it to that task.
        assert scheduling.sweep(at(2026, 11, 28, 8, 12), queue_empty=True).requeue == []
        assert scheduling.sweep(at(2026, 11, 28, 8, 22), queue_empty=True).requeue == [digest_id]

    def test_a_digest_waiting_out_a_retry_keeps_its_task(self, settings):
        settings.PAPERBOY_CLAIM_LEASE = 600
        SubscriberFactory(next_due_at=at(2026, 11, 28, 8))
        [digest_id] = scheduling.claim_due(at(2026, 11, 28, 8))

        ledger.take([digest_id], "task-1", at(2026, 11, 28, 8, 1))
        ledger.renew([digest_id], "task-1", at(2026, 11, 28, 8, 5), extra=1800)

        assert scheduling.sweep(at(2026, 11, 28, 8, 44), queue_empty=True).requeue == []
        assert scheduling.sweep(at(2026, 11, 28, 8, 46), queue_empty=True).requeue == [digest_id]

    def test_a_digest_whose_run_stopped_renewing_is_queued_again_behind_a_queue(self, settings):
        """A run renews its leases as it goes: one that ran out means the run is gone
        (a worker killed outright; on the filesystem broker its task is gone with it),
        whatever waits in the queue."""
        settings.PAPERBOY_CLAIM_LEASE = 600
        SubscriberFactory(next_due_at=at(2026, 11, 28, 8))
        [digest_id] = scheduling.claim_due(at(2026, 11, 28, 8))
        ledger.take([digest_id], "run-1", at(2026, 11, 28, 8, 1))

        assert scheduling.sweep(at(2026, 11, 28, 8, 10), queue_empty=False).requeue == []
        assert scheduling.sweep(at(2026, 11, 28, 8, 12), queue_empty=False).requeue == [digest_id]
        # Free for the task queued now; the run that stopped holds it no more.
        assert Digest.objects.get().owner == ""
        ledger.take([digest_id], "run-2", at(2026, 11, 28, 8, 13))
        assert Digest.objects.get().owner == "run-2"

    def test_a_digest_left_sending_past_its_lease_is_unknown_and_never_queued(self, settings):
        settings.PAPERBOY_CLAIM_LEASE = 600
        SubscriberFactory(next_due_at=at(2026, 11, 28, 8))
        [digest_id] = scheduling.claim_due(at(2026, 11, 28, 8))
        Digest.objects.filter(pk=digest_id).update(status=Digest.Status.SENDING)

        assert scheduling.sweep(at(2026, 11, 28, 8, 9), queue_empty=True).unknown == 0
        swept = scheduling.sweep(at(2026, 11, 28, 8, 11), queue_empty=True)

        assert (swept.unknown, swept.requeue) == (1, [])
        digest = Digest.objects.get()
        assert digest.status == Digest.Status.UNKNOWN
        assert "not sent again" in digest.last_error
