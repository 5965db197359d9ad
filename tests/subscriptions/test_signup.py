import datetime as dt
import ipaddress
import uuid

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from papers.models import Topic
from subscriptions import services
from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token

pytestmark = pytest.mark.django_db

SIGNUP = reverse("subscriptions:signup")


def form_data(**overrides):
    data = {
        "email": "ada@example.org",
        # Looked up only when not given: transactional tests have no starter topics.
        "topics": overrides.get("topics") or [Topic.objects.get(slug="continual-learning").pk],
        "interests": "",
        "frequency": "daily",
        "weekday": "0",
        "send_hour": "8",
        "timezone": "Europe/Paris",
        "max_papers": "10",
        "website": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def post_signup(client, django_capture_on_commit_callbacks):
    def post(**overrides):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(SIGNUP, form_data(**overrides), REMOTE_ADDR="192.0.2.1")

    return post


def unique_ip() -> str:
    """An IPv6 address in a /64 of its own: per-IP limits count a /64 as one client."""
    return str(ipaddress.IPv6Address("2001:db8::") + ((uuid.uuid4().int % 2**32) << 64))


def link_in(message, path_prefix):
    return next(word for word in message.body.split() if path_prefix in word)


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("ada@example.org", "ada@example.org"),
        ("Ada.Lovelace+papers@Example.ORG", "Ada.Lovelace+papers@example.org"),
        ("  ada@example.org  ", "ada@example.org"),
        ("reader@bücher.example", "reader@bücher.example"),
    ],
)
def test_good_addresses_are_accepted_and_normalised(post_signup, address, stored):
    response = post_signup(email=address)

    assert response.status_code == 302
    assert Subscriber.objects.get().email == stored


BAD_INPUT = [
    ({"email": ""}, "This field is required."),
    ({"email": "not-an-address"}, "Enter a valid email address."),
    ({"email": "ada@localhost@example.org"}, "Enter a valid email address."),
    ({"email": "josé@example.org"}, "Enter a valid email address."),
    ({"email": "ada@example.org\r\nBcc: victim@example.org"}, "Enter a valid email address."),
    ({"email": "ada@example.org\nSubject: spam"}, "Enter a valid email address."),
    ({"email": "ada@exa\x00mple.org"}, "Null characters are not allowed."),
    ({"email": "ada@[10.0.0.5]"}, "Enter an address at a domain name, not an IP address."),
    ({"email": "ada@[IPv6:::1]"}, "Enter a valid email address."),
    ({"email": "a" * 250 + "@example.org"}, "Ensure this value has at most 254 characters"),
    ({"email": "a" * 100_000}, "Ensure this value has at most 254 characters"),
    ({"topics": None}, "Pick at least one topic or type an interest."),
    ({"topics": ["999999"]}, "Select a valid choice."),
    ({"interests": "x" * 81}, "Keep each interest under 80 characters"),
    ({"interests": ", ".join(f"topic {i}" for i in range(11))}, "Choose at most 10 interests."),
    ({"interests": "!!!"}, "needs at least one letter or digit"),
    ({"interests": "graph\x07neural"}, "Interests cannot contain control characters."),
    ({"interests": "y" * 10_000}, "Ensure this value has at most 500 characters"),
    ({"frequency": "hourly"}, "Select a valid choice."),
    ({"send_hour": "24"}, "Select a valid choice."),
    ({"send_hour": "eight"}, "Select a valid choice."),
    ({"timezone": "Mars/Olympus_Mons"}, "Select a valid choice."),
    ({"max_papers": "0"}, "Ensure this value is greater than or equal to 1."),
    ({"max_papers": "51"}, "Ensure this value is less than or equal to 50."),
    ({"max_papers": "ten"}, "Enter a whole number."),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUT)
def test_bad_input_re_renders_the_form_and_stores_nothing(post_signup, overrides, message):
    response = post_signup(**overrides)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert Subscriber.objects.count() == 0
    assert not Topic.objects.interests().exists()
    assert mail.outbox == []


def test_a_new_address_gets_a_confirmation_email(post_signup):
    response = post_signup(interests="protein folding, Graph Transformers")

    assert response.status_code == 302
    assert response["Location"] == reverse("subscriptions:check_inbox")
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.timezone == "Europe/Paris"
    # The interests wait for the confirmation before they become shared topics.
    assert [t.name for t in subscriber.topics.all()] == ["Continual learning"]
    assert subscriber.pending_interests == ["protein folding", "Graph Transformers"]
    assert not Topic.objects.interests().exists()
    [message] = mail.outbox
    assert message.to == ["ada@example.org"]
    assert message.subject == "Confirm your Paperboy subscription"
    confirm = link_in(message, "/confirm/")
    assert confirm.startswith("http://127.0.0.1:8000/confirm/")
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="{confirm}"' in html


def confirm_all() -> None:
    for subscriber in Subscriber.objects.filter(status=Subscriber.Status.PENDING):
        services.confirm(subscriber, "192.0.2.1", "test")


def test_interests_become_topics_shared_by_everyone_at_confirmation(post_signup):
    post_signup(email="one@example.org", interests="Diffusion for proteins")
    post_signup(email="two@example.org", interests="  diffusion FOR proteins ")
    assert not Topic.objects.interests().exists()

    confirm_all()

    topic = Topic.objects.interests().get()
    assert topic.subscribers.count() == 2
    assert not Subscriber.objects.exclude(pending_interests=[]).exists()


def test_an_interest_naming_a_curated_topic_joins_it(post_signup):
    post_signup(topics=None, interests="diffusion models")
    confirm_all()

    assert list(Subscriber.objects.get().topics.all()) == [
        Topic.objects.get(slug="diffusion-models")
    ]
    assert not Topic.objects.interests().exists()


def test_a_curated_topic_ticked_and_typed_as_an_interest_is_followed_once(post_signup):
    curated = Topic.objects.get(slug="diffusion-models")

    response = post_signup(topics=[curated.pk], interests="Diffusion models, diffusion MODELS")

    assert response.status_code == 302
    subscriber = Subscriber.objects.get()
    assert list(subscriber.topics.all()) == [curated]
    assert (subscriber.frequency, subscriber.timezone, subscriber.max_papers) == (
        "daily",
        "Europe/Paris",
        10,
    )


def test_html_in_interests_is_escaped_in_pages_and_mail(client, post_signup):
    post_signup(interests="<script>alert(1)</script>")
    subscriber = Subscriber.objects.get()
    page = client.get(
        reverse("subscriptions:manage", args=[make_token(subscriber, Purpose.MANAGE)])
    )

    assert b"<script>alert(1)</script>" not in page.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content
    assert "<script>" not in mail.outbox[0].alternatives[0][0]


@pytest.mark.parametrize("status", ["active", "paused", "pending", "unsubscribed", "suppressed"])
def test_the_page_never_reveals_that_an_address_is_known(client, post_signup, status):
    fresh = post_signup(email="new@example.org")
    known = Subscriber.objects.create(
        email="known@example.org",
        status=status,
        confirmed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) if status != "pending" else None,
    )
    mail.outbox.clear()

    again = post_signup(email="Known@EXAMPLE.org")

    assert (again.status_code, again["Location"]) == (fresh.status_code, fresh["Location"])
    assert client.get(again["Location"]).content == client.get(fresh["Location"]).content
    subjects = [m.subject for m in mail.outbox]
    expected = {
        "active": ["Manage your Paperboy subscription"],
        "paused": ["Manage your Paperboy subscription"],
        "pending": ["Confirm your Paperboy subscription"],
        "unsubscribed": ["Confirm your Paperboy subscription"],
        "suppressed": [],
    }[status]
    assert subjects == expected
    assert all(m.to == ["known@example.org"] for m in mail.outbox)
    assert Subscriber.objects.with_email("known@example.org").count() == 1
    known.refresh_from_db()
    assert known.status == {"unsubscribed": "pending"}.get(status, status)


def test_a_filled_honeypot_pretends_success_and_stores_nothing(post_signup):
    response = post_signup(website="http://spam.example")

    assert response.status_code == 302
    assert Subscriber.objects.count() == 0
    assert mail.outbox == []


def test_signups_are_rate_limited_per_client_ip(client, settings):
    settings.PAPERBOY_SIGNUPS_PER_IP_PER_HOUR = 2
    # The counts outlive the test in a shared cache (Redis in CI): use a fresh address.
    ip, other = unique_ip(), unique_ip()
    codes = [
        client.post(SIGNUP, form_data(email=f"limit{i}@example.org"), REMOTE_ADDR=ip).status_code
        for i in range(3)
    ]
    other_ip = client.post(SIGNUP, form_data(email="limit9@example.org"), REMOTE_ADDR=other)

    assert codes == [302, 302, 429]
    assert other_ip.status_code == 302
    assert not Subscriber.objects.filter(email="limit2@example.org").exists()


def test_rotating_ipv6_addresses_within_one_64_counts_as_one_client(client, settings):
    settings.PAPERBOY_SIGNUPS_PER_IP_PER_HOUR = 2
    network = ipaddress.IPv6Network(f"{unique_ip()}/64", strict=False)
    codes = [
        client.post(
            SIGNUP, form_data(email=f"rotate{i}@example.org"), REMOTE_ADDR=str(network[i + 1])
        ).status_code
        for i in range(3)
    ]

    assert codes == [302, 302, 429]
    assert not Subscriber.objects.filter(email="rotate2@example.org").exists()


def test_signups_are_rate_limited_per_address(client, settings):
    settings.PAPERBOY_SIGNUPS_PER_ADDRESS_PER_HOUR = 1
    address = f"flood-{uuid.uuid4().hex}@example.org"
    first = client.post(SIGNUP, form_data(email=address), REMOTE_ADDR=unique_ip())
    second = client.post(SIGNUP, form_data(email=address.upper()), REMOTE_ADDR=unique_ip())

    assert (first.status_code, second.status_code) == (302, 429)
    assert "check your inbox" in second.content.decode()


def test_the_form_requires_a_csrf_token():
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post(SIGNUP, form_data())

    assert response.status_code == 403
    assert Subscriber.objects.count() == 0


def test_following_the_confirmation_link_asks_then_confirms(client, post_signup):
    post_signup()
    url = link_in(mail.outbox[0], "/confirm/").removeprefix("http://127.0.0.1:8000")

    page = client.get(url)
    assert page.status_code == 200
    assert b"Yes, subscribe me" in page.content
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING

    with time_machine.travel(dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.UTC), tick=False):
        done = client.post(url, REMOTE_ADDR="192.0.2.44", HTTP_USER_AGENT="Mozilla/5.0 (test)")

    assert done.status_code == 302
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.consent_at == dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.UTC)
    assert (subscriber.consent_ip, subscriber.consent_user_agent) == (
        "192.0.2.44",
        "Mozilla/5.0 (test)",
    )
    # 08:00 in Paris (UTC+1 in November) is 07:00 UTC, later the same day.
    assert subscriber.next_due_at == dt.datetime(2026, 11, 28, 7, 0, tzinfo=dt.UTC)
    assert b"Manage your subscription" in client.get(done["Location"]).content


def test_confirming_twice_changes_nothing(client, post_signup):
    post_signup()
    url = link_in(mail.outbox[0], "/confirm/").removeprefix("http://127.0.0.1:8000")
    client.post(url, REMOTE_ADDR="192.0.2.44")
    first = Subscriber.objects.get().consent_at

    again = client.post(url, REMOTE_ADDR="192.0.2.99")

    assert again.status_code == 302
    subscriber = Subscriber.objects.get()
    assert (subscriber.consent_at, subscriber.consent_ip) == (first, "192.0.2.44")


def test_a_confirmation_link_expires_after_seven_days(client, post_signup):
    with time_machine.travel(dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC), tick=False):
        post_signup()
    url = link_in(mail.outbox[0], "/confirm/").removeprefix("http://127.0.0.1:8000")

    with time_machine.travel(dt.datetime(2026, 11, 8, 11, 59, tzinfo=dt.UTC), tick=False):
        assert client.get(url).status_code == 200
    with time_machine.travel(dt.datetime(2026, 11, 8, 12, 1, tzinfo=dt.UTC), tick=False):
        expired = client.post(url)

    assert expired.status_code == 400
    assert b"This link has expired" in expired.content
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


def test_the_signup_page_and_the_trending_page_show_the_form(client):
    for url in (SIGNUP, reverse("trending")):
        response = client.get(url)
        assert response.status_code == 200
        assert b"Get trending papers in your email inbox" in response.content
        assert b'name="email"' in response.content


def test_a_new_interest_is_scored_after_the_signup_commits_not_inside_it(
    client, django_capture_on_commit_callbacks
):
    from papers.models import PaperTopic
    from tests.support.factories import PaperFactory

    paper = PaperFactory(title="Protein folding with diffusion", abstract="Protein folding.")

    client.post(SIGNUP, form_data(interests="protein folding"), REMOTE_ADDR="192.0.2.9")
    with django_capture_on_commit_callbacks() as callbacks:
        services.confirm(Subscriber.objects.get(), "192.0.2.9", "test")
        topic = Topic.objects.interests().get()
        # Nothing scored inside the request: that is a Celery task's job after commit.
        assert not PaperTopic.objects.filter(topic=topic).exists()

    for callback in callbacks:
        callback()  # the welcome email and the rescoring task (eager Celery)

    assert PaperTopic.objects.matching().filter(topic=topic, paper=paper).exists()


def test_a_curator_creating_a_topic_sees_its_matches_at_once():
    from papers.models import PaperTopic
    from tests.support.factories import PaperFactory

    paper = PaperFactory(title="Protein folding with diffusion", abstract="Protein folding.")

    topic = Topic.objects.create(name="Proteins", slug="proteins", terms="protein folding")

    assert PaperTopic.objects.matching().filter(topic=topic, paper=paper).exists()


def test_the_welcome_email_tells_what_interests_made_at_confirmation_match():
    """Their scoring is a task of its own that may not have run when the welcome
    email goes: the email scores them first."""
    from papers.signals import defer_rescoring
    from subscriptions import emails
    from tests.support.factories import PaperFactory, SubscriberFactory

    PaperFactory(title="Protein folding with diffusion", abstract="Protein folding.")
    with defer_rescoring():
        topic = Topic.for_interest("protein folding")
    reader = SubscriberFactory()
    reader.topics.add(topic)

    emails.send_welcome(reader)

    [message] = mail.outbox
    assert "Protein folding with diffusion" in message.body
