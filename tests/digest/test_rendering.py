"""The fast path of a digest: rendering from cached parts, and SMTP bytes without
Django's EmailMessage. Each is checked against the slow, obvious way of doing it."""

import datetime as dt
import email
import email.policy
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

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
from digest.picks import Pick
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
                "links": [{"label": "PDF", "href": pick.paper.pdf_link, "note": ""}],
                "text_links": [{"label": "PDF", "href": pick.paper.pdf_link, "note": ""}],
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


class _Anchors(HTMLParser):
    """Each link's address and the text a reader sees in it, in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._open: list[str] | None = None
        self._href = ""

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href, self._open = dict(attrs).get("href", ""), []

    def handle_data(self, data):
        if self._open is not None:
            self._open.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._open is not None:
            self.links.append((self._href, " ".join("".join(self._open).split())))
            self._open = None


def anchors(html: str) -> list[tuple[str, str]]:
    parser = _Anchors()
    parser.feed(html)
    return parser.links


def visible_text(html: str) -> str:
    """The words a reader sees, whitespace collapsed (the <head> left out)."""
    body = html.rsplit("</head>", 1)[-1]
    return " ".join(token[1] for token in normalised(body) if token[0] == "text")


def paper_blocks(text: str, html: str) -> list[tuple[str, str]]:
    """Per paper, in order: its text block, and the words its HTML block shows."""
    texts = re.split(r"\n(?=\d+\. )", text.split("\n--\n")[0])[1:]
    htmls = html.split('<div class="paper"')[1:]
    assert len(texts) == len(htmls)
    return [(t, visible_text('<div class="paper"' + h)) for t, h in zip(texts, htmls, strict=True)]


def received(digest, picks, *, web: bool = False) -> tuple[str, str]:
    """(text, HTML) of the digest as a mail client reads them from the raw bytes."""
    _, data = rendering.digest_bytes(digest, rendering.render_digest(digest, picks, web=web))
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    return text, parsed.get_body(("html",)).get_content()


def shown_paper(**fields) -> Paper:
    defaults = {
        "title": "Sparse replay at scale",
        "arxiv_id": "2411.01234",
        "abstract": "ABSTRACT-START " + "We replay sparse buffers. " * 40 + "ABSTRACT-END",
        "authors": ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
        "upvotes": 0,
        "ai_summary": "Sparse replay buffers keep continual learners from forgetting.",
        "code_url": "https://github.com/example/sparse-replay",
        "code_stars": 1234,
        "project_url": "https://sparse-replay.example.org/",
    }
    return PaperFactory(**defaults | fields)


class TestWhatAReaderSees:
    """Parsed from the raw message bytes, as a mail client shows them."""

    @pytest.fixture
    def topic(self):
        return TopicFactory(name="Replay methods", terms="replay buffer")

    def pick(self, paper, topic, terms=("replay buffer", "experience replay")) -> Pick:
        return Pick(paper=paper, relevance=2.0, topics=[topic], evidence=[(list(terms), "")])

    def test_the_ai_summary_the_sources_links_and_short_authors(self, digest, topic):
        paper = shown_paper()

        text, html = received(digest, [self.pick(paper, topic)])

        seen = visible_text(html)
        assert "AI summary: Sparse replay buffers keep continual learners from forgetting." in seen
        assert "ABSTRACT-START" not in html and "ABSTRACT-END" not in html
        assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in seen
        assert "Edsger Dijkstra" not in html
        links = anchors(html)
        for link in [
            ("https://arxiv.org/abs/2411.01234", "Abstract"),
            ("https://arxiv.org/pdf/2411.01234", "PDF"),
            ("https://github.com/example/sparse-replay", "Code"),
            ("https://sparse-replay.example.org/", "Project page"),
        ]:
            assert link in links
        assert "Code (1,234 stars) · Project page" in seen
        assert "Why: Replay methods: mentions replay buffer, experience replay." in seen

        assert "AI summary: Sparse replay buffers keep continual learners from forgetting." in text
        assert "ABSTRACT-START" not in text
        assert "Ada Lovelace, Alan Turing, Grace Hopper et al.\n" in text
        assert "Edsger Dijkstra" not in text
        assert "   PDF: https://arxiv.org/pdf/2411.01234\n" in text
        assert "   Code (1,234 stars): https://github.com/example/sparse-replay\n" in text
        assert "   Project page: https://sparse-replay.example.org/\n" in text
        assert "Why: Replay methods: mentions replay buffer, experience replay.\n" in text
        assert "★" not in text

    def test_no_upvotes_show_nothing_and_missing_links_are_left_out(self, digest, topic):
        bare = shown_paper(ai_summary="", code_url="", code_stars=None, project_url="")
        voted = shown_paper(arxiv_id="2411.05678", upvotes=12, authors=["Ada Lovelace"])

        text, html = received(digest, [self.pick(bare, topic), self.pick(voted, topic)])

        (bare_text, bare_seen), (voted_text, voted_seen) = paper_blocks(text, html)
        assert "▲" not in bare_text and "▲" not in bare_seen
        assert "▲ 0" not in html and "▲ 0" not in text
        assert "▲ 12 upvotes" in voted_seen and "▲ 12 upvotes · Why:" in voted_text
        # Without a summary: the abstract's first words, as before, and no "Abstract"
        # link (the title is one).
        assert "We replay sparse buffers." in bare_seen and "We replay sparse buffers." in bare_text
        assert "AI summary" not in bare_seen and "AI summary" not in bare_text
        assert "ABSTRACT-END" not in html
        bare_links = [link for link in anchors(html) if "2411.01234" in link[0]]
        assert [label for _, label in bare_links] == ["Sparse replay at scale", "PDF"]
        assert "Code" not in bare_seen and "Project page" not in bare_seen
        assert "Code" not in bare_text and "Project page" not in bare_text
        assert "Why: Replay methods: mentions replay buffer, experience replay." in bare_seen

    def test_a_code_link_without_a_star_count_shows_no_count(self, digest, topic):
        one = shown_paper(code_stars=1)
        unknown = shown_paper(arxiv_id="2411.05678", code_stars=None)

        text, html = received(digest, [self.pick(one, topic), self.pick(unknown, topic)])

        assert "Code (1 star)" in visible_text(html)
        assert "   Code (1 star): https://github.com/example/sparse-replay\n" in text
        assert "   Code: https://github.com/example/sparse-replay\n" in text
        assert visible_text(html).count("Code") == 2

    def test_the_view_in_browser_page_shows_the_same_without_the_votes(self, digest, client):
        paper = Paper.objects.get(title="Replay buffers at scale")
        Paper.objects.filter(pk=paper.pk).update(
            ai_summary="Replay at scale, summed up.",
            code_url="https://github.com/example/replay",
            code_stars=18,
            project_url="https://replay.example.org/",
            authors=["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
            upvotes=0,
        )
        from digest import sending

        assert sending.send_batch([digest.pk], now=NOW).sent == [digest.pk]

        response = client.get(urlsplit(digest_links.view_url(digest)).path)

        html = response.content.decode()
        seen = visible_text(html)
        assert "AI summary: Replay at scale, summed up." in seen
        assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in seen
        assert "Code (18 stars)" in seen
        assert ("https://github.com/example/replay", "Code") in anchors(html)
        assert ("https://replay.example.org/", "Project page") in anchors(html)
        assert (paper.url, "Abstract") in anchors(html)
        assert "Why: Replay " in seen and "mentions replay buffer" in seen
        assert "▲ 0" not in seen
        assert "More like this" not in seen and "/feedback/" not in html

    def test_new_stars_and_a_new_summary_show_in_the_next_rendering(self, digest, topic):
        paper = shown_paper()
        _, before = received(digest, [self.pick(paper, topic)])

        # A queryset update, as an import does: the cached block is keyed on what it shows.
        Paper.objects.filter(pk=paper.pk).update(code_stars=2000, ai_summary="A new summary.")
        paper.refresh_from_db()
        _, after = received(digest, [self.pick(paper, topic)])

        assert "Code (1,234 stars)" in visible_text(before)
        assert "Code (2,000 stars)" in visible_text(after)
        assert "AI summary: A new summary." in visible_text(after)


# Gmail clips a message whose HTML is over 102 kB behind "[Message clipped] View
# entire message", and with it the unsubscribe link at the bottom.
GMAIL_CLIPS_AT = 102 * 1000


def test_a_digest_of_twenty_large_papers_is_not_clipped_by_gmail(digest):
    topics = [
        TopicFactory(name=f"Continual and lifelong learning for embodied agents {n}")
        for n in range(3)
    ]
    terms = [
        "experience replay with prioritised sampling",
        "catastrophic forgetting in large language models",
        "parameter-efficient fine-tuning adapters",
    ]
    picks = []
    for n in range(20):
        paper = PaperFactory(
            title=(
                f"Scaling Sparse Mixture-of-Experts Replay Buffers for Continual Multimodal "
                f"Reinforcement Learning in Open-Ended Embodied Environments, part {n}"
            )[:300],
            authors=[f"Firstname{k} Van Der Lastname-Hyphenated{k}" for k in range(24)],
            abstract=" ".join(["Replay buffers mitigate catastrophic forgetting."] * 40),
            ai_summary=" ".join(["Sparse replay keeps continual learners from forgetting."] * 8),
            code_url=f"https://github.com/some-long-organisation-name/sparse-moe-replay-{n}",
            code_stars=123456,
            project_url=f"https://some-long-organisation-name.github.io/sparse-moe-replay-{n}/",
            upvotes=1234,
            featured=n == 0,
        )
        assert len(paper.abstract) > 1900 and len(paper.ai_summary) > 400
        picks.append(
            Pick(
                paper=paper,
                relevance=2.0,
                topics=topics,
                evidence=[(terms, "")] * 3,
                liked=f"An equally long title of a paper the reader liked, number {n}" * 3,
            )
        )
    assert len(picks[0].reason) > 400

    _, data = rendering.digest_bytes(digest, rendering.render_digest(digest, picks))

    html = email.message_from_bytes(data, policy=email.policy.default).get_body(("html",))
    assert html.get_content().count('class="paper"') == 20
    assert len(html.get_content().encode()) < GMAIL_CLIPS_AT
