"""Hostile text from signups and paper feeds is shown as text everywhere it is shown, and
never becomes a header of an email.

Payloads arrive the way they would: interests through the signup form, titles,
abstracts and authors through an import, link fields through an import or the admin.
Pages are read with an HTML parser, as a browser would: the payload must come back as
the very text it was (so it was shown, escaped exactly once) while adding no element,
no event handler and no javascript: link. Emails are read from the bytes a real SMTP
server received, parsed with the email package."""

import datetime as dt
import email
import email.policy
import json
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from digest import links as digest_links
from digest import previews, rendering, scheduling, sending
from digest.models import Digest
from mailing import mime
from papers.importers import ImportFailed, import_source
from papers.models import ImportRun, Paper, Topic
from subscriptions import admin as subscriber_admin
from subscriptions import emails, links, services
from subscriptions.models import Subscriber
from tests.support.factories import SubscriberFactory, match

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)
SITE = "https://papers.example"

PAYLOADS = [
    "<script>alert('pb-xss')</script>",
    '"><img src=x onerror=alert(1)>',
    '" onmouseover="alert(1)" data-x="',
    "' onfocus='alert(1)' autofocus data-x='",
    "</style><script>alert(1)</script>",
    "</title><svg onload=alert(1)>",
    "</textarea><a href=javascript:alert(1)>click</a>",
    "javascript:alert(1)",
    "&lt;script&gt;alert(1)&lt;/script&gt;",  # must not be decoded into markup
    # Fullwidth brackets: NFKC normalisation would turn them into real ones.
    "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
    "\u202eevil\u202c <b>bold</b> \u200binvisible",  # bidi override, zero-width space
    "{{ request.META }} {% debug %} ${7*7}",  # template syntax is only text
]


class _Page(HTMLParser):
    """The elements, attributes and text of a page, entities decoded once."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.values: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attrs))
        self.values += attrs.values()

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.texts.append(data)


def parse_page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def assert_inert(html: str, shown: list[str], *, nonce: str | None = None) -> None:
    """No payload became markup, and each of ``shown`` is on the page as itself."""
    page = parse_page(html)
    for tag, attrs in page.tags:
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"<{tag}> got {handlers}"
        assert "autofocus" not in attrs and "data-x" not in attrs, f"<{tag} {attrs}>"
        for name in ("href", "src", "action", "formaction"):
            value = "".join(attrs.get(name, "").split()).lower()
            assert not value.startswith(("javascript:", "data:text", "vbscript:")), attrs
        if tag == "script":
            # Only the page's own: a file of this site, or inline with the request's nonce.
            assert attrs.get("src", "").startswith("/static/") or (
                nonce is not None and attrs.get("nonce") == nonce
            ), attrs
        assert (tag, attrs.get("src")) != ("img", "x"), "a payload's <img> became an element"
    # A payload that turned into markup is cut into pieces around its elements: whole, in
    # one text or attribute value, it was escaped, and exactly once.
    everything = page.texts + page.values
    for text in shown:
        assert any(text in piece for piece in everything), f"{text!r} is not on the page"


def nonce_of(response) -> str | None:
    for part in response["Content-Security-Policy"].replace(";", " ").split():
        if part.startswith("'nonce-"):
            return part.removeprefix("'nonce-").removesuffix("'")
    return None


# Payloads arriving the usual ways --------------------------------------------------


def hostile_feed() -> bytes:
    """Hugging Face daily-papers JSON with a payload in every text field of each paper."""
    return json.dumps(
        [
            {
                "paper": {
                    "id": f"2411.{90000 + n}",
                    "title": f"{payload} #{n}",
                    "summary": f"{payload} abstract {n} " + "padding " * 50,
                    "authors": [{"name": payload}, {"name": "Ada Lovelace"}],
                    "upvotes": 100 - n,
                    "publishedAt": "2026-11-27T10:00:00.000Z",
                }
            }
            for n, payload in enumerate(PAYLOADS)
        ]
    ).encode()


@pytest.fixture
def hostile_papers(tmp_path):
    source = tmp_path / "daily_papers.json"
    source.write_bytes(hostile_feed())
    with time_machine.travel(NOW - dt.timedelta(hours=2), tick=False):
        summary = import_source(str(source))
    assert summary.created == len(PAYLOADS)
    return list(Paper.objects.filter(arxiv_id__startswith="2411.9").order_by("arxiv_id"))


@pytest.fixture
def signup(client, django_capture_on_commit_callbacks):
    def post(email_address: str, interests: str = "", topics=None):
        data = {
            "email": email_address,
            "topics": topics if topics is not None else [],
            "interests": interests,
            "frequency": "daily",
            "weekday": "0",
            "send_hour": "8",
            "timezone": "UTC",
            "max_papers": "20",
            "website": "",
        }
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("subscriptions:signup"), data)

    return post


@pytest.fixture
def hostile_reader(signup, settings):
    """A confirmed subscriber whose every interest is a payload."""
    settings.SITE_URL = SITE
    settings.PAPERBOY_UNSUBSCRIBE_MAILTO = "unsubscribe@papers.example"
    # At most ten interests a subscriber: two of them share the payloads.
    for n, chunk in enumerate((PAYLOADS[:6], PAYLOADS[6:])):
        response = signup(f"reader{n}@example.org", interests=", ".join(chunk))
        assert response.status_code == 302, response.content.decode()[:2000]
    readers = list(Subscriber.objects.order_by("email"))
    for reader in readers:
        # Confirmed as the link does: the interests become topics then.
        services.confirm(reader, "192.0.2.1", "test")
        Subscriber.objects.filter(pk=reader.pk).update(next_due_at=NOW)
    return list(Subscriber.objects.order_by("email"))


def interest_names() -> list[str]:
    return list(Topic.objects.interests().values_list("name", flat=True))


def test_every_interest_payload_is_stored_as_typed(hostile_reader):
    # Valid interests, every one: the pages below show them.
    assert sorted(interest_names()) == sorted(PAYLOADS)


# Pages --------------------------------------------------------------------------


def test_the_trending_page_shows_titles_abstracts_and_authors_as_text(client, hostile_papers):
    response = client.get(reverse("trending"))

    assert response.status_code == 200
    shown = [paper.title for paper in hostile_papers] + PAYLOADS
    assert_inert(response.content.decode(), shown)


def test_the_manage_page_shows_interests_as_text(client, hostile_reader):
    for reader in hostile_reader:
        response = client.get(urlsplit(links.manage_url(reader)).path)
        assert response.status_code == 200
        names = [t.name for t in reader.topics.all()]
        # In the interests field, one value: the interests joined, as typed.
        assert_inert(response.content.decode(), [", ".join(names)])


def test_the_feedback_page_shows_the_title_as_text(client, hostile_papers, hostile_reader):
    for paper in hostile_papers:
        response = client.get(urlsplit(digest_links.feedback_url(hostile_reader[0], paper, 1)).path)
        assert response.status_code == 200
        assert_inert(response.content.decode(), [paper.title])


def send_digests(smtp_mailer, hostile_papers, readers) -> list:
    for reader in readers:
        for topic in reader.topics.all():
            for paper in hostile_papers:
                match(paper, topic, score=5.0, terms=[topic.name])
    before = len(smtp_mailer.messages)  # confirmations
    with time_machine.travel(NOW, tick=False):
        result = sending.send_batch(scheduling.claim_due(NOW), now=NOW)
    assert len(result.sent) == len(readers)
    return smtp_mailer.wait_for(before + len(readers))[before:]


def test_digests_show_payloads_as_text_in_html_and_verbatim_in_text(
    smtp_mailer, hostile_papers, hostile_reader
):
    received = send_digests(smtp_mailer, hostile_papers, hostile_reader)

    for message in received:
        parsed = message.parsed
        reader = Subscriber.objects.get(email=parsed["To"])
        interests = [t.name for t in reader.topics.all()]
        html = parsed.get_body(("html",)).get_content()
        text = parsed.get_body(("plain",)).get_content()
        titles = [paper.title for paper in hostile_papers]
        assert_inert(html, [*titles, *PAYLOADS, *interests])
        # A text part is never read as markup: everything in it is as it was typed,
        # not escaped into &lt; for a reader to see.
        for shown in [*titles, *interests]:
            assert shown in text, shown
        assert "&lt;script" not in text.replace("&lt;script&gt;alert(1)", "")
        assert "\r" not in parsed["Subject"] and "\n" not in parsed["Subject"]


def test_view_in_browser_shows_payloads_as_text(
    client, smtp_mailer, hostile_papers, hostile_reader
):
    send_digests(smtp_mailer, hostile_papers, hostile_reader)

    for digest in Digest.objects.select_related("subscriber"):
        response = client.get(urlsplit(digest_links.view_url(digest)).path)
        assert response.status_code == 200
        interests = [t.name for t in digest.subscriber.topics.all()]
        assert_inert(
            response.content.decode(),
            [paper.title for paper in hostile_papers] + PAYLOADS + interests,
        )


def test_admin_lists_show_titles_interests_and_addresses_as_text(
    admin_client, hostile_papers, hostile_reader
):
    pages = [
        (reverse("admin:papers_paper_changelist"), [p.title for p in hostile_papers]),
        (reverse("admin:papers_topic_changelist") + "?kind__exact=interest", PAYLOADS),
        (
            reverse("admin:subscriptions_subscriber_changelist"),
            [
                name
                for reader in hostile_reader
                for name in [t.name for t in reader.topics.all()][: subscriber_admin.TOPICS_SHOWN]
            ],
        ),
        # Titles in an <input>, abstracts in a <textarea>: "</textarea>" among them.
        *(
            (reverse("admin:papers_paper_change", args=[paper.pk]), [paper.title, paper.abstract])
            for paper in hostile_papers
        ),
    ]
    for path, shown in pages:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert_inert(response.content.decode(), shown, nonce=nonce_of(response))


def test_import_errors_naming_hostile_records_are_shown_as_text(admin_client):
    # A page whose paper has no abstract: the error quotes its title, twice escaped would
    # be as wrong as not at all.
    page = f"Mar 17\n\n{PAYLOADS[0]}\n\nAn abstract.\n\n{PAYLOADS[1]}\n".encode()
    upload = SimpleUploadedFile("hostile.txt", page, content_type="text/plain")

    response = admin_client.post(
        reverse("admin:papers_importrun_import"),
        {"upload": upload, "url": "", "format": "auto"},
    )

    assert response.status_code == 200
    assert_inert(response.content.decode(), [PAYLOADS[1]], nonce=nonce_of(response))
    assert ImportRun.objects.get().status == ImportRun.Status.FAILED
    dashboard = admin_client.get(reverse("admin:index"))
    assert_inert(dashboard.content.decode(), [PAYLOADS[1]], nonce=nonce_of(dashboard))


# Link fields ----------------------------------------------------------------------


def atom_with_link(href: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <entry>
    <id>http://arxiv.org/abs/2411.08888v1</id>
    <published>2026-11-27T10:00:00Z</published>
    <title>A paper with a link</title>
    <summary>An abstract.</summary>
    <author><name>Ada Lovelace</name></author>
    <link href="{href}" rel="alternate" type="text/html"/>
    <link title="pdf" href="{href}" rel="related" type="application/pdf"/>
  </entry>
</feed>""".encode()


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java&#9;script:alert(1)",  # a tab, which URL parsers drop
        "&#10;javascript:alert(1)",  # a line break before it
        "vbscript:msgbox(1)",
        "data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;",
        "//evil.example/x",
        "/relative/path",
    ],
)
def test_a_link_field_that_is_not_http_is_refused_at_import(tmp_path, href):
    source = tmp_path / "feed.xml"
    source.write_bytes(atom_with_link(href))

    with pytest.raises(ImportFailed) as refused:
        import_source(str(source))

    assert any("is not an http(s) URL" in error for error in refused.value.errors), (
        refused.value.errors
    )
    assert Paper.objects.count() == 0


def test_an_http_link_with_quotes_stays_inside_its_attribute(client, tmp_path, settings):
    settings.SITE_URL = SITE
    href = (
        "https://arxiv.org/abs/2411.08888?x=&quot; onmouseover=&quot;alert(1)&quot; data-x=&quot;"
    )
    source = tmp_path / "feed.xml"
    source.write_bytes(atom_with_link(href))
    import_source(str(source))
    paper = Paper.objects.get()
    assert (
        paper.abstract_url == 'https://arxiv.org/abs/2411.08888?x=" onmouseover="alert(1)" data-x="'
    )

    response = client.get(reverse("trending"))

    assert_inert(response.content.decode(), [paper.abstract_url])
    page = parse_page(response.content.decode())
    assert ("a", {"href": paper.abstract_url}) in page.tags


@pytest.mark.parametrize("field", ["abstract_url", "pdf_url"])
def test_the_admin_refuses_a_javascript_link(admin_client, field):
    add = reverse("admin:papers_paper_add")
    # The inlines' management forms, as the page has them.
    form = parse_page(admin_client.get(add).content.decode())
    data = {
        attrs["name"]: attrs.get("value", "")
        for tag, attrs in form.tags
        if tag == "input" and attrs.get("name", "").endswith("_FORMS")
    }
    data |= {
        "title": "Edited by a curator",
        "abstract": "",
        "authors": "[]",
        "abstract_url": "https://arxiv.org/abs/2411.00001",
        "pdf_url": "",
        "upvotes": "0",
        "source": "manual",
        field: "javascript:alert(1)",
    }

    response = admin_client.post(add, data)

    assert response.status_code == 200
    assert "Enter a valid URL." in response.content.decode()
    assert Paper.objects.count() == 0


# Emails and their headers ------------------------------------------------------------


def raw_headers(message) -> list[str]:
    return list(message.keys())


HOSTILE_ADDRESSES = [
    '"<script>alert(1)</script>"@example.org',
    '"</style><svg/onload=alert(1)>"@example.org',
    "o'neil+&lt=1@example.org",  # &lt without its semicolon is still "<" to a browser
]


def confirmations(signup, smtp_mailer, address):
    """The confirmation of an ordinary address, then the one of ``address``."""
    topics = [Topic.objects.curated().first().pk]
    assert signup("benign@example.org", topics=topics).status_code == 302
    assert signup(address, topics=topics).status_code == 302
    return smtp_mailer.wait_for(2)


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_a_hostile_but_valid_address_gets_one_plain_confirmation(
    signup, smtp_mailer, client, address
):
    benign, hostile = confirmations(signup, smtp_mailer, address)

    subscriber = Subscriber.objects.get(email=address)
    assert hostile.rcpt_tos == (address,)
    parsed = hostile.parsed
    assert raw_headers(parsed) == raw_headers(benign.parsed)
    assert "Bcc" not in parsed and "Cc" not in parsed
    assert len(parsed["To"].addresses) == 1
    assert parsed["To"].addresses[0].addr_spec.replace('"', "") == address.replace('"', "")
    html = parsed.get_body(("html",)).get_content()
    text = parsed.get_body(("plain",)).get_content()
    assert_inert(html, [address])
    assert address in text
    manage = client.get(urlsplit(links.manage_url(subscriber)).path)
    assert_inert(manage.content.decode(), [address])


ENCODED_WORDS = [
    "=?utf-8?b?QmNjOiB4QGV4YW1wbGUub3Jn?=@example.org",  # "Bcc: x@example.org"
    "=?utf-8?b?YWRh?=@example.org",  # "ada": shown as ada@example.org, sent elsewhere
    "x=?ISO-8859-1?Q?ada?=@example.org",
]


@pytest.mark.parametrize("address", ENCODED_WORDS)
def test_an_address_spelled_with_an_encoded_word_is_refused_at_signup(signup, address):
    response = signup(address)

    assert response.status_code == 400
    assert "encoded word" in response.content.decode()
    assert Subscriber.objects.count() == 0
    assert mail.outbox == []


def test_an_address_spelled_as_an_encoded_word_never_becomes_a_header(smtp_mailer):
    # RFC 2047 forbids encoded-words in an address; this one spells "Bcc: x@example.org".
    # The signup form refuses it (above); one stored before that cannot be mailed.
    address = ENCODED_WORDS[0]
    subscriber = SubscriberFactory(email=address, status="pending", confirmed_at=None)

    # Django's mailer, for confirmations and ESPs, refuses to write it at all...
    with pytest.raises(ValueError, match="encoded-word"):
        emails.send_confirmation(subscriber)
    assert smtp_mailer.messages == []
    # ...and the digest's own SMTP bytes keep it, undecoded, in the one To header.
    data = mime.multipart_alternative(
        from_email="digest@papers.example", to=address, subject="s", headers={}, text="t", html="h"
    )
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert raw_headers(parsed) == ["From", "To", "Subject", "Date", "MIME-Version", "Content-Type"]
    assert f"\r\nTo: {address}\r\n".encode() in data


@pytest.mark.parametrize(
    "separator", ["\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1e", "\t"]
)
def test_an_address_with_any_kind_of_line_break_is_refused(signup, separator):
    # CR and LF themselves: tests/subscriptions/test_signup.py.
    response = signup(f"ada@example.org{separator}Bcc: victim@example.org")

    assert response.status_code == 400
    assert Subscriber.objects.count() == 0
    assert mail.outbox == []


@pytest.mark.parametrize("separator", ["\r\n", "\n", "\r", "\x85", "\r\n\r\n"])
def test_a_line_break_in_an_interest_never_reaches_a_header(
    signup, smtp_mailer, hostile_papers, settings, separator
):
    settings.SITE_URL = SITE
    interest = f"graph networks{separator}Bcc: victim@example.org"
    assert signup("ada@example.org", interests=interest).status_code == 302
    reader = Subscriber.objects.get()
    services.confirm(reader, "192.0.2.1", "test")
    Subscriber.objects.filter(pk=reader.pk).update(next_due_at=NOW)
    [topic] = reader.topics.all()
    assert topic.name == "graph networks Bcc: victim@example.org"

    [digest] = send_digests(smtp_mailer, hostile_papers, [reader])

    parsed = digest.parsed
    assert digest.rcpt_tos == ("ada@example.org",)
    assert "Bcc" not in parsed and "Cc" not in parsed
    assert set(raw_headers(parsed)) == {
        "From",
        "To",
        "Subject",
        "Date",
        "MIME-Version",
        "Content-Type",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "Auto-Submitted",
        "Message-ID",
    }
    assert "graph networks Bcc: victim@example.org" in parsed.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    "separator", ["\r\n", "\n", "\r", "\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1d"]
)
def test_a_line_break_in_a_paper_title_never_reaches_the_subject_as_a_header(
    tmp_path, settings, separator
):
    settings.SITE_URL = SITE
    title = f"Attention again{separator}Bcc: victim@example.org{separator}{separator}Body"
    feed = [{"paper": {"id": "2411.07777", "title": title, "summary": "s", "upvotes": 1}}]
    source = tmp_path / "feed.json"
    source.write_text(json.dumps(feed))
    with time_machine.travel(NOW - dt.timedelta(hours=2), tick=False):
        import_source(str(source))
    paper = Paper.objects.get()
    assert len(paper.title.splitlines()) == 1 and "Bcc: victim@example.org" in paper.title
    reader = SubscriberFactory(email="ada@example.org", next_due_at=NOW)
    topic = Topic.objects.curated().first()
    reader.topics.add(topic)
    match(paper, topic)
    digest = Digest.objects.create(subscriber=reader, period="2026-11-28", scheduled_for=NOW)
    with time_machine.travel(NOW, tick=False):
        rendered = previews.preview(reader, NOW)

    # Both ways a digest leaves: the SMTP bytes, and Django's message for an ESP.
    _, smtp_bytes = rendering.digest_bytes(digest, rendered)
    esp_bytes = rendering.build_digest(digest, rendered=rendered).message().as_bytes()
    for data in (smtp_bytes, esp_bytes):
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert "Bcc" not in parsed
        assert parsed["Subject"].endswith(paper.title)
        header_block = data.split(b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n", 1)[0]
        assert b"\nBcc:" not in header_block and b"\rBcc:" not in header_block
