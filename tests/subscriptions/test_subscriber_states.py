"""Every subscriber status change, by every path: the table in Subscriber.TRANSITIONS,
the admin's form, and lifting a suppression back to what it interrupted."""

import itertools

import pytest
from django.urls import reverse

from subscriptions import deliverability, services, states
from subscriptions.models import Subscriber, Suppression
from tests.support.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

Status = Subscriber.Status
FORM = {
    "frequency": "daily",
    "weekday": "0",
    "send_hour": "8",
    "timezone": "UTC",
    "max_papers": "10",
}
# What a curator may do by hand in the subscriber's form; the rest goes through the
# reader's own links, a new sign-up, or the suppress and lift actions.
BY_HAND = {
    (Status.ACTIVE, Status.PAUSED),
    (Status.ACTIVE, Status.UNSUBSCRIBED),
    (Status.PAUSED, Status.ACTIVE),
    (Status.PAUSED, Status.UNSUBSCRIBED),
    (Status.PENDING, Status.UNSUBSCRIBED),
}


def subscriber_in(status: str) -> Subscriber:
    confirmed = status not in (Status.PENDING,)
    subscriber = SubscriberFactory(status=status)
    if not confirmed:
        Subscriber.objects.filter(pk=subscriber.pk).update(confirmed_at=None)
        subscriber.refresh_from_db()
    return subscriber


@pytest.mark.parametrize(
    ("old", "new"),
    [(a, b) for a, b in itertools.product(Status, Status) if a != b],
    ids=lambda status: str(status),
)
def test_the_admin_form_keeps_to_the_transitions(admin_client, old, new):
    subscriber = subscriber_in(old)
    url = reverse("admin:subscriptions_subscriber_change", args=[subscriber.pk])

    response = admin_client.post(url, FORM | {"email": subscriber.email, "status": new})

    subscriber.refresh_from_db()
    if (old, new) in BY_HAND:
        assert response.status_code == 302
        assert subscriber.status == new
    else:
        assert response.status_code == 200  # the form again, with the reason
        assert 'class="errorlist' in response.content.decode()
        assert subscriber.status == old
    assert Subscriber.can_move(old, new) or (old, new) not in BY_HAND


def test_a_paused_pending_subscriber_cannot_be_made_and_resume_answers(client):
    """The 500 this guarded against: pending set to paused by hand, then Resume hit the
    CHECK constraint (active needs a confirmation)."""
    pending = subscriber_in(Status.PENDING)

    assert not Subscriber.can_move(Status.PENDING, Status.PAUSED)
    states.resume(pending)  # from "paused" only: nothing happens
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (Status.PENDING, Status.PENDING),
        (Status.ACTIVE, Status.PAUSED),
        (Status.PAUSED, Status.PAUSED),
        (Status.UNSUBSCRIBED, Status.UNSUBSCRIBED),
    ],
)
def test_a_lift_gives_back_what_the_suppression_interrupted(before, after):
    subscriber = subscriber_in(before)
    deliverability.suppress(subscriber.email, Suppression.Reason.BOUNCED)
    subscriber.refresh_from_db()
    assert subscriber.status == Status.SUPPRESSED

    deliverability.lift(Suppression.objects.active().get(), "fixed their mailbox")

    subscriber.refresh_from_db()
    assert (subscriber.status, subscriber.status_before_suppression) == (after, "")
    assert Subscriber.can_move(Status.SUPPRESSED, after)


def test_a_pending_address_lifted_can_sign_up_again(django_capture_on_commit_callbacks):
    from django.core import mail

    subscriber = subscriber_in(Status.PENDING)
    deliverability.suppress(subscriber.email, Suppression.Reason.COMPLAINED)
    deliverability.lift(Suppression.objects.active().get(), "asked us to")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.sign_up(
            {
                "email": subscriber.email,
                "topics": [],
                "interests": [],
                "frequency": "daily",
                "weekday": 0,
                "send_hour": 8,
                "timezone": "UTC",
                "max_papers": 10,
            }
        )

    assert [m.to for m in mail.outbox] == [[subscriber.email]]


def test_a_suppression_is_neither_deleted_nor_edited_in_the_admin(admin_client):
    subscriber = subscriber_in(Status.ACTIVE)
    deliverability.suppress(subscriber.email, Suppression.Reason.BOUNCED)
    suppression = Suppression.objects.get()
    change = reverse("admin:subscriptions_suppression_change", args=[suppression.pk])
    delete = reverse("admin:subscriptions_suppression_delete", args=[suppression.pk])

    admin_client.post(change, {"email": "someone-else@example.org", "reason": "manual"})
    deleted = admin_client.post(delete, {"post": "yes"})

    assert deleted.status_code == 403
    suppression.refresh_from_db()
    assert suppression.email == subscriber.email and suppression.lifted_at is None
    assert deliverability.is_suppressed(subscriber.email)


def test_an_unconfirmed_sign_up_creates_no_shared_topic(client, django_capture_on_commit_callbacks):
    from papers.models import Topic
    from tests.subscriptions.test_signup import form_data

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("subscriptions:signup"),
            form_data(interests=", ".join(f"interest number {n}" for n in range(10))),
            REMOTE_ADDR="192.0.2.44",
        )

    assert not Topic.objects.interests().exists()
    assert len(Subscriber.objects.get().pending_interests) == 10


def test_unfollowed_interests_are_pruned_after_the_grace_period(settings):
    import datetime as dt

    from django.utils import timezone

    from papers.models import PaperTopic, Topic
    from subscriptions.interests import prune_interests
    from tests.support.factories import PaperFactory

    settings.PAPERBOY_INTEREST_GRACE_DAYS = 7
    now = timezone.now()
    old = now - dt.timedelta(days=8)

    def interest(name, followed=False, age=old):
        topic = Topic.for_interest(name)
        Topic.objects.filter(pk=topic.pk).update(created_at=age)
        if followed:
            SubscriberFactory().topics.add(topic)
        return topic

    orphan = interest("nobody reads this any more")
    followed = interest("still followed", followed=True)
    young = interest("typed yesterday", age=now - dt.timedelta(days=1))
    pinned = interest("pinned by a curator")
    PaperTopic.objects.create(
        paper=PaperFactory(), topic=pinned, score=1, curation=PaperTopic.Curation.PINNED
    )
    curated = Topic.objects.create(name="A curated topic", kind=Topic.Kind.CURATED)
    Topic.objects.filter(pk=curated.pk).update(created_at=old)

    assert prune_interests(now) == 1

    remaining = set(Topic.objects.values_list("pk", flat=True))
    assert orphan.pk not in remaining
    assert {followed.pk, young.pk, pinned.pk, curated.pk} <= remaining
