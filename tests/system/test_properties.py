"""Every public endpoint against hostile and random input (hypothesis).

For each endpoint, whatever comes in:

- never a 5xx (the test client re-raises an exception a view lets out);
- every row the request wrote passes its model's validation (``full_clean()``), and rows
  change only when the input was valid: each example compares the whole database before
  and after the request with what the input must do;
- nothing made from subscriber A's link or input shows anything of subscriber B's (their
  address, key, interests, signed links) in the response or in mail to anyone else, or
  changes any row of B's.

Inputs are structured-but-hostile (tests/support/strategies.py: links cut short, re-signed with
another key or for another purpose, form fields with control characters, invalid time
zones, repeated fields, huge values), drawn with the answer the endpoint owes them, and
plain noise: any text, bytes and content type.

``PAPERBOY_FUZZ_EXAMPLES`` sets the examples per test: 500 by default, 10000 for a long
run. Each example runs in its own transaction, rolled back after it
(``hypothesis.extra.django.TestCase``).

In CI (``CI`` set) the examples are derandomized: the same code is tried on the same
input every run, so a red run reproduces exactly and is never a random draw that an
unrelated change happened to meet. Elsewhere each run draws new input, to keep finding
new cases, and failing ones are kept under PAPERBOY_VAR_DIR/hypothesis, where the next
run tries them first (``--hypothesis-seed=N`` repeats a run). Hypothesis's own files go
there too, not into the work tree.
"""

import contextlib
import datetime as dt
import json
import os
import re
import uuid
from pathlib import Path
from unittest import mock
from urllib.parse import quote, quote_plus, unquote_plus, urlencode

from django.conf import settings as django_settings
from django.core import mail, signing
from django.core.exceptions import ValidationError
from django.db import connection
from django.template.base import PartialTemplate, Template
from django.test import Client, override_settings
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.extra.django import TestCase

from digest import links
from digest.models import Digest, DigestItem, Feedback
from papers.models import Paper, Topic
from subscriptions.models import DeliveryEvent, Subscriber, Suppression
from subscriptions.tokens import Purpose, make_token
from tests.support import strategies as hostile
from tests.support.esp_payloads import (
    BREVO,
    MAILGUN,
    POSTMARK,
    SECRET,
    SIGNING_KEY,
    mailgun_inbound,
    postmark_inbound,
)
from tests.support.factories import DigestFactory, PaperFactory, SubscriberFactory

EXAMPLES = int(os.environ.get("PAPERBOY_FUZZ_EXAMPLES", "500"))
IN_CI = bool(os.environ.get("CI"))

# Hypothesis keeps caches (and, outside CI, failing examples) in ./.hypothesis unless
# told otherwise: under var/ with the rest of what runs write.
HYPOTHESIS_DIR = Path(django_settings.VAR_DIR) / "hypothesis"
set_hypothesis_home_dir(HYPOTHESIS_DIR)

fuzz = settings(
    max_examples=EXAMPLES,
    # Two shared cores: a slow example is the machine, not the code.
    deadline=None,
    derandomize=IN_CI,
    database=None if IN_CI else DirectoryBasedExampleDatabase(HYPOTHESIS_DIR / "examples"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

STATUSES = list(Subscriber.Status)
# What _move() moves to "unsubscribed": a suppressed address stays suppressed.
UNSUBSCRIBABLE = {Subscriber.Status.PENDING, Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED}
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"]

TRACKED = [
    Subscriber,
    Subscriber.topics.through,
    Topic,
    Paper,
    Digest,
    DigestItem,
    Feedback,
    DeliveryEvent,
    Suppression,
]
# value:timestamp:signature. Possessive and anchored at a word's start, so that a page
# echoing 100,000 letters is scanned once, not once per letter.
SIGNED = re.compile(r"(?<![\w.\-])[\w.\-]++:[0-9A-Za-z]++:[\w\-]{20,}+")


def _select(model) -> tuple[str, list[str]]:
    fields = model._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    return f"SELECT {columns} FROM {table}", [f.attname for f in fields]  # noqa: S608 - names from the models


def snapshot() -> dict:
    """Every row of every tracked table, as stored. Plain SQL: the ORM's query building
    was half the time of a cheap example."""
    state = {}
    with connection.cursor() as cursor:
        for model in TRACKED:
            sql, names = _select(model)
            cursor.execute(sql)
            pk = names.index(model._meta.pk.attname)
            state[model] = {row[pk]: dict(zip(names, row, strict=True)) for row in cursor}
    return state


class Diff:
    """What a request changed, row by row."""

    def __init__(self, before: dict, after: dict):
        self.before, self.after = before, after

    def created(self, model) -> set:
        return self.after[model].keys() - self.before[model].keys()

    def deleted(self, model) -> set:
        return self.before[model].keys() - self.after[model].keys()

    def updated(self, model) -> set:
        old, new = self.before[model], self.after[model]
        return {pk for pk in old.keys() & new.keys() if old[pk] != new[pk]}

    def rows(self, model) -> list[dict]:
        """Every version of every changed row: before, after or both."""
        changed = self.created(model) | self.deleted(model) | self.updated(model)
        return [
            row
            for pk in changed
            for row in (self.before[model].get(pk), self.after[model].get(pk))
            if row is not None
        ]

    def summary(self) -> dict:
        """{model name: {"created"/"updated"/"deleted": pks}}, changes only."""
        result = {}
        for model in TRACKED:
            kinds = {
                "created": self.created(model),
                "updated": self.updated(model),
                "deleted": self.deleted(model),
            }
            kinds = {kind: pks for kind, pks in kinds.items() if pks}
            if kinds:
                result[model.__name__] = kinds
        return result


def signed_owners(text: str) -> set[str]:
    """The subscriber keys named by the signed links in ``text``, whatever their purpose."""
    keys = set()
    for candidate in set(SIGNED.findall(text)):
        for purpose in Purpose:
            signer = signing.TimestampSigner(salt=f"paperboy.subscriptions.{purpose}")
            with contextlib.suppress(signing.BadSignature):
                keys.add(signer.unsign(candidate))
        for salt in (links.FEEDBACK_SALT, links.VIEW_SALT):
            data = links.read(candidate, salt)
            if data is not None:
                keys.add(str(data.get("s")))
    return keys


def expected_email(address: str) -> str:
    """How an address is stored (README: the domain is lower-cased, not the mailbox)."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def _render(self, context):
    """Template._render as in production (see Properties.setUp)."""
    return self.nodelist.render(context)


def routed(token: str) -> bool:
    """Whether a link with this token reaches its view (``<str:token>`` is ``[^/]+``);
    the others are the URL resolver's 404, whatever the method."""
    return token != "" and "/" not in token


def form_body(draw, case: hostile.FormCase) -> tuple[bytes, str]:
    content_type = draw(st.sampled_from(hostile.FORM_TYPES))
    return case.encode(content_type), content_type


class Properties(TestCase):
    """Two subscribers: A, whose links and address the examples start from, and B, the
    bystander. A's status changes from example to example; B stays active."""

    @classmethod
    def setUpTestData(cls):
        curated = list(Topic.objects.curated().order_by("pk"))
        mark = uuid.uuid4().hex[:12]  # not in the source, so hypothesis cannot echo it
        a = SubscriberFactory(email="ada@example.org", timezone="Europe/Paris")
        a.topics.add(curated[0], Topic.for_interest("replay buffers"))
        b = SubscriberFactory(
            email=f"b-{mark}@victim.example",
            consent_ip="198.51.100.77",
            consent_user_agent=f"agent {mark}",
        )
        b_interest = Topic.for_interest(f"quokka {mark}")
        b.topics.add(curated[1], b_interest)
        papers = [PaperFactory(title=f"Paper {n} on sparse things") for n in range(3)]
        for owner, reason in [(a, "replay buffers"), (b, f"because of quokka {mark}")]:
            digest = DigestFactory(subscriber=owner, status=Digest.Status.SENT)
            for position, paper in enumerate(papers[:2], start=1):
                DigestItem.objects.create(
                    digest=digest, paper=paper, position=position, reason=reason, score=1.0
                )
        Feedback.objects.create(subscriber=b, paper=papers[2], vote=1)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Read back rather than kept from setUpTestData (Django deep-copies those for
        # each test). Only their pk, key and email are used: the rows change from example
        # to example, these objects never do.
        a = Subscriber.objects.get(email="ada@example.org")
        b = Subscriber.objects.exclude(pk=a.pk).get()
        cls.A, cls.B = a, b
        cls.a_digest = Digest.objects.get(subscriber=a)
        cls.b_digest = Digest.objects.get(subscriber=b)
        cls.papers = list(Paper.objects.order_by("pk"))
        cls.curated = dict(Topic.objects.curated().values_list("pk", "key"))
        b_interest = b.topics.get(kind=Topic.Kind.INTEREST)
        cls.b_topics = [b_interest.pk]  # not a curated topic: no form may pick it
        # B's data as a page or a mail could show it: as is, or in a URL.
        cls.b_marks = sorted(
            {
                form.casefold()
                for text in (b.email, b_interest.name, b.consent_user_agent, b.consent_ip)
                for form in (text, quote(text), quote_plus(text))
            }
            | {b.key.hex, str(b.key)}
        )
        cls.a_tokens = {purpose: make_token(a, purpose) for purpose in Purpose}
        cls.tokens = {
            purpose: hostile.subscription_tokens(a, b, purpose, cls.a_tokens[purpose])
            for purpose in Purpose
        }
        a_key, b_key, paper = a.key.hex, b.key.hex, cls.papers[0].pk
        cls.feedback_tokens = hostile.object_tokens(
            links.FEEDBACK_SALT,
            owner=[{"s": a_key, "p": p.pk, "v": v} for p in cls.papers for v in (1, -1)],
            unusable=[
                {"s": a_key, "p": 10**9, "v": 1},
                {"s": a_key, "p": paper, "v": 0},
                {"s": a_key, "p": paper, "v": 2},
                {"s": a_key, "p": paper},
                {"s": uuid.uuid4().hex, "p": paper, "v": 1},
                [a_key, paper, 1],
            ],
            foreign=[{"s": b_key, "p": paper, "v": 1}],
        )
        cls.view_tokens = hostile.object_tokens(
            links.VIEW_SALT,
            owner=[{"s": a_key, "d": cls.a_digest.pk}],
            unusable=[
                {"s": a_key, "d": cls.b_digest.pk},
                {"s": b_key, "d": cls.a_digest.pk},
                {"s": a_key, "d": 10**9},
                {"s": a_key},
                "a string",
            ],
            foreign=[{"s": b_key, "d": cls.b_digest.pk}],
        )

    def setUp(self):
        # Django's test set-up wraps every template render to signal it to the test
        # client, which copies the context each time: a page with the 600 time zones
        # took three times as long as in production. Nothing here asks what was rendered.
        for template_class in (Template, PartialTemplate):
            self.enterContext(mock.patch.object(template_class, "_render", _render))
        # Here rather than on the class: conftest's generous_rate_limits fixture sets its
        # own limits per test, after the class's overrides. Hypothesis sends the same
        # address many times in an hour, and the counts live in a shared cache (Redis).
        self.enterContext(
            override_settings(
                PAPERBOY_SIGNUPS_PER_IP_PER_HOUR=10**9,
                PAPERBOY_SIGNUPS_PER_ADDRESS_PER_HOUR=10**9,
                ANYMAIL={"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY},
            )
        )

    # --- helpers ----------------------------------------------------------------------

    def set_a_status(self, status: str) -> None:
        now = timezone.now()
        Subscriber.objects.filter(pk=self.A.pk).update(
            status=status,
            confirmed_at=None if status == Subscriber.Status.PENDING else now,
            next_due_at=now + dt.timedelta(hours=3) if status == Subscriber.Status.ACTIVE else None,
        )

    def a_row(self) -> Subscriber:
        return Subscriber.objects.get(pk=self.A.pk)

    def exchange(
        self, method, path, body=None, content_type=None, client=None, b_addressed=False, **extra
    ):
        """One request, with what it queues on commit run (eagerly), checked against the
        properties every endpoint owes; returns (response, Diff). ``b_addressed``: the
        input names B's address, so B may get mail (the signup form)."""
        client = client or self.client
        before = snapshot()
        with self.captureOnCommitCallbacks(execute=True):
            if body is None:
                response = client.generic(method, path, **extra)
            else:
                response = client.generic(method, path, body, content_type, **extra)
        diff = Diff(before, snapshot())
        # In --hypothesis-show-statistics: which outcomes the examples reached.
        event(f"{method} answered {response.status_code}, changed {sorted(diff.summary())}")
        self.assertLess(response.status_code, 500, path)
        self.assert_rows_valid(diff)
        self.assert_b_untouched(diff)
        # A page may show what was sent to it (a form echoes its input), not more.
        sent = path + "\n" + (body or b"").decode("utf-8", "replace")
        self.assert_nothing_of_b(self.response_text(response), "the response", sent)
        self.assert_mail_only_to_owners(b_addressed)
        return response, diff

    @staticmethod
    def response_text(response) -> str:
        headers = "\n".join(f"{k}: {v}" for k, v in response.items())
        return headers + "\n" + response.content.decode("utf-8", "replace")

    def assert_rows_valid(self, diff: Diff) -> None:
        for model in TRACKED:
            touched = diff.created(model) | diff.updated(model)
            if not touched:
                continue
            for row in model.objects.filter(pk__in=touched):
                try:
                    row.full_clean()
                except ValidationError as error:
                    self.fail(f"stored an invalid {model.__name__} {row.pk}: {error}")

    def assert_b_untouched(self, diff: Diff) -> None:
        b = self.B
        summary = diff.summary()
        self.assertNotIn(b.pk, diff.updated(Subscriber) | diff.deleted(Subscriber), summary)
        for model in (Subscriber.topics.through, Feedback, Digest, DigestItem):
            owners = {row["subscriber_id"] for row in diff.rows(model)}
            self.assertNotIn(b.pk, owners, f"{model.__name__} of B changed: {summary}")
        for model, field in ((Suppression, "email"), (DeliveryEvent, "recipient")):
            addresses = {row[field].casefold() for row in diff.rows(model)}
            self.assertNotIn(b.email.casefold(), addresses, summary)

    def assert_nothing_of_b(self, text: str, where: str, sent: str = "") -> None:
        shown = text.casefold()
        found = [mark for mark in self.b_marks if mark in shown]
        if found:  # decoding a big form body is slow: only when there is something to find
            sent = sent.casefold() + "\n" + unquote_plus(sent.casefold())
            found = [mark for mark in found if mark not in sent]
        self.assertEqual(found, [], f"{where} shows B's data")
        if self.B.key.hex not in sent:
            self.assertNotIn(self.B.key.hex, signed_owners(text), f"{where} has B's link")

    def assert_mail_only_to_owners(self, b_addressed: bool) -> None:
        """Mail about B goes to B alone, and only when the input named B's address."""
        for message in mail.outbox:
            self.assertEqual(len(message.to), 1)
            if message.to[0].casefold() == self.B.email.casefold():
                self.assertTrue(b_addressed, "mailed B about someone else's input")
                self.assertEqual(message.subject, "Manage your Paperboy subscription")
                continue
            text = "\n".join(
                [message.subject, message.body, *(alt[0] for alt in message.alternatives)]
            )
            self.assert_nothing_of_b(text, f"mail to {message.to[0]}")

    def assert_preferences_saved(self, subscriber: Subscriber, case: hostile.FormCase):
        self.assertEqual(subscriber.frequency, case.value("frequency"))
        self.assertEqual(subscriber.weekday, int(case.value("weekday")))
        self.assertEqual(subscriber.send_hour, int(case.value("send_hour")))
        self.assertEqual(subscriber.timezone, case.value("timezone"))
        self.assertEqual(subscriber.max_papers, int(case.value("max_papers")))
        interests = case.value("interests") or ""
        wanted = {self.curated[int(pk)] for pk in case.fields["topics"].values} | {
            hostile.interest_key(part) for part in interests.split(",") if part.strip()
        }
        keys = set(subscriber.topics.values_list("key", flat=True))
        # A pending subscriber's interests wait on their row for the confirmation.
        keys |= {hostile.interest_key(text) for text in subscriber.pending_interests}
        self.assertEqual(keys, wanted)

    # --- signup -----------------------------------------------------------------------

    @fuzz
    @given(st.data())
    def test_the_signup_page_answers_any_query(self, data):
        query = data.draw(
            st.lists(st.tuples(hostile.any_text, st.one_of(hostile.any_text, hostile.huge())))
        )
        agent = data.draw(hostile.header_text)
        response, diff = self.exchange(
            "GET", f"/subscribe/?{urlencode(query)}", HTTP_USER_AGENT=agent
        )
        self.assertContains(response, 'name="email"')
        self.assertEqual(diff.summary(), {})

    @fuzz
    @given(st.data())
    def test_signup_stores_only_valid_subscriptions(self, data):
        a_status = data.draw(st.sampled_from(STATUSES))
        self.set_a_status(a_status)
        case = data.draw(
            hostile.preference_forms(list(self.curated), self.b_topics, self.A.email, self.B.email)
        )
        body, content_type = form_body(data.draw, case)
        event(f"form valid: {case.valid}")
        address = (case.value("email") or "").strip().casefold()

        response, diff = self.exchange(
            "POST", "/subscribe/", body, content_type, b_addressed=address == self.B.email
        )

        bot = bool((case.value("website") or "").strip())
        if response.status_code == 400:
            self.assertIsNot(case.valid, True, response.content.decode()[:3000])
            self.assertEqual(diff.summary(), {})
            self.assertEqual(mail.outbox, [])
            return
        self.assertIsNot(case.valid, False, diff.summary())
        self.assertEqual(
            (response.status_code, response["Location"]), (302, "/subscribe/check-your-inbox/")
        )
        if bot:
            self.assertEqual(diff.summary(), {})
            self.assertEqual(mail.outbox, [])
            return
        self.assertEqual(diff.deleted(Subscriber) | diff.deleted(Topic), set())
        if address == self.A.email.casefold():
            a = self.a_row()
            if a_status in (Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED):
                self.assertEqual(a.status, Subscriber.Status.PENDING)
                if case.valid:
                    self.assert_preferences_saved(a, case)
                self.assertEqual(
                    [m.subject for m in mail.outbox], ["Confirm your Paperboy subscription"]
                )
            else:
                self.assertEqual(diff.summary(), {})
                subjects = (
                    []
                    if a_status == Subscriber.Status.SUPPRESSED
                    else ["Manage your Paperboy subscription"]
                )
                self.assertEqual([m.subject for m in mail.outbox], subjects)
        elif address == self.B.email.casefold():
            self.assertEqual(diff.summary(), {})
        else:
            self.assertEqual(diff.updated(Subscriber), set())
            [pk] = diff.created(Subscriber)
            subscriber = Subscriber.objects.get(pk=pk)
            self.assertEqual(subscriber.status, Subscriber.Status.PENDING)
            [message] = mail.outbox
            self.assertEqual(message.to, [subscriber.email])
            self.assertIn(make_token(subscriber, Purpose.CONFIRM).split(":")[0], message.body)
            if case.valid:
                self.assertEqual(subscriber.email, expected_email(case.value("email")))
                self.assert_preferences_saved(subscriber, case)
        # Only the subscriber signing up is linked to topics; new topics are interests.
        linked = {row["subscriber_id"] for row in diff.rows(Subscriber.topics.through)}
        self.assertLessEqual(linked, {self.A.pk, *diff.created(Subscriber)})
        created = Topic.objects.filter(pk__in=diff.created(Topic))
        self.assertEqual({t.kind for t in created} - {Topic.Kind.INTEREST}, set())

    @fuzz
    @given(st.data())
    def test_signup_survives_any_body(self, data):
        body, content_type = data.draw(hostile.bodies())
        response, diff = self.exchange("POST", "/subscribe/", body, content_type)
        # Random fields are never a whole valid form, and a bot-free empty one is refused.
        self.assertEqual(response.status_code, 400)
        self.assertEqual(diff.summary(), {})

    # --- links in mail: confirm, manage, unsubscribe -----------------------------------

    def draw_link(self, data, purpose: Purpose):
        a_status = data.draw(st.sampled_from(STATUSES))
        self.set_a_status(a_status)
        token, kind = data.draw(self.tokens[purpose])
        event(f"token {kind}")
        return a_status, token, kind

    @fuzz
    @given(st.data())
    def test_confirmation_links(self, data):
        a_status, token, kind = self.draw_link(data, Purpose.CONFIRM)
        method = data.draw(st.one_of(st.sampled_from(["GET", "POST"]), st.sampled_from(METHODS)))
        agent = data.draw(hostile.header_text)
        url = hostile.path("/confirm/", token)

        response, diff = self.exchange(method, url, HTTP_USER_AGENT=agent)

        confirms = method == "POST" and kind == "valid" and a_status == Subscriber.Status.PENDING
        self.assertEqual(
            diff.summary(), {"Subscriber": {"updated": {self.A.pk}}} if confirms else {}
        )
        if not routed(token):
            self.assertEqual(response.status_code, 404)
        elif method not in ("GET", "POST"):
            self.assertEqual(response.status_code, 405)
        elif kind == "bad":
            self.assertEqual(response.status_code, 404)
        elif kind == "old":  # a week is all a confirmation link gets
            self.assertEqual(response.status_code, 400)
        elif method == "GET" and a_status == Subscriber.Status.PENDING:
            self.assertEqual(response.status_code, 200)
        else:
            self.assertEqual(response.status_code, 302)
            self.assertTrue(response["Location"].endswith("/done/"))
        if confirms:
            a = self.a_row()
            self.assertEqual(a.status, Subscriber.Status.ACTIVE)
            self.assertEqual(a.consent_user_agent, agent[:500])
            self.assertIsNotNone(a.next_due_at)

    @fuzz
    @given(st.data())
    def test_manage_page(self, data):
        _, token, kind = self.draw_link(data, Purpose.MANAGE)
        suffix = data.draw(st.sampled_from(["/", "/?saved=1", "/?saved=" + "1" * 100]))

        response, diff = self.exchange("GET", hostile.path("/manage/", token, suffix))

        self.assertEqual(diff.summary(), {})
        if kind == "bad":
            self.assertEqual(response.status_code, 404)
        else:
            self.assertEqual(response.status_code, 200)
            self.assertContains(response, self.A.email)

    @fuzz
    @given(st.data())
    def test_manage_form_changes_only_the_owner_and_only_when_valid(self, data):
        a_status, token, kind = self.draw_link(data, Purpose.MANAGE)
        case = None
        if data.draw(st.integers(0, 3)):  # mostly the form, sometimes noise
            case = data.draw(
                hostile.preference_forms(list(self.curated), self.b_topics, None, None)
            )
            body, content_type = form_body(data.draw, case)
            event(f"form valid: {case.valid}")
        else:
            body, content_type = data.draw(hostile.bodies())
        before = self.a_row()
        url = hostile.path("/manage/", token)

        response, diff = self.exchange("POST", url, body, content_type)

        if kind == "bad":
            self.assertEqual(response.status_code, 404)
            self.assertEqual(diff.summary(), {})
            return
        if response.status_code == 400:
            self.assertIsNot(case and case.valid, True)
            self.assertEqual(diff.summary(), {})
            return
        self.assertEqual(response.status_code, 302)
        self.assertIsNotNone(case, "a random body saved preferences")
        self.assertIsNot(case.valid, False, diff.summary())
        self.assertTrue(response["Location"].endswith("/?saved=1"))
        self.assertLessEqual(diff.updated(Subscriber), {self.A.pk})
        self.assertEqual(diff.created(Subscriber) | diff.deleted(Subscriber), set())
        linked = {row["subscriber_id"] for row in diff.rows(Subscriber.topics.through)}
        self.assertLessEqual(linked, {self.A.pk})
        a = self.a_row()
        self.assertEqual((a.status, a.email), (before.status, before.email))
        self.assertEqual(a.next_due_at is not None, a_status == Subscriber.Status.ACTIVE)
        if case.valid:
            self.assert_preferences_saved(a, case)

    @fuzz
    @given(st.data())
    def test_unsubscribe_links(self, data):
        a_status, token, kind = self.draw_link(data, Purpose.UNSUBSCRIBE)
        method = data.draw(st.one_of(st.sampled_from(["GET", "POST"]), st.sampled_from(METHODS)))

        response, diff = self.exchange(method, hostile.path("/unsubscribe/", token))

        self.assert_unsubscribed_only_by_a_post(method, token, a_status, kind, response, diff)

    def assert_unsubscribed_only_by_a_post(self, method, token, a_status, kind, response, diff):
        unsubscribes = method == "POST" and kind != "bad" and a_status in UNSUBSCRIBABLE
        self.assertEqual(
            diff.summary(), {"Subscriber": {"updated": {self.A.pk}}} if unsubscribes else {}
        )
        if routed(token) and method not in ("GET", "POST"):
            self.assertEqual(response.status_code, 405)
        else:
            self.assertEqual(response.status_code, 404 if kind == "bad" else 200)
        a = self.a_row()
        if unsubscribes:
            self.assertEqual((a.status, a.next_due_at), (Subscriber.Status.UNSUBSCRIBED, None))
        else:
            self.assertEqual(a.status, a_status)

    @fuzz
    @given(st.data())
    def test_one_click_unsubscribe(self, data):
        """RFC 8058: a bare POST from the mail provider, no cookie, no CSRF token."""
        a_status, token, kind = self.draw_link(data, Purpose.UNSUBSCRIBE)
        body, content_type = data.draw(
            st.one_of(
                st.tuples(
                    st.sampled_from(
                        [b"List-Unsubscribe=One-Click", b"List-Unsubscribe=One-Click&x=1", b""]
                    ),
                    st.just("application/x-www-form-urlencoded"),
                ),
                st.just(
                    (
                        encode_multipart(BOUNDARY, {"List-Unsubscribe": "One-Click"}),
                        MULTIPART_CONTENT,
                    )
                ),
                hostile.bodies(),
            )
        )
        provider = Client(enforce_csrf_checks=True)

        response, diff = self.exchange(
            "POST", hostile.path("/unsubscribe/", token), body, content_type, client=provider
        )

        self.assert_unsubscribed_only_by_a_post("POST", token, a_status, kind, response, diff)

    # --- links in digests: feedback, view in browser -----------------------------------

    @fuzz
    @given(st.data())
    def test_feedback_links(self, data):
        self.set_a_status(data.draw(st.sampled_from(STATUSES)))
        token, kind = data.draw(self.feedback_tokens)
        event(f"token {kind}")
        method = data.draw(st.sampled_from(["GET", "POST", "HEAD"]))

        response, diff = self.exchange(method, hostile.path("/feedback/", token))

        if kind != "valid":
            self.assertEqual(response.status_code, 404)
            self.assertEqual(diff.summary(), {})
            return
        self.assertEqual(response.status_code, 200)
        if method != "POST":
            # Link scanners GET and HEAD every link of a mail: only the button votes.
            self.assertEqual(diff.summary(), {})
            return
        vote = links.read(token, links.FEEDBACK_SALT)
        self.assertEqual(set(diff.summary()), {"Feedback"})
        [row] = Feedback.objects.filter(pk__in=diff.created(Feedback) | diff.updated(Feedback))
        self.assertEqual(
            (row.subscriber_id, row.paper_id, row.vote), (self.A.pk, vote["p"], vote["v"])
        )

    @fuzz
    @given(st.data())
    def test_view_in_browser_links(self, data):
        self.set_a_status(data.draw(st.sampled_from(STATUSES)))
        token, kind = data.draw(self.view_tokens)
        event(f"token {kind}")
        query = urlencode(data.draw(st.lists(st.tuples(hostile.any_text, hostile.any_text))))

        response, diff = self.exchange("GET", hostile.path("/digests/", token, f"/?{query}"))

        self.assertEqual(diff.summary(), {})
        if kind != "valid":
            self.assertEqual(response.status_code, 404)
        else:
            self.assertEqual(response.status_code, 200)
            self.assertContains(response, "replay buffers")

    # --- webhooks ---------------------------------------------------------------------

    # Each ESP, and the id its send API gave A's digest.
    ESPS = {
        "postmark": (POSTMARK, "6e4a1c5d-61cb-4bd4-9a58-4bfa5c6d2a3e"),
        "mailgun": (MAILGUN, "<20261128080000.a1b2c3@mg.example.org>"),
        "brevo": (BREVO, "<202611280800.123456@smtp-relay.mailin.fr>"),
    }

    @fuzz
    @given(st.data())
    def test_tracking_webhook(self, data):
        a_status = data.draw(st.sampled_from(STATUSES))
        self.set_a_status(a_status)
        esp, message_id = self.ESPS[data.draw(st.sampled_from(sorted(self.ESPS)))]
        Digest.objects.filter(pk=self.a_digest.pk).update(message_id=message_id)
        kind = data.draw(st.sampled_from(hostile.EVENT_KINDS))
        seq = data.draw(st.integers(1, 10**6))
        payload = esp.event(kind, self.A.email, message_id, seq, minimal=True)
        auth, authorized = data.draw(hostile.authorizations(SECRET))
        shape = data.draw(st.sampled_from(["intact", "mutated", "noise"]))
        intact = shape == "intact"
        if shape == "noise":
            body, content_type = data.draw(hostile.bodies())
        else:
            if shape == "mutated":
                payload = data.draw(hostile.mutated(payload))
            body, content_type = esp.body(payload), "application/json"
        extra = {"HTTP_AUTHORIZATION": auth} if auth is not None else {}
        event(f"authorized: {authorized}, payload intact: {intact}")

        response, diff = self.exchange("POST", esp.url, body, content_type, **extra)

        if not authorized:
            self.assertEqual(response.status_code, 400)
        if intact and authorized:
            self.assertEqual(response.status_code, 200)
            self.assertEqual(len(diff.created(DeliveryEvent)), 1)
            if kind in ("hard_bounce", "complaint"):
                self.assertEqual(self.a_row().status, Subscriber.Status.SUPPRESSED)
                self.assertTrue(Suppression.objects.with_email(self.A.email).exists())
        if response.status_code != 200:
            self.assertEqual(diff.summary(), {})
            return
        self.assertLessEqual(len(diff.created(DeliveryEvent)), 1)
        self.assertLessEqual(diff.updated(Subscriber), {self.A.pk})
        self.assertLessEqual(diff.updated(Digest), {self.a_digest.pk})
        self.assertLessEqual(
            set(diff.summary()), {"DeliveryEvent", "Suppression", "Subscriber", "Digest"}
        )

    @fuzz
    @given(st.data())
    def test_inbound_unsubscribe_webhook(self, data):
        """The mailto: form of List-Unsubscribe: "unsubscribe <token>" in the subject."""
        a_status = data.draw(st.sampled_from(STATUSES))
        self.set_a_status(a_status)
        token, kind = data.draw(self.tokens[Purpose.UNSUBSCRIBE])
        words = token.split()
        if words and words[0] == self.a_tokens[Purpose.UNSUBSCRIBE]:
            kind = "valid"  # " token": the subject's spaces are no part of the token
        prefix = data.draw(st.sampled_from(["unsubscribe", "Re: Unsubscribe", "UNSUBSCRIBE\t"]))
        subject = f"{prefix} {token}"
        esp = data.draw(st.sampled_from(["postmark", "mailgun"]))
        auth, authorized = data.draw(hostile.authorizations(SECRET))
        shape = data.draw(st.sampled_from(["intact", "mutated", "noise"]))
        intact = shape == "intact"
        if shape == "noise":
            body, content_type = data.draw(hostile.bodies())
        elif esp == "postmark":
            payload = postmark_inbound(subject, minimal=True)
            if shape == "mutated":
                payload = data.draw(hostile.mutated(payload))
            body, content_type = json.dumps(payload).encode(), "application/json"
        else:
            form = mailgun_inbound(subject, minimal=True)
            if shape == "mutated":
                form = data.draw(hostile.mutated(form))
            body = urlencode({k: str(v) for k, v in form.items()}).encode()
            content_type = "application/x-www-form-urlencoded"
        extra = {"HTTP_AUTHORIZATION": auth} if auth is not None else {}
        event(f"authorized: {authorized}, payload intact: {intact}")

        response, diff = self.exchange(
            "POST", f"/anymail/{esp}/inbound/", body, content_type, **extra
        )

        if not authorized:
            self.assertEqual(response.status_code, 400)
        elif intact and len(subject.splitlines()) == 1 and "\x00" not in subject:
            # One line: the email package refuses a header with a line break in it.
            self.assertEqual(response.status_code, 200)
        unsubscribes = kind != "bad" and a_status in UNSUBSCRIBABLE
        if response.status_code != 200 or not unsubscribes:
            self.assertEqual(diff.summary(), {})
            return
        if intact:
            self.assertEqual(diff.summary(), {"Subscriber": {"updated": {self.A.pk}}})
            self.assertEqual(self.a_row().status, Subscriber.Status.UNSUBSCRIBED)
        else:
            self.assertLessEqual(set(diff.summary()), {"Subscriber"})
            self.assertLessEqual(diff.updated(Subscriber), {self.A.pk})
