"""The fast path of a digest: rendering from cached parts, and SMTP bytes without
Django's EmailMessage. Each is checked against the slow, obvious way of doing it."""

import datetime as dt
import email
import email.policy
import re
from html.parser import HTMLParser

import pytest
from django.core import signing
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from digest import links as digest_links
from digest import rendering
from digest.compose import compose
from digest.models import Digest
from mailing import mime
from papers.models import Paper
from subscriptions import links
from tests.support.factories import PaperFactory, SubscriberFactory, TopicFactory, match

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)
XSS = "<script>alert('x')</script> & \"quotes\""


@pytest.fixture
def digest(settings):
    settings.SITE_URL = "https://papers.example"
    settings.DIGEST_FROM_EMAIL = "Paperböy <digest@papers.example>"
    topic = TopicFactory(name=f"Replay {XSS}", terms="replay buffer")
    subscriber = SubscriberFactory(email="ada@bücher.example", timezone="Asia/Tokyo")
    subscriber.topics.add(topic)
    for n, title in enumerate(["Replay buffers at scale", f"Replay {XSS}", "Ünïcode replay"]):
        paper = PaperFactory(
            title=title,
            abstract=f"We study replay buffers. {XSS} " + "word " * 80,
            authors=["Ada Lovelace", f"Eve {XSS}"],
            upvotes=n * 7,
            featured=n == 1,
            ingested_at=NOW - dt.timedelta(hours=2),
        )
        match(paper, topic, score=3.0 - n, terms=["replay buffer", XSS])
    return Digest.objects.create(subscriber=subscriber, period="2026-11-28", scheduled_for=NOW)


def picks_for(digest):
    return compose(digest.subscriber, until=NOW)


class _Normalised(HTMLParser):
    """Tags, attributes and text, whitespace collapsed: what a browser builds, not how
    the markup spells it (entities, attribute quoting)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tokens = []

    def handle_starttag(self, tag, attrs):
        self.tokens.append(("start", tag, tuple(sorted(attrs))))

    def handle_endtag(self, tag):
        self.tokens.append(("end", tag))

    def handle_data(self, data):
        if text := " ".join(data.split()):
            self.tokens.append(("text", text))


def normalised(html: str) -> list:
    parser = _Normalised()
    parser.feed(html)
    return parser.tokens


def test_cached_parts_render_what_the_whole_template_would(digest):
    """The reference: every paper rendered with its real values, the whole document
    inlined in one go, as a straightforward renderer would."""
    picks = picks_for(digest)
    subscriber = digest.subscriber

    subject, text, html = rendering.render_digest(digest, picks)

    blocks_html, blocks_text = [], []
    for position, pick in enumerate(picks, 1):
        context = {
            "paper": {
                "title": pick.paper.title,
                "url": pick.paper.url,
                "authors": ", ".join(pick.paper.authors),
                "snippet": " ".join(pick.paper.abstract.split()[:60]) + "…",
                "upvotes": pick.paper.upvotes,
                "featured": pick.paper.featured,
            },
            "reason": pick.reason,
            "up_url": digest_links.feedback_url(subscriber, pick.paper, 1),
            "down_url": digest_links.feedback_url(subscriber, pick.paper, -1),
            "position": position,
        }
        blocks_html.append(render_to_string("emails/digest-paper.html", context))
        blocks_text.append(render_to_string("emails/digest-paper.txt", context))
    frame = {
        "date": dt.date(2026, 11, 28),
        "weekly": False,
        "count": len(picks),
        "first_title": picks[0].paper.title,
        "site_url": "https://papers.example",
        "view_url": digest_links.view_url(digest),
        "manage_url": links.manage_url(subscriber),
        "unsubscribe_url": links.unsubscribe_url(subscriber),
        "papers_html": mark_safe("".join(blocks_html)),  # noqa: S308 - rendered above
        "papers_text": "".join(blocks_text),
    }
    reference_html = rendering._inliner().inline(render_to_string("emails/digest-body.html", frame))
    reference_text = render_to_string("emails/digest-body.txt", frame)

    assert normalised(html) == normalised(reference_html)
    # Signed links carry a timestamp: compare them without it.
    unstamped = re.compile(r":[0-9A-Za-z]{6}:")
    assert unstamped.sub(":", text) == unstamped.sub(":", reference_text)
    assert subject.startswith(f"Your papers for Saturday, 28 November: {picks[0].paper.title[:20]}")
    assert subject.endswith(" and 2 more")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "style=" in html.split('class="paper"', 1)[1][:40]  # the paper blocks are inlined


def test_text_that_looks_like_a_slot_is_left_as_it_is(digest):
    picks = picks_for(digest)
    sneaky = rendering._slot("up")  # as if an interest or a title were named like a slot
    reasons = [f"because {sneaky}"] * len(picks)

    _, text, html = rendering.render_digest(digest, picks, reasons=reasons)

    assert text.count(f"because {sneaky}") == len(picks)
    assert html.count(f"because {sneaky}") == len(picks)


def test_a_curators_change_shows_in_the_next_rendering(digest):
    picks = picks_for(digest)
    plain = next(pick for pick in picks if not pick.paper.featured)
    _, _, before = rendering.render_digest(digest, [plain])

    # A queryset update, as the admin's actions do: updated_at does not move.
    Paper.objects.filter(pk=plain.paper.pk).update(featured=True, title="Now featured")
    plain.paper.refresh_from_db()
    _, _, after = rendering.render_digest(digest, [plain])

    assert "★ Featured" not in before and "★ Featured" in after
    assert "Now featured" in after


def test_fast_links_are_the_links_reverse_makes(digest, settings):
    subscriber = digest.subscriber
    token = signing.TimestampSigner(salt="paperboy.subscriptions.manage").sign(subscriber.key.hex)

    assert (
        links.manage_url(subscriber)
        == f"https://papers.example{reverse('subscriptions:manage', args=[token])}"
    )
    assert links.token_url("digest:view", "a:b-c_d") == (
        f"https://papers.example{reverse('digest:view', args=['a:b-c_d'])}"
    )


def test_cached_signers_follow_the_secret_key(digest, settings):
    paper = picks_for(digest)[0].paper
    url = digest_links.feedback_url(digest.subscriber, paper, 1)
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert digest_links.read(token, digest_links.FEEDBACK_SALT) == {
        "s": digest.subscriber.key.hex,
        "p": paper.pk,
        "v": 1,
    }

    settings.SECRET_KEY = "another-" + "k" * 50

    assert digest_links.read(token, digest_links.FEEDBACK_SALT) is None
    fresh = digest_links.feedback_url(digest.subscriber, paper, 1).rstrip("/").rsplit("/", 1)[1]
    assert digest_links.read(fresh, digest_links.FEEDBACK_SALT)["p"] == paper.pk


class TestSMTPBytes:
    def parse(self, data: bytes):
        return email.message_from_bytes(data, policy=email.policy.default)

    def test_they_read_like_djangos_message(self, digest):
        picks = picks_for(digest)
        rendered = rendering.render_digest(digest, picks)

        message_id, data = rendering.digest_bytes(digest, rendered)
        ours = self.parse(data)
        django = self.parse(rendering.build_digest(digest, rendered=rendered).message().as_bytes())

        for header in [
            "From",
            "To",
            "Subject",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "List-Id",
            "Auto-Submitted",
            "MIME-Version",
        ]:
            assert ours[header] == django[header], header
        assert ours["Message-ID"].strip() == message_id
        assert re.fullmatch(r"<.+@papers\.example>", message_id)
        assert ours.get_content_type() == django.get_content_type() == "multipart/alternative"
        for kind in ("plain", "html"):
            assert ours.get_body((kind,)).get_content().replace("\r\n", "\n") == django.get_body(
                (kind,)
            ).get_content().replace("\r\n", "\n")
        assert ours["To"] == "ada@xn--bcher-kva.example"
        assert ours["From"] == "Paperböy <digest@papers.example>"
        assert email.utils.parsedate_to_datetime(ours["Date"]).tzinfo is not None

    def test_every_line_fits_smtp(self, digest):
        _, data = rendering.digest_bytes(digest, rendering.render_digest(digest, picks_for(digest)))

        lines = data.split(b"\r\n")
        assert max(len(line) for line in lines) <= mime.MAX_LINE
        assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only, as SMTP wants
        assert data.isascii()

    @pytest.mark.parametrize(
        "subject",
        ["Plain", "Ünïcode… and more", "日本語のタイトル" * 12, "📰 " * 40, "x" * 2000],
    )
    def test_any_subject_round_trips(self, subject):
        data = mime.multipart_alternative(
            from_email="a@example.org",
            to="b@example.org",
            subject=subject,
            headers={},
            text="t",
            html="h",
        )

        assert self.parse(data)["Subject"] == subject
        assert all(len(line) <= 78 for line in data.split(b"\r\n")[:50] if b"=?utf-8?" in line)

    @pytest.mark.parametrize(
        "field,value",
        [
            ("subject", "Hello\r\nBcc: victim@example.org"),
            ("subject", "Hello\nX-Evil: 1"),
            ("to", "ada@example.org\r\nBcc: victim@example.org"),
        ],
    )
    def test_a_line_break_never_becomes_a_header(self, field, value):
        fields = {"from_email": "a@example.org", "to": "b@example.org", "subject": "s"}
        fields[field] = value

        with pytest.raises(ValueError):
            mime.multipart_alternative(**fields, headers={}, text="t", html="h")

    def test_a_structured_header_is_never_encoded(self):
        with pytest.raises(ValueError, match="List-Id"):
            mime.multipart_alternative(
                from_email="a@example.org",
                to="b@example.org",
                subject="s",
                headers={"List-Id": "Ünïcode <x.example>"},
                text="t",
                html="h",
            )


def test_over_smtp_the_digest_goes_as_the_fast_bytes(digest, smtp_mailer):
    from digest import sending
    from mailing import message

    digest_ids = [digest.pk]
    with pytest.MonkeyPatch.context() as patch:
        # The Django message must not be built on the SMTP path.
        patch.setattr(message, "email", lambda *a, **k: pytest.fail("built twice"))
        result = sending.send_batch(digest_ids, now=NOW)

    assert result.sent == digest_ids
    [received] = smtp_mailer.wait_for(1)
    digest.refresh_from_db()
    assert received.parsed["Message-ID"].strip() == digest.message_id
    assert received.rcpt_tos == ("ada@xn--bcher-kva.example",)
    assert received.mail_from == "digest@papers.example"
    assert "Replay buffers at scale" in received.parsed.get_body(("html",)).get_content()
    assert timezone.is_aware(digest.sent_at)
