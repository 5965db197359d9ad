"""Forged, borrowed, truncated, expired and replayed links: every one refused with a
clear page (a 4xx, never a 500), and nothing changed.

Each link signs a subscriber's random key (or, for feedback and view-in-browser, a small
object naming it) with a salt per purpose. Every case is also run once with the real
token, so that a request which changes nothing is known to be one that would have."""

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.urls import reverse

from digest import links as digest_links
from digest.models import Digest, DigestItem, Feedback
from papers.models import Topic
from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token
from tests.support.factories import PaperFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

NOT_VALID = "This link is not valid"
EXPIRED = "This link has expired"
OTHER_SECRET = "another-deployment-" + "k" * 40

SALTS = {
    "confirm": "paperboy.subscriptions.confirm",
    "manage": "paperboy.subscriptions.manage",
    "unsubscribe": "paperboy.subscriptions.unsubscribe",
    "feedback": digest_links.FEEDBACK_SALT,
    "view": digest_links.VIEW_SALT,
}


def tokens_of(subscriber) -> dict[str, str]:
    """One token of each purpose, all for ``subscriber``."""
    paper = PaperFactory()
    digest = Digest.objects.create(
        subscriber=subscriber, period=f"p{subscriber.pk}", scheduled_for=paper.ingested_at
    )
    DigestItem.objects.create(digest=digest, subscriber=subscriber, paper=paper, position=1)

    def last_segment(url):
        return urlsplit(url).path.rstrip("/").rsplit("/", 1)[1]

    return {
        "confirm": make_token(subscriber, Purpose.CONFIRM),
        "manage": make_token(subscriber, Purpose.MANAGE),
        "unsubscribe": make_token(subscriber, Purpose.UNSUBSCRIBE),
        "feedback": last_segment(digest_links.feedback_url(subscriber, paper, 1)),
        "view": last_segment(digest_links.view_url(digest)),
    }


def preferences() -> dict:
    return {
        "topics": [Topic.objects.curated().first().pk],
        "interests": "forged interest",
        "frequency": "weekly",
        "weekday": "2",
        "send_hour": "3",
        "timezone": "Asia/Tokyo",
        "max_papers": "7",
    }


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    purpose: str
    status: str  # of the subscriber the link is for
    answer: int  # with the real token

    def __str__(self):
        return f"{self.method.upper()} {self.name}"

    def request(self, client, token):
        path = reverse(self.name, args=[token])
        data = preferences() if self.name == "subscriptions:manage" else {}
        if self.method == "post":
            return client.post(path, data)
        return client.get(path)


ENDPOINTS = [
    Endpoint("subscriptions:confirm", "get", "confirm", "pending", 200),
    Endpoint("subscriptions:confirm", "post", "confirm", "pending", 302),
    Endpoint("subscriptions:confirmed", "get", "confirm", "active", 200),
    Endpoint("subscriptions:manage", "get", "manage", "active", 200),
    Endpoint("subscriptions:manage", "post", "manage", "active", 302),
    Endpoint("subscriptions:pause", "post", "manage", "active", 302),
    Endpoint("subscriptions:resume", "post", "manage", "paused", 302),
    Endpoint("subscriptions:export", "get", "manage", "active", 200),
    Endpoint("subscriptions:delete", "get", "manage", "active", 200),
    Endpoint("subscriptions:delete", "post", "manage", "active", 200),
    Endpoint("subscriptions:unsubscribe", "get", "unsubscribe", "active", 200),
    Endpoint("subscriptions:unsubscribe", "post", "unsubscribe", "active", 200),
    Endpoint("digest:feedback", "get", "feedback", "active", 200),
    Endpoint("digest:feedback", "post", "feedback", "active", 200),
    Endpoint("digest:view", "get", "view", "active", 200),
]
CHANGES_STATE = {
    "POST subscriptions:confirm",
    "POST subscriptions:manage",
    "POST subscriptions:pause",
    "POST subscriptions:resume",
    "POST subscriptions:delete",
    "POST subscriptions:unsubscribe",
    "POST digest:feedback",
}


def state() -> tuple:
    """Everything a link could change."""
    return (
        list(
            Subscriber.objects.order_by("pk").values_list(
                "pk",
                "status",
                "confirmed_at",
                "consent_at",
                "consent_ip",
                "next_due_at",
                "frequency",
                "send_hour",
                "timezone",
                "max_papers",
            )
        ),
        sorted(Subscriber.topics.through.objects.values_list("subscriber_id", "topic_id")),
        list(Feedback.objects.order_by("pk").values_list("subscriber_id", "paper_id", "vote")),
        Digest.objects.count(),
        DigestItem.objects.count(),
        Topic.objects.count(),
    )


def subscriber_with(status: str, email: str = "ada@example.org") -> Subscriber:
    if status == "pending":
        return SubscriberFactory(email=email, status=status, confirmed_at=None, consent_at=None)
    return SubscriberFactory(email=email, status=status)


def assert_refused(response, before, *, expired=False):
    assert 400 <= response.status_code < 500, response.status_code
    assert response.status_code == (400 if expired else 404)
    assert (EXPIRED if expired else NOT_VALID) in response.content.decode()
    assert state() == before


def assert_token_refused(client, endpoint, token, what: str) -> None:
    """``token`` on ``endpoint`` is refused and changes nothing; a failure says ``what``."""
    before = state()
    response = endpoint.request(client, token)
    try:
        assert_refused(response, before)
    except AssertionError as error:
        raise AssertionError(f"{what}: {error}") from error


def assert_accepted(endpoint, response, before):
    """The control: the real token, the same request, the expected answer and effect."""
    assert response.status_code == endpoint.answer, (str(endpoint), response.status_code)
    changed = state() != before
    assert changed is (str(endpoint) in CHANGES_STATE), str(endpoint)


@pytest.fixture
def eve():
    """Another subscriber, whose links an attacker holds."""
    return subscriber_with("active", email="eve@example.org")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_a_token_for_another_purpose_is_refused(client, endpoint):
    subscriber = subscriber_with(endpoint.status)
    tokens = tokens_of(subscriber)

    for purpose, token in tokens.items():
        if purpose != endpoint.purpose:
            assert_token_refused(client, endpoint, token, f"a {purpose} token on {endpoint}")

    before = state()
    assert_accepted(endpoint, endpoint.request(client, tokens[endpoint.purpose]), before)


def forgeries(token: str, eves: str, salt: str) -> dict[str, str]:
    value, timestamp, signature = token.rsplit(":", 2)
    eve_value, eve_timestamp, eve_signature = eves.rsplit(":", 2)
    assert eve_value != value
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    later = signing.b62_encode(signing.b62_decode(timestamp) + 3600)
    return {
        "Eve's key or object under this signature": f"{eve_value}:{timestamp}:{signature}",
        "this key under Eve's signature": f"{value}:{eve_timestamp}:{eve_signature}",
        "the timestamp moved an hour on": f"{value}:{later}:{signature}",
        "one character of the signature changed": f"{value}:{timestamp}:{flipped}",
        "the signature in upper case": f"{value}:{timestamp}:{signature.upper()}",
        "no signature": f"{value}:{timestamp}",
        "the bare key or object": value,
        "one character short": token[:-1],
        "cut in half": token[: len(token) // 2],
        "a character too many": token + "A",
        "re-signed with another SECRET_KEY": signing.TimestampSigner(
            key=OTHER_SECRET, salt=salt
        ).sign(value),
        "signed with no salt": signing.TimestampSigner().sign(value),
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_forged_and_truncated_tokens_are_refused(client, endpoint, eve):
    subscriber = subscriber_with(endpoint.status)
    token = tokens_of(subscriber)[endpoint.purpose]
    eves = tokens_of(eve)[endpoint.purpose]

    for what, forged in forgeries(token, eves, SALTS[endpoint.purpose]).items():
        assert forged != token
        assert_token_refused(client, endpoint, forged, f"{what} on {endpoint}")

    before = state()
    assert_accepted(endpoint, endpoint.request(client, token), before)


JUNK = [
    "A" * 10_000,
    "not-a-token",
    ":::",
    "%00",  # a NUL, which PostgreSQL refuses in any query
    "%C0%AE%C0%AE",  # overlong UTF-8
    "%F0%9F%93%B0:x:y",
    "\uff41\uff42\uff43:\uff44:\uff45",  # fullwidth letters
    "<svg onload=alert(1)>",
    "' OR '1'='1",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_junk_in_place_of_a_token_gets_the_not_valid_page(endpoint):
    # Raise no exception inside the view: a 500 is the failure this looks for.
    client = Client(raise_request_exception=True)
    subscriber_with(endpoint.status)
    before = state()

    for junk in JUNK:
        path = reverse(endpoint.name, args=["TOKEN"]).replace("TOKEN", junk)
        response = getattr(client, endpoint.method)(path)
        assert_refused(response, before)


def test_tokens_signed_with_a_retired_secret_key_work_only_while_it_is_a_fallback(client, settings):
    subscriber = subscriber_with("active")
    settings.SECRET_KEY = "the-old-key-" + "o" * 40
    old = tokens_of(subscriber)
    settings.SECRET_KEY = "the-new-key-" + "n" * 40

    settings.SECRET_KEY_FALLBACKS = ["the-old-key-" + "o" * 40]
    assert client.get(reverse("subscriptions:manage", args=[old["manage"]])).status_code == 200
    assert client.get(reverse("digest:view", args=[old["view"]])).status_code == 200

    settings.SECRET_KEY_FALLBACKS = []
    before = state()
    for purpose, endpoint in [("manage", "subscriptions:manage"), ("view", "digest:view")]:
        assert_refused(client.get(reverse(endpoint, args=[old[purpose]])), before)
    assert_refused(
        client.post(reverse("subscriptions:unsubscribe", args=[old["unsubscribe"]])), before
    )
    assert_refused(client.get(reverse("digest:feedback", args=[old["feedback"]])), before)


SIGNED_AT = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


def test_an_expired_confirmation_link_shows_the_expired_page_wherever_it_is_used(client):
    with time_machine.travel(SIGNED_AT, tick=False):
        subscriber = subscriber_with("pending")
        token = make_token(subscriber, Purpose.CONFIRM)
    confirm = reverse("subscriptions:confirm", args=[token])
    done = reverse("subscriptions:confirmed", args=[token])

    # Seven days to the second still work...
    with time_machine.travel(SIGNED_AT + dt.timedelta(days=7), tick=False):
        assert client.get(confirm).status_code == 200
        assert client.get(done).status_code == 200
    # ...one second later nothing does, and nothing is confirmed.
    with time_machine.travel(SIGNED_AT + dt.timedelta(days=7, seconds=1), tick=False):
        before = state()
        assert_refused(client.get(confirm), before, expired=True)
        assert_refused(client.post(confirm), before, expired=True)
        assert_refused(client.get(done), before, expired=True)
        # Used for another purpose it is just not valid, expired or not.
        assert_refused(client.get(reverse("subscriptions:manage", args=[token])), before)
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


@pytest.mark.parametrize("status", ["unsubscribed", "suppressed"])
def test_a_confirmation_replayed_after_leaving_confirms_nothing(client, status):
    with time_machine.travel(SIGNED_AT, tick=False):
        subscriber = subscriber_with("pending")
        token = make_token(subscriber, Purpose.CONFIRM)
        client.post(reverse("subscriptions:confirm", args=[token]), REMOTE_ADDR="192.0.2.1")
    subscriber.refresh_from_db()
    consent = (subscriber.consent_at, subscriber.consent_ip)
    assert subscriber.status == Subscriber.Status.ACTIVE
    Subscriber.objects.filter(pk=subscriber.pk).update(status=status, next_due_at=None)

    with time_machine.travel(SIGNED_AT + dt.timedelta(days=2), tick=False):
        before = state()
        replayed = client.post(
            reverse("subscriptions:confirm", args=[token]), REMOTE_ADDR="198.51.100.7"
        )
        page = client.get(replayed["Location"])

    assert replayed.status_code == 302  # to the page that says what happened
    assert page.status_code == 200
    assert "This subscription is not active" in page.content.decode()
    assert state() == before
    subscriber.refresh_from_db()
    assert subscriber.status == status
    assert (subscriber.consent_at, subscriber.consent_ip) == consent


def test_every_link_of_a_deleted_subscriber_is_refused(client):
    subscriber = subscriber_with("pending")
    tokens = tokens_of(subscriber)
    client.post(reverse("subscriptions:confirm", args=[tokens["confirm"]]))
    assert client.post(reverse("subscriptions:delete", args=[tokens["manage"]])).status_code == 200
    assert not Subscriber.objects.exists()

    for endpoint in ENDPOINTS:
        assert_token_refused(
            client, endpoint, tokens[endpoint.purpose], f"{endpoint} after deletion"
        )
    assert not Subscriber.objects.exists()
    assert not Feedback.objects.exists()


def test_one_subscribers_link_never_reaches_another(client, eve):
    ada = subscriber_with("active")
    ada_tokens, eve_tokens = tokens_of(ada), tokens_of(eve)

    # Eve's own links act on Eve alone, whatever Ada's state.
    client.post(reverse("subscriptions:unsubscribe", args=[eve_tokens["unsubscribe"]]))
    client.post(reverse("subscriptions:manage", args=[eve_tokens["manage"]]), preferences())
    client.post(reverse("digest:feedback", args=[eve_tokens["feedback"]]))

    ada.refresh_from_db()
    eve.refresh_from_db()
    assert ada.status == Subscriber.Status.ACTIVE and eve.status == Subscriber.Status.UNSUBSCRIBED
    assert ada.max_papers != 7 and eve.max_papers == 7
    assert list(Feedback.objects.values_list("subscriber", flat=True)) == [eve.pk]
    page = client.get(reverse("subscriptions:manage", args=[ada_tokens["manage"]]))
    assert "ada@example.org" in page.content.decode()
    assert "eve@example.org" not in page.content.decode()
