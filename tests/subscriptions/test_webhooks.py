"""The ESP webhooks end to end: real-shaped posts (tests/support/esp_payloads.py) through
the URL conf, the middleware and anymail's views, to the stored DeliveryEvent and its
effect on the subscriber.

Three ESPs: Postmark (basic auth), Mailgun (basic auth and an HMAC signature) and
Brevo (basic auth only; sends no event id, so replays rely on the stable hash).
"""

import datetime as dt
import itertools
import json
import os
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core import mail, signing
from django.utils import timezone

from digest import scheduling, sending
from digest.models import Digest
from subscriptions.links import list_unsubscribe_headers
from subscriptions.models import DeliveryEvent, Subscriber, Suppression
from subscriptions.tokens import Purpose, make_token
from tests.support.esp_payloads import (
    BREVO,
    ESPS,
    MAILGUN,
    POSTMARK,
    SECRET,
    SIGNING_KEY,
    at,
    basic_auth,
    mailgun_inbound,
    mailgun_signature,
    postmark_inbound,
)
from tests.support.factories import (
    DigestFactory,
    PaperFactory,
    SubscriberFactory,
    TopicFactory,
    match,
)

pytestmark = pytest.mark.django_db

AUTH = basic_auth(SECRET)
WRONG_AUTH = basic_auth("hook:guess")
ADDRESS = "ada@example.org"

_seq = itertools.count(1)

esp_params = pytest.mark.parametrize("esp", ESPS, ids=lambda esp: esp.name)


# --- fixtures and helpers -------------------------------------------------------------


@pytest.fixture(autouse=True)
def hooks(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    settings.PAPERBOY_SOFT_BOUNCE_LIMIT = 3
    settings.PAPERBOY_SOFT_BOUNCE_WINDOW_DAYS = 7
    settings.SITE_URL = "https://papers.example"
    settings.PAPERBOY_UNSUBSCRIBE_MAILTO = "unsubscribe@papers.example"


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """Post a raw body to a webhook, running what it queues on commit (eager Celery)."""

    def post(url, body: bytes, auth=AUTH, content_type="application/json"):
        extra = {"HTTP_AUTHORIZATION": auth} if auth is not None else {}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=body, content_type=content_type, **extra)

    return post


@pytest.fixture
def send(post):
    """Build an ESP's event and post it; returns (response, payload)."""

    def send(esp, kind, email=ADDRESS, message_id=None, seq=None, auth=AUTH):
        payload = esp.event(kind, email, message_id or esp.message_id(), seq or next(_seq))
        return post(esp.url, esp.body(payload), auth=auth), payload

    return send


def reader(email=ADDRESS, **fields):
    return SubscriberFactory(
        email=email, next_due_at=timezone.now() + dt.timedelta(hours=3), **fields
    )


def snapshot():
    """Everything a webhook may change, to compare before and after."""
    return (
        list(Subscriber.objects.order_by("pk").values_list("pk", "status", "next_due_at")),
        list(Suppression.objects.order_by("pk").values_list("pk", "email", "reason", "lifted_at")),
        list(DeliveryEvent.objects.order_by("pk").values_list("pk", "event_id", "processed_at")),
        list(
            Digest.objects.order_by("pk").values_list(
                "pk", "status", "delivered_at", "opened_at", "clicked_at"
            )
        ),
    )


def assert_untouched(subscriber, before):
    assert DeliveryEvent.objects.count() == 0
    assert Suppression.objects.count() == 0
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.next_due_at is not None
    assert snapshot() == before


# --- 1. authentication ----------------------------------------------------------------


@esp_params
@pytest.mark.parametrize(
    "auth", [WRONG_AUTH, None, "Bearer hook:s3cret"], ids=["wrong", "missing", "not-basic"]
)
def test_wrong_or_missing_credentials_are_refused_and_nothing_is_stored(esp, auth, send):
    subscriber = reader()
    before = snapshot()

    response, _ = send(esp, "hard_bounce", auth=auth)

    assert response.status_code == 400
    assert_untouched(subscriber, before)


@esp_params
def test_the_right_credentials_are_accepted(esp, send):
    """The control for the refusals above: the same post with the secret is acted on."""
    subscriber = reader()

    response, _ = send(esp, "hard_bounce")

    assert response.status_code == 200
    assert DeliveryEvent.objects.count() == 1
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.SUPPRESSED


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda sig: sig | {"signature": "0" * 64}, id="wrong-signature"),
        pytest.param(
            lambda sig: (
                sig
                | {"signature": mailgun_signature(sig["timestamp"], sig["token"], "key-attacker")}
            ),
            id="signed-with-another-key",
        ),
        pytest.param(lambda sig: sig | {"token": sig["token"][::-1]}, id="token-changed"),
        pytest.param(
            lambda sig: sig | {"timestamp": str(int(sig["timestamp"]) + 1)}, id="timestamp-changed"
        ),
        pytest.param(
            lambda sig: {k: v for k, v in sig.items() if k != "signature"}, id="no-signature"
        ),
    ],
)
def test_mailgun_refuses_a_bad_signature_even_with_the_right_basic_auth(forge, post):
    subscriber = reader()
    before = snapshot()
    payload = MAILGUN.event("hard_bounce", ADDRESS, MAILGUN.message_id(), next(_seq))
    payload["signature"] = forge(payload["signature"])

    response = post(MAILGUN.url, MAILGUN.body(payload))

    assert response.status_code == 400
    assert_untouched(subscriber, before)


def test_the_default_secret_keeps_the_webhooks_shut(settings, send):
    """Unconfigured (no ANYMAIL_WEBHOOK_SECRET given), a post with any guess is refused."""
    import paperboy.settings as project_settings

    default = project_settings.ANYMAIL["WEBHOOK_SECRET"]
    assert default.startswith("unset:") and len(default) > 30
    settings.ANYMAIL = {"WEBHOOK_SECRET": default, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    subscriber = reader()
    before = snapshot()

    for esp in ESPS:
        for auth in (AUTH, basic_auth("unset:"), None):
            response, _ = send(esp, "hard_bounce", auth=auth)
            assert response.status_code == 400, (esp.name, auth)
    assert_untouched(subscriber, before)


# --- 2. the effect of each event type -------------------------------------------------

SUPPRESSING = {"hard_bounce": "bounced", "complaint": "complained", "rejected": "rejected"}
TRACKING = {"delivered": "delivered_at", "opened": "opened_at", "clicked": "clicked_at"}
CASES = [pytest.param(esp, kind, id=f"{esp.name}-{kind}") for esp in ESPS for kind in esp.kinds]


@pytest.mark.parametrize("esp, kind", CASES)
def test_each_event_type_has_its_effect(esp, kind, send):
    subscriber = reader()
    bystander = reader(email="grace@example.org")
    message_id = esp.message_id()
    digest = DigestFactory(subscriber=subscriber, message_id=message_id, status="sent")
    other_digest = DigestFactory(subscriber=bystander, message_id=esp.message_id(), status="sent")
    seq = next(_seq)

    response, _ = send(esp, kind, email="ada@Example.org", message_id=message_id, seq=seq)

    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.esp == esp.name
    assert event.recipient == ADDRESS
    assert event.processed_at is not None and event.error == ""
    subscriber.refresh_from_db()
    digest.refresh_from_db()
    if kind in SUPPRESSING:
        assert subscriber.status == Subscriber.Status.SUPPRESSED
        assert subscriber.next_due_at is None
        suppression = Suppression.objects.active().get()
        assert suppression.email == ADDRESS
        assert suppression.reason == SUPPRESSING[kind]
        assert suppression.source_event == event
    elif kind == "unsubscribe":
        assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
        assert subscriber.next_due_at is None
        assert not Suppression.objects.exists()
    else:
        field = TRACKING[kind]
        assert getattr(digest, field) == at(seq)
        for other in set(TRACKING.values()) - {field}:
            assert getattr(digest, other) is None
        assert subscriber.status == Subscriber.Status.ACTIVE
        assert subscriber.next_due_at is not None
        assert not Suppression.objects.exists()
    bystander.refresh_from_db()
    other_digest.refresh_from_db()
    assert bystander.status == Subscriber.Status.ACTIVE and bystander.next_due_at is not None
    assert (other_digest.delivered_at, other_digest.opened_at, other_digest.clicked_at) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize("esp", ESPS, ids=lambda esp: esp.name)
def test_a_later_open_does_not_overwrite_the_first(esp, send):
    subscriber = reader()
    message_id = esp.message_id()
    digest = DigestFactory(subscriber=subscriber, message_id=message_id, status="sent")
    first, later = next(_seq), next(_seq)

    send(esp, "opened", message_id=message_id, seq=first)
    send(esp, "opened", message_id=message_id, seq=later)

    digest.refresh_from_db()
    assert digest.opened_at == at(first)
    assert DeliveryEvent.objects.count() == 2


@esp_params
def test_soft_bounces_suppress_only_at_the_limit(esp, send):
    subscriber = reader()
    *below, last = esp.soft_kinds

    for kind in below:
        response, _ = send(esp, kind)
        assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.next_due_at is not None
    assert not Suppression.objects.exists()
    assert DeliveryEvent.objects.filter(processed_at__isnull=False).count() == len(below)

    send(esp, last)

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.SUPPRESSED
    assert subscriber.next_due_at is None
    suppression = Suppression.objects.active().get()
    assert suppression.reason == "soft_bounces"
    assert suppression.source_event == DeliveryEvent.objects.order_by("pk").last()


@esp_params
def test_soft_bounces_of_other_addresses_do_not_add_up(esp, send):
    subscriber = reader()
    reader(email="grace@example.org")
    reader(email="alan@example.org")
    send(esp, esp.soft_kinds[0], email="grace@example.org")
    send(esp, esp.soft_kinds[1], email="alan@example.org")

    send(esp, esp.soft_kinds[2])

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()


def test_a_brevo_soft_bounce_is_counted_not_treated_as_a_hard_bounce(send):
    """Brevo's "soft_bounce" is temporary, but anymail reports it as bounced/bounced,
    like "hard_bounce": only the limit may suppress the address."""
    subscriber = reader()

    send(BREVO, "soft_bounce")

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()


# --- 3. replays -----------------------------------------------------------------------

REPLAYS = [
    pytest.param(POSTMARK, "hard_bounce", id="Postmark-bounce-with-id"),
    pytest.param(POSTMARK, "delivered", id="Postmark-delivery-without-id"),
    pytest.param(POSTMARK, "unsubscribe", id="Postmark-subscription-change-without-id"),
    pytest.param(MAILGUN, "complaint", id="Mailgun-complaint"),
    pytest.param(MAILGUN, "hard_bounce", id="Mailgun-bounce"),
    pytest.param(BREVO, "hard_bounce", id="Brevo-bounce-without-id"),
    pytest.param(BREVO, "opened", id="Brevo-open-without-id"),
]


@pytest.mark.parametrize("esp, kind", REPLAYS)
def test_a_replayed_event_changes_nothing(esp, kind, post):
    subscriber = reader()
    message_id = esp.message_id()
    DigestFactory(subscriber=subscriber, message_id=message_id, status="sent")
    body = esp.body(esp.event(kind, ADDRESS, message_id, next(_seq)))

    first = post(esp.url, body)
    after_first = snapshot()
    second = post(esp.url, body)

    assert first.status_code == second.status_code == 200
    assert snapshot() == after_first
    assert DeliveryEvent.objects.count() == 1
    assert Suppression.objects.count() == (1 if kind in SUPPRESSING else 0)


def test_brevo_and_postmark_delivery_events_have_no_id_and_are_told_apart_by_hash(post):
    """Anymail gives no event_id for these: two different events must not collapse
    into one, while the same one twice must."""
    reader()
    for esp, kind in [(BREVO, "hard_bounce"), (POSTMARK, "delivered")]:
        message_id = esp.message_id()
        post(esp.url, esp.body(esp.event(kind, ADDRESS, message_id, next(_seq))))
        post(esp.url, esp.body(esp.event(kind, ADDRESS, message_id, next(_seq))))
    ids = list(DeliveryEvent.objects.values_list("event_id", flat=True))
    assert len(ids) == 4
    assert all(":sha256:" in event_id for event_id in ids)


def test_a_replayed_soft_bounce_is_not_counted_twice(post):
    subscriber = reader()
    body = BREVO.body(BREVO.event("deferred", ADDRESS, BREVO.message_id(), next(_seq)))

    for _ in range(3):
        post(BREVO.url, body)

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert DeliveryEvent.objects.count() == 1


# --- 4. malformed payloads ------------------------------------------------------------

MALFORMED = {
    "invalid-json": (b'{"RecordType": "Bounce", "Email": ', "application/json"),
    "json-list": (b'[{"RecordType": "Bounce"}]', "application/json"),
    "json-string": (b'"bounce"', "application/json"),
    "missing-fields": (b"{}", "application/json"),
    "form-encoded": (
        b"RecordType=Bounce&Type=HardBounce&Email=ada%40example.org",
        "application/x-www-form-urlencoded",
    ),
    "not-utf8": (b'{"Email": "\xff\xfe"}', "application/json"),
    "huge-random": (os.urandom(1024 * 1024), "application/json"),
}


@esp_params
@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_payload_is_a_client_error_and_stores_nothing(esp, name, client, post):
    client.raise_request_exception = False
    subscriber = reader()
    before = snapshot()
    body, content_type = MALFORMED[name]

    response = post(esp.url, body, content_type=content_type)

    assert 400 <= response.status_code < 500, response.status_code
    assert_untouched(subscriber, before)


def test_a_timestamp_past_the_platforms_range_is_a_client_error(client, post):
    """Brevo's ts_epoch goes to datetime.fromtimestamp, which raises OSError (EOVERFLOW),
    not OverflowError, for a value this far out (found by tests/system/test_properties.py)."""
    client.raise_request_exception = False
    subscriber = reader()
    before = snapshot()
    event = BREVO.event("hard_bounce", ADDRESS, BREVO.message_id(), next(_seq))
    event["ts_epoch"] = 10**20

    response = post(BREVO.url, BREVO.body(event))

    assert response.status_code == 400
    assert_untouched(subscriber, before)


def test_a_bounce_type_that_is_not_text_is_no_500(client, post):
    """Postmark's "Type" decides soft from hard: a list there once raised TypeError
    (unhashable) while the event was recorded (found by tests/system/test_properties.py)."""
    client.raise_request_exception = False
    reader()
    event = POSTMARK.event("hard_bounce", ADDRESS, POSTMARK.message_id(), next(_seq))
    # As hypothesis found it: no RecordType (anymail then takes it for a bounce by its
    # other fields) and a list where the bounce type belongs.
    del event["RecordType"]
    event["Type"] = []

    response = post(POSTMARK.url, POSTMARK.body(event))

    assert response.status_code < 500


def anymail_webhook_urls() -> list[str]:
    from anymail.urls import urlpatterns

    # mailgun/inbound(_mime)?/ is a regex; its plain form is enough here.
    return ["/anymail/" + str(p.pattern).strip("^$").replace("(_mime)?", "") for p in urlpatterns]


# Warnings are errors in the tests; in production these two only log.
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailDeprecationWarning")
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
@pytest.mark.parametrize("body", [b"{}", b"junk"], ids=["empty", "junk"])
def test_webhooks_of_unconfigured_esps_answer_404_not_500(body, settings, client, post, caplog):
    """anymail mounts every ESP's webhook; most need a key or a package (boto3 for SES)
    this installation does not have. A post there, with the right secret, must not be a
    500 that anyone could provoke."""
    client.raise_request_exception = False
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    subscriber = reader()
    before = snapshot()
    answers = {url: post(url, body).status_code for url in anymail_webhook_urls()}

    assert all(status < 500 for status in answers.values()), answers
    unconfigured = {url for url, status in answers.items() if status == 404}
    # Needs MAILGUN_WEBHOOK_SIGNING_KEY, boto3, MANDRILL_WEBHOOK_KEY (checked per request).
    assert {
        "/anymail/mailgun/tracking/",
        "/anymail/amazon_ses/tracking/",
        "/anymail/mandrill/tracking/",
    } <= unconfigured
    # No extra setting: the post reaches the payload checks.
    assert answers["/anymail/postmark/tracking/"] == 400
    assert "Mailgun webhook is not configured" in caplog.text
    assert_untouched(subscriber, before)


def test_a_configured_esp_webhook_is_mounted_again(settings, client, post):
    """The control: with its signing key the Mailgun webhook answers, not 404."""
    client.raise_request_exception = False
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}

    assert post("/anymail/mailgun/tracking/", b"junk").status_code == 400


@esp_params
def test_an_event_missing_its_recipient_changes_nothing(esp, client, post):
    client.raise_request_exception = False
    subscriber = reader()
    payload = esp.event("hard_bounce", ADDRESS, esp.message_id(), next(_seq))
    if esp is POSTMARK:
        del payload["Email"]
    elif esp is MAILGUN:
        del payload["event-data"]["recipient"], payload["event-data"]["message"]["headers"]["to"]
    else:
        del payload["email"]

    response = post(esp.url, esp.body(payload))

    assert response.status_code < 500
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()


# --- 5. a bounce or complaint stops all mail before the next pass ---------------------


@pytest.fixture
def due_reader():
    now = timezone.now()
    topic = TopicFactory()
    match(PaperFactory(ingested_at=now - dt.timedelta(hours=1)), topic)
    subscriber = SubscriberFactory(email=ADDRESS, next_due_at=now)
    subscriber.topics.add(topic)
    return subscriber, now


STOPPING = [
    pytest.param(esp, kind, id=f"{esp.name}-{kind}")
    for esp in ESPS
    for kind in ("hard_bounce", "complaint")
]


@pytest.mark.parametrize("esp, kind", STOPPING)
def test_a_bounce_or_complaint_stops_mail_before_the_next_pass(esp, kind, due_reader, send):
    subscriber, now = due_reader

    response, _ = send(esp, kind)
    assert response.status_code == 200
    result = sending.send_batch(scheduling.claim_due(now), now=now)

    assert mail.outbox == []
    assert result.sent == []
    assert not Digest.objects.filter(status=Digest.Status.SENT).exists()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.SUPPRESSED


@pytest.mark.parametrize("esp, kind", STOPPING)
def test_a_bounce_after_the_claim_stops_the_claimed_digest(esp, kind, due_reader, send):
    _, now = due_reader
    ids = scheduling.claim_due(now)
    assert len(ids) == 1

    send(esp, kind)
    result = sending.send_batch(ids, now=now)

    assert mail.outbox == []
    assert result.sent == []
    assert Digest.objects.get(pk=ids[0]).status == Digest.Status.SUPPRESSED


@esp_params
def test_without_a_bounce_the_same_reader_is_mailed(esp, due_reader, send):
    """The control for the two tests above: their set-up does send a digest."""
    _, now = due_reader

    send(esp, "delivered")  # some other message's delivery: suppresses nothing
    result = sending.send_batch(scheduling.claim_due(now), now=now)

    assert len(result.sent) == 1
    assert [m.to for m in mail.outbox] == [[ADDRESS]]


# --- 6. inbound mailto: unsubscribe ---------------------------------------------------

INBOUND = "/anymail/postmark/inbound/"


def mailto_subject(subscriber) -> str:
    """The subject a mail client puts in its mail for the mailto: List-Unsubscribe."""
    header = list_unsubscribe_headers(subscriber)["List-Unsubscribe"]
    mailto = next(part.strip("<> ") for part in header.split(",") if "mailto:" in part)
    [subject] = parse_qs(urlsplit(mailto).query)["subject"]
    assert urlsplit(mailto).path == "unsubscribe@papers.example"
    return subject


def test_the_mailto_subject_carries_the_unsubscribe_token():
    subscriber = reader()
    assert mailto_subject(subscriber) == "unsubscribe " + make_token(
        subscriber, Purpose.UNSUBSCRIBE
    )


def test_a_mailto_unsubscribe_from_any_address_unsubscribes_the_reader(post):
    subscriber = reader()
    bystander = reader(email="grace@example.org")

    response = post(INBOUND, json.dumps(postmark_inbound(mailto_subject(subscriber))).encode())

    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert subscriber.next_due_at is None
    bystander.refresh_from_db()
    assert bystander.status == Subscriber.Status.ACTIVE


def test_a_mailto_unsubscribe_with_a_quoted_reply_subject_still_works(post):
    subscriber = reader()
    token = make_token(subscriber, Purpose.UNSUBSCRIBE)

    post(INBOUND, json.dumps(postmark_inbound(f"Re: Unsubscribe {token}")).encode())

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def _forged_tokens(subscriber):
    token = make_token(subscriber, Purpose.UNSUBSCRIBE)
    value, _, signature = token.rpartition(":")
    other_key = uuid.uuid4().hex
    return {
        "tampered-signature": f"{value}:{signature[::-1]}",
        "another-key-unsigned": f"{other_key}:{token.split(':', 1)[1]}",
        "wrong-purpose": make_token(subscriber, Purpose.MANAGE),
        "wrong-salt": signing.TimestampSigner(salt="something.else").sign(subscriber.key.hex),
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize(
    "forgery",
    ["tampered-signature", "another-key-unsigned", "wrong-purpose", "wrong-salt", "garbage"],
)
def test_a_forged_mailto_token_does_nothing(forgery, post):
    subscriber = reader()
    before = snapshot()
    subject = "unsubscribe " + _forged_tokens(subscriber)[forgery]

    response = post(INBOUND, json.dumps(postmark_inbound(subject)).encode())

    assert response.status_code == 200  # accepted and ignored: the ESP must not retry
    assert_untouched(subscriber, before)


def test_an_inbound_post_without_the_secret_is_refused(post):
    subscriber = reader()
    before = snapshot()

    for auth in (None, WRONG_AUTH):
        response = post(
            INBOUND, json.dumps(postmark_inbound(mailto_subject(subscriber))).encode(), auth=auth
        )
        assert response.status_code == 400
    assert_untouched(subscriber, before)


def test_a_mailto_unsubscribe_through_mailgun_inbound(post):
    """Mailgun's inbound route posts the parsed mail as a signed form."""
    subscriber = reader()
    form = mailgun_inbound(mailto_subject(subscriber))
    response = post(
        "/anymail/mailgun/inbound/",
        urlencode(form).encode(),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


# --- over HTTP, against a live server ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
@esp_params
def test_a_bounce_posted_over_http_to_the_live_server_suppresses_the_reader(esp, live_server):
    import urllib.error
    import urllib.request

    subscriber = reader()
    payload = esp.event("hard_bounce", ADDRESS, esp.message_id(), next(_seq))

    def post(auth):
        request = urllib.request.Request(
            live_server.url + esp.url,
            data=esp.body(payload),
            headers={"Content-Type": "application/json", "Authorization": auth},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert post(WRONG_AUTH) == 400
    assert DeliveryEvent.objects.count() == 0
    assert post(AUTH) == 200
    assert post(AUTH) == 200  # the ESP retrying: changes nothing

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.SUPPRESSED
    assert DeliveryEvent.objects.count() == 1
    assert Suppression.objects.active().get().reason == "bounced"
